import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import fc from 'fast-check'
import { CallsError, type CallsErrorCode, downmix, type PcmAudio, readWav, readWavForCall, resample, writeWav } from '../src/index.ts'
import { LIMITS } from '../src/limits.ts'
import { espeakPath, random, SENTENCE, sine } from './support.ts'

const run = promisify(execFile)
const AUDIO = LIMITS.calls.audio

function refused(code: CallsErrorCode, run: () => unknown): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof CallsError, `expected a CallsError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return true
  })
}

interface Chunk {
  id: string
  body: Uint8Array
}

function chunk(id: string, body: Uint8Array | number): Chunk {
  return { id, body: typeof body === 'number' ? new Uint8Array(body) : body }
}

interface FmtFields {
  tag?: number
  channels?: number
  rate?: number
  bits?: number
  blockAlign?: number
  byteRate?: number
  size?: number
  /** For WAVE_FORMAT_EXTENSIBLE: the subformat code and valid bits. */
  subformat?: number
  validBits?: number
}

function fmt(f: FmtFields = {}): Chunk {
  const channels = f.channels ?? 1
  const rate = f.rate ?? 48_000
  const bits = f.bits ?? 16
  const blockAlign = f.blockAlign ?? (channels * bits) / 8
  const extensible = f.tag === 0xfffe
  const body = new Uint8Array(f.size ?? (extensible ? 40 : 16))
  const v = new DataView(body.buffer)
  const put16 = (at: number, x: number): void => {
    if (at + 2 <= body.length) v.setUint16(at, x, true)
  }
  const put32 = (at: number, x: number): void => {
    if (at + 4 <= body.length) v.setUint32(at, x, true)
  }
  put16(0, f.tag ?? 1)
  put16(2, channels)
  put32(4, rate)
  put32(8, f.byteRate ?? rate * blockAlign)
  put16(12, blockAlign)
  put16(14, bits)
  if (extensible) {
    put16(16, 22)
    put16(18, f.validBits ?? bits)
    put32(20, channels === 2 ? 3 : 4)
    put16(24, f.subformat ?? 1)
    if (body.length >= 40) body.set([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71], 26)
  }
  return chunk('fmt ', body)
}

function pcm(samples: Int16Array): Chunk {
  const body = new Uint8Array(samples.length * 2)
  const v = new DataView(body.buffer)
  for (let i = 0; i < samples.length; i++) v.setInt16(2 * i, samples[i]!, true)
  return chunk('data', body)
}

/** A RIFF/WAVE file of these chunks (padded to even lengths); `riffSize` overrides the header's size. */
function riff(chunks: Chunk[], options: { riffSize?: number; form?: string; magic?: string } = {}): Uint8Array {
  const length = 12 + chunks.reduce((n, c) => n + 8 + c.body.length + (c.body.length % 2), 0)
  const out = new Uint8Array(length)
  const v = new DataView(out.buffer)
  const ascii = (at: number, s: string): void => {
    for (let i = 0; i < 4; i++) out[at + i] = s.charCodeAt(i)
  }
  ascii(0, options.magic ?? 'RIFF')
  v.setUint32(4, options.riffSize ?? length - 8, true)
  ascii(8, options.form ?? 'WAVE')
  let at = 12
  for (const c of chunks) {
    ascii(at, c.id)
    v.setUint32(at + 4, c.body.length, true)
    out.set(c.body, at + 8)
    at += 8 + c.body.length + (c.body.length % 2)
  }
  return out
}

const tone = sine(48_000, 440, 4800)

describe('readWav and writeWav', () => {
  it('round-trips mono and stereo at several rates, byte for byte', () => {
    const next = random(1)
    for (const rate of [8_000, 16_000, 22_050, 44_100, 48_000, 96_000]) {
      for (const channels of [1, 2]) {
        const samples = Int16Array.from({ length: 1000 * channels }, () => Math.floor(next() * 65536) - 32768)
        samples[0] = -32768
        samples[1] = 32767
        const audio: PcmAudio = { sampleRate: rate, channels, samples }
        const bytes = writeWav(audio)
        assert.equal(bytes.length, 44 + samples.length * 2)
        assert.deepEqual(readWav(bytes), audio)
        assert.deepEqual(writeWav(readWav(bytes)), bytes)
      }
    }
  })

  it('reads an empty data chunk, a file in a larger buffer, and skips other chunks (odd-sized ones padded)', () => {
    assert.deepEqual(readWav(riff([fmt(), chunk('data', 0)])).samples, new Int16Array(0))
    const file = riff([chunk('LIST', new TextEncoder().encode('INFOISFT')), chunk('junk', 3), fmt(), chunk('fact', 4), pcm(tone)])
    assert.deepEqual(readWav(file).samples, tone)
    const inside = new Uint8Array(file.length + 11)
    inside.set(file, 7)
    assert.deepEqual(readWav(inside.subarray(7, 7 + file.length)).samples, tone)
    // Bytes after the RIFF chunk (some tools append metadata) are ignored.
    const trailing = new Uint8Array(file.length + 5)
    trailing.set(file)
    assert.deepEqual(readWav(trailing).samples, tone)
  })

  it('reads WAVE_FORMAT_EXTENSIBLE with the PCM subformat (what sox writes for some files)', () => {
    const stereo = Int16Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 1000 : -1000))
    const audio = readWav(riff([fmt({ tag: 0xfffe, channels: 2, rate: 44_100 }), pcm(stereo)]))
    assert.equal(audio.channels, 2)
    assert.equal(audio.sampleRate, 44_100)
    assert.deepEqual(audio.samples, stereo)
  })

  it('refuses what is not a WAV file, or whose headers contradict each other or the file, as MALFORMED', () => {
    const good = riff([fmt(), pcm(tone)])
    refused('MALFORMED', () => readWav(new Uint8Array(0)))
    refused('MALFORMED', () => readWav(good.subarray(0, 11)))
    refused('MALFORMED', () => readWav(riff([fmt(), pcm(tone)], { magic: 'RIFX' })))
    refused('MALFORMED', () => readWav(riff([fmt(), pcm(tone)], { form: 'AVI ' })))
    refused('MALFORMED', () => readWav(riff([fmt(), pcm(tone)], { riffSize: 3 })))
    // Truncated: the header promises more than the file has.
    refused('MALFORMED', () => readWav(good.subarray(0, good.length - 2)))
    refused('MALFORMED', () => readWav(riff([fmt(), pcm(tone)], { riffSize: good.length })))
    // A chunk running past the RIFF chunk's end, a chunk header cut off.
    refused('MALFORMED', () => readWav(riff([fmt(), pcm(tone)], { riffSize: good.length - 8 - 2 })))
    refused('MALFORMED', () => readWav(riff([fmt(), pcm(tone)], { riffSize: 4 + 24 + 4 })))
    // Missing, doubled or misplaced chunks.
    refused('MALFORMED', () => readWav(riff([pcm(tone)])))
    refused('MALFORMED', () => readWav(riff([fmt()])))
    refused('MALFORMED', () => readWav(riff([pcm(tone), fmt()])))
    refused('MALFORMED', () => readWav(riff([fmt(), fmt(), pcm(tone)])))
    refused('MALFORMED', () => readWav(riff([fmt(), pcm(tone), pcm(tone)])))
    // Format fields that contradict each other.
    refused('MALFORMED', () => readWav(riff([fmt({ size: 14 }), pcm(tone)])))
    refused('MALFORMED', () => readWav(riff([fmt({ channels: 0, blockAlign: 2 }), pcm(tone)])))
    refused('MALFORMED', () => readWav(riff([fmt({ rate: 0 }), pcm(tone)])))
    refused('MALFORMED', () => readWav(riff([fmt({ bits: 12, blockAlign: 2 }), pcm(tone)])))
    refused('MALFORMED', () => readWav(riff([fmt({ blockAlign: 4 }), pcm(tone)])))
    refused('MALFORMED', () => readWav(riff([fmt({ byteRate: 44_100 }), pcm(tone)])))
    refused('MALFORMED', () => readWav(riff([fmt({ tag: 0xfffe, size: 18 }), pcm(tone)])))
    // Audio that is not a whole number of frames.
    refused('MALFORMED', () => readWav(riff([fmt(), chunk('data', 3)])))
    refused('MALFORMED', () => readWav(riff([fmt({ channels: 2 }), chunk('data', 6)])))
  })

  it('refuses valid WAV files in formats it does not read as UNSUPPORTED', () => {
    refused('UNSUPPORTED', () => readWav(riff([fmt({ tag: 3, bits: 32 }), chunk('data', 8)])))
    refused('UNSUPPORTED', () => readWav(riff([fmt({ tag: 6, bits: 8 }), chunk('data', 8)])))
    refused('UNSUPPORTED', () => readWav(riff([fmt({ bits: 8 }), chunk('data', 8)])))
    refused('UNSUPPORTED', () => readWav(riff([fmt({ bits: 24 }), chunk('data', 9)])))
    refused('UNSUPPORTED', () => readWav(riff([fmt({ channels: 3 }), chunk('data', 12)])))
    refused('UNSUPPORTED', () => readWav(riff([fmt({ rate: 4_000 }), pcm(tone)])))
    refused('UNSUPPORTED', () => readWav(riff([fmt({ rate: 192_000 }), pcm(tone)])))
    refused('UNSUPPORTED', () => readWav(riff([fmt({ tag: 0xfffe, subformat: 3 }), pcm(tone)])))
    refused('UNSUPPORTED', () => readWav(riff([fmt({ tag: 0xfffe, validBits: 12 }), pcm(tone)])))
  })

  it('refuses more than 3 minutes of audio, files over the byte limit and bulky metadata as TOO_LARGE', () => {
    const minutes3 = (AUDIO.maxDurationMs / 1000) * 8_000
    assert.equal(readWav(riff([fmt({ rate: 8_000 }), pcm(new Int16Array(minutes3))])).samples.length, minutes3)
    refused('TOO_LARGE', () => readWav(riff([fmt({ rate: 8_000 }), pcm(new Int16Array(minutes3 + 1))])))
    refused('TOO_LARGE', () => readWav(riff([fmt(), pcm(tone)]), { maxDurationMs: 50 }))
    refused('TOO_LARGE', () => readWav(new Uint8Array(AUDIO.wavMaxBytes + 1)))
    refused('TOO_LARGE', () => readWav(riff([fmt(), chunk('LIST', AUDIO.wavMaxOtherChunkBytes + 1), pcm(tone)])))
    refused('TOO_LARGE', () => writeWav({ sampleRate: 8_000, channels: 1, samples: new Int16Array(minutes3 + 1) }))
  })

  it('writeWav refuses arguments it cannot write', () => {
    refused('INVALID_ARGUMENT', () => writeWav({ sampleRate: 48_000, channels: 3, samples: new Int16Array(3) }))
    refused('INVALID_ARGUMENT', () => writeWav({ sampleRate: 48_000, channels: 2, samples: new Int16Array(3) }))
    refused('INVALID_ARGUMENT', () => writeWav({ sampleRate: 1_000, channels: 1, samples: new Int16Array(3) }))
    refused('INVALID_ARGUMENT', () => writeWav({ sampleRate: 44_100.5, channels: 1, samples: new Int16Array(3) }))
  })

  it('throws nothing but CallsError for mutated and truncated files (fuzzing)', () => {
    const stereo = riff([fmt({ channels: 2, rate: 22_050 }), chunk('LIST', 5), pcm(sine(22_050, 300, 400))])
    const extensible = riff([fmt({ tag: 0xfffe, channels: 1, rate: 16_000 }), pcm(sine(16_000, 300, 200))])
    fc.assert(
      fc.property(
        fc.constantFrom(stereo, extensible),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.option(fc.nat()),
        (base, edits, cut) => {
          const bytes = base.slice()
          // Mostly the headers: that is where the decisions are.
          for (const [at, value] of edits) bytes[at % Math.min(bytes.length, 96)] = value
          const file = cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1))
          try {
            const audio = readWav(file)
            assert.ok(audio.channels === 1 || audio.channels === 2)
            assert.equal(audio.samples.length % audio.channels, 0)
          } catch (err) {
            assert.ok(err instanceof CallsError, `not a CallsError: ${String(err)}`)
          }
        }
      ),
      { numRuns: 20_000, seed: 7 }
    )
  })
})

describe('readWavForCall', () => {
  it('downmixes stereo and resamples to 48 kHz', () => {
    const left = sine(24_000, 500, 2400)
    const stereo = new Int16Array(4800)
    for (let i = 0; i < 2400; i++) {
      stereo[2 * i] = left[i]!
      stereo[2 * i + 1] = -left[i]! >> 1
    }
    const mono = readWavForCall(writeWav({ sampleRate: 24_000, channels: 2, samples: stereo }))
    assert.equal(mono.length, 4800)
    assert.deepEqual(mono, resample(downmix(stereo, 2), 24_000, 48_000))
  })

  it('reads what espeak-ng writes (22,050 Hz) and resamples it as sox does, within 35 dB', async () => {
    await espeakPath()
    const dir = await mkdtemp(join(tmpdir(), 'parley-calls-wav-'))
    try {
      const file = join(dir, 'speech.wav')
      await run('espeak-ng', ['-w', file, SENTENCE])
      const raw = readWav(await readFile(file))
      assert.equal(raw.sampleRate, 22_050)
      assert.equal(raw.channels, 1)
      const ours = readWavForCall(await readFile(file))
      assert.equal(ours.length, Math.ceil((raw.samples.length * 48_000) / 22_050))
      try {
        await run('sox', [file, '-r', '48000', '-c', '1', '-b', '16', join(dir, 'sox.wav')])
      } catch (err) {
        throw new Error('sox is not installed (apt-get install -y espeak-ng sox)', { cause: err })
      }
      const theirs = readWav(await readFile(join(dir, 'sox.wav'))).samples
      const n = Math.min(ours.length, theirs.length)
      let signal = 0
      let noise = 0
      for (let i = 0; i < n; i++) {
        signal += theirs[i]! ** 2
        noise += (ours[i]! - theirs[i]!) ** 2
      }
      const snrDb = 10 * Math.log10(signal / noise)
      assert.ok(snrDb > 35, `our resampling differs from sox's by ${snrDb.toFixed(1)} dB SNR`)
      // And ours survives our own writer.
      await writeFile(join(dir, 'ours.wav'), writeWav({ sampleRate: 48_000, channels: 1, samples: ours }))
      assert.deepEqual(readWav(await readFile(join(dir, 'ours.wav'))).samples, ours)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
