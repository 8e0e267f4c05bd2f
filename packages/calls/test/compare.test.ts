import assert from 'node:assert/strict'
import { before, describe, it, type TestContext } from 'node:test'
import { CallsError, type Comparison, compareAudio, resample } from '../src/index.ts'
import { OTHER_SENTENCE, padded, random, rms, SENTENCE, speech } from './support.ts'

let original: Int16Array
let other: Int16Array

before(async () => {
  original = await speech(SENTENCE)
  other = await speech(OTHER_SENTENCE)
})

function compared(t: TestContext, name: string, recording: Int16Array): Comparison {
  const started = performance.now()
  const c = compareAudio(original, recording)
  t.diagnostic(
    `${name}: similarity ${c.similarity.toFixed(3)}, level ${c.levelRatio.toFixed(3)}, offset ${c.offsetMs.toFixed(1)} ms, ${(performance.now() - started).toFixed(0)} ms`
  )
  return c
}

/** Every sample kept for `onMs`, then silence for `offMs`, over and over. */
function chopped(x: Int16Array, onMs: number, offMs: number): Int16Array {
  const period = (onMs + offMs) * 48
  return x.map((v, i) => (i % period < onMs * 48 ? v : 0))
}

describe('compareAudio passes the same speech', () => {
  it('itself', (t) => {
    const c = compared(t, 'itself', original)
    assert.equal(c.offsetMs, 0)
    assert.ok(c.similarity > 0.999)
    assert.ok(Math.abs(c.levelRatio - 1) < 0.01)
    assert.ok(c.pass)
  })

  it('delayed by 350 ms, 3 dB quieter, with noise 30 dB down', (t) => {
    const next = random(11)
    const noise = rms(original) / 31.6
    const recording = padded(original, 350, 500).map((v) => Math.round(v * Math.SQRT1_2 + (next() - 0.5) * 3.46 * noise))
    const c = compared(t, 'delayed, quieter, noisy', recording)
    assert.ok(Math.abs(c.offsetMs - 350) < 1, `offset ${c.offsetMs}`)
    assert.ok(c.pass)
    assert.ok(Math.abs(c.levelRatio - Math.SQRT1_2) < 0.02)
  })

  it('time-stretched by 0.5 % (a jitter buffer catching up), starting 100 ms late', (t) => {
    const recording = padded(
      original.filter((_, i) => i % 200 !== 0),
      100
    )
    assert.ok(compared(t, 'stretched 0.5 %', recording).pass)
  })

  it('band-limited to telephone bandwidth (through 8 kHz)', (t) => {
    const narrow = resample(resample(original, 48_000, 8_000), 8_000, 48_000)
    assert.ok(compared(t, 'narrowband', padded(narrow, 20)).pass)
  })

  it('is fast on a recording of 20 s', (t) => {
    const long = padded(original, 6_000, 7_000)
    const started = performance.now()
    assert.ok(compared(t, '20 s recording', long).pass)
    const ms = performance.now() - started
    assert.ok(ms < 5_000, `${ms.toFixed(0)} ms`)
  })
})

describe('compareAudio fails what is not the same speech', () => {
  it('silence', (t) => {
    const c = compared(t, 'silence', new Int16Array(original.length + 48_000))
    assert.equal(c.similarity, 0)
    assert.equal(c.levelRatio, 0)
    assert.ok(!c.pass)
  })

  it('white noise at the speech level', (t) => {
    const next = random(5)
    const level = rms(original) * Math.sqrt(3)
    const c = compared(
      t,
      'white noise',
      Int16Array.from({ length: original.length + 48_000 }, () => Math.round((next() * 2 - 1) * level))
    )
    assert.ok(c.similarity < 0.3, `similarity ${c.similarity}`)
    assert.ok(!c.pass)
  })

  it('the speech reversed', (t) => {
    const c = compared(t, 'reversed', padded(original.slice().reverse(), 100))
    assert.ok(c.similarity < 0.4, `similarity ${c.similarity}`)
    assert.ok(!c.pass)
  })

  it('another sentence', (t) => {
    const c = compared(t, 'another sentence', padded(other, 100, 2_000))
    assert.ok(c.similarity < 0.4, `similarity ${c.similarity}`)
    assert.ok(!c.pass)
  })

  it('chopped: 100 ms on, 100 ms off', (t) => {
    const c = compared(t, 'chopped 100/100 ms', padded(chopped(original, 100, 100), 100))
    assert.ok(c.similarity < 0.6, `similarity ${c.similarity}`)
    assert.ok(!c.pass)
  })

  it('chopped: 200 ms on, 100 ms off (a third missing)', (t) => {
    const c = compared(t, 'chopped 200/100 ms', padded(chopped(original, 200, 100), 100))
    assert.ok(c.similarity < 0.7, `similarity ${c.similarity}`)
    assert.ok(!c.pass)
  })

  it('shuffled in 200 ms pieces', (t) => {
    const next = random(9)
    const pieces: Int16Array[] = []
    for (let at = 0; at < original.length; at += 9_600) pieces.push(original.subarray(at, at + 9_600))
    for (let i = pieces.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1))
      ;[pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!]
    }
    const shuffled = new Int16Array(original.length)
    let at = 0
    for (const p of pieces) {
      shuffled.set(p, at)
      at += p.length
    }
    const c = compared(t, 'shuffled 200 ms pieces', padded(shuffled, 100))
    assert.ok(c.similarity < 0.4, `similarity ${c.similarity}`)
    assert.ok(!c.pass)
  })

  it('the same speech 14 dB too quiet or 8 dB too loud (the level check)', (t) => {
    const quiet = compared(
      t,
      'too quiet',
      padded(
        original.map((v) => Math.round(v / 5)),
        100
      )
    )
    assert.ok(quiet.similarity > 0.9)
    assert.ok(!quiet.pass)
    const loud = compared(
      t,
      'too loud',
      padded(
        original.map((v) => Math.max(-32768, Math.min(32767, v * 2.5))),
        100
      )
    )
    assert.ok(!loud.pass)
  })

  it('the first half only (a call cut short)', (t) => {
    const c = compared(t, 'first half', original.slice(0, original.length / 2))
    assert.ok(!c.pass)
  })
})

describe('compareAudio arguments', () => {
  it('refuses a silent original and thresholds outside 0..1', () => {
    const refused = (e: unknown): boolean => e instanceof CallsError && e.code === 'INVALID_ARGUMENT'
    assert.throws(() => compareAudio(new Int16Array(48_000), original), refused)
    assert.throws(() => compareAudio(original, original, { threshold: 1.5 }), refused)
    assert.throws(() => compareAudio(original, original, { maxOffsetMs: -1 }), refused)
  })

  it('limits the offset searched', () => {
    const c = compareAudio(original, padded(original, 3_000), { maxOffsetMs: 1_000 })
    assert.ok(Math.abs(c.offsetMs) <= 1_000)
    assert.ok(!c.pass)
  })

  it('compares at other rates', () => {
    const at16k = resample(original, 48_000, 16_000)
    const c = compareAudio(at16k, padded(at16k, 0, 0), { sampleRate: 16_000 })
    assert.ok(c.pass)
  })
})
