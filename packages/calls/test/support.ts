import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { readWavForCall } from '../src/index.ts'

const run = promisify(execFile)

/** The sentence the tests send through calls (about 7 s of speech). */
export const SENTENCE =
  'Parley is a peer to peer network for calls and messages. This sentence checks that audio survives the trip through libwebrtc.'
/** Another sentence: what a wrong recording would contain. */
export const OTHER_SENTENCE = 'The weather tomorrow will be cloudy with a chance of rain in the afternoon, and quite cold at night.'

const cache = new Map<string, Promise<Int16Array>>()

/**
 * `text` spoken by espeak-ng (22,050 Hz), read and resampled to 48 kHz mono by this package. Throws, never
 * skips, when espeak-ng is missing: the tests that need speech must fail loudly on a machine without it.
 */
export async function speech(text: string): Promise<Int16Array> {
  let made = cache.get(text)
  if (made === undefined) {
    made = speak(text)
    cache.set(text, made)
  }
  return await made
}

/** Where espeak-ng is, or an error saying how to install it. */
export async function espeakPath(): Promise<string> {
  try {
    const { stdout } = await run('sh', ['-c', 'command -v espeak-ng'])
    return stdout.trim()
  } catch {
    throw new Error('espeak-ng is not installed, and these tests need real speech: apt-get install -y espeak-ng sox')
  }
}

async function speak(text: string): Promise<Int16Array> {
  const espeak = await espeakPath()
  const dir = await mkdtemp(join(tmpdir(), 'parley-calls-speech-'))
  try {
    const file = join(dir, 'speech.wav')
    await run(espeak, ['-w', file, text])
    return readWavForCall(await readFile(file))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

export function rms(samples: Int16Array): number {
  let sum = 0
  for (let i = 0; i < samples.length; i++) sum += samples[i]! * samples[i]!
  return samples.length === 0 ? 0 : Math.sqrt(sum / samples.length)
}

/** `samples` after `beforeMs` of silence and followed by `afterMs` of it. */
export function padded(samples: Int16Array, beforeMs: number, afterMs = 0): Int16Array {
  const before = Math.round(beforeMs * 48)
  const out = new Int16Array(before + samples.length + Math.round(afterMs * 48))
  out.set(samples, before)
  return out
}

/** A deterministic pseudo-random generator (xorshift32), so failures replay. */
export function random(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 2 ** 32
  }
}

export function sine(rate: number, hz: number, length: number, amplitude = 10_000): Int16Array {
  return Int16Array.from({ length }, (_, i) => Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / rate)))
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
