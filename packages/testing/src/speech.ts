import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { readWavForCall } from '@parley/calls'

const run = promisify(execFile)

/** A sentence for calls to carry (about 7 s of speech). */
export const TEST_SENTENCE =
  'Parley is a peer to peer network for calls and messages. This sentence checks that audio survives the trip through libwebrtc.'

const made = new Map<string, Promise<Int16Array>>()

/**
 * `text` spoken by espeak-ng (Debian `espeak-ng`), as 48 kHz mono samples.
 * Throws, never skips, when espeak-ng is missing: a test that needs speech
 * fails loudly on a machine without it.
 */
export async function speech(text: string = TEST_SENTENCE): Promise<Int16Array> {
  let samples = made.get(text)
  if (samples === undefined) {
    samples = speak(text)
    made.set(text, samples)
  }
  return await samples
}

/** `text` spoken by espeak-ng into a WAV file (22,050 Hz mono, as espeak-ng writes it). */
export async function speechFile(path: string, text: string = TEST_SENTENCE): Promise<void> {
  await run(await espeak(), ['-w', path, text])
}

async function espeak(): Promise<string> {
  try {
    return (await run('sh', ['-c', 'command -v espeak-ng'])).stdout.trim()
  } catch {
    throw new Error('espeak-ng is not installed, and this test needs real speech: apt-get install -y espeak-ng sox')
  }
}

async function speak(text: string): Promise<Int16Array> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-speech-'))
  try {
    const file = join(dir, 'speech.wav')
    await speechFile(file, text)
    return readWavForCall(await readFile(file))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
