import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CallsError, downmix, Resampler, resample } from '../src/index.ts'
import { random, sine } from './support.ts'

/** Signal-to-error ratio (dB) of `y` against an ideal sine, away from the ends. */
function snrDb(y: Int16Array, rate: number, hz: number, amplitude = 10_000): number {
  let signal = 0
  let error = 0
  for (let i = 1000; i < y.length - 1000; i++) {
    const ideal = amplitude * Math.sin((2 * Math.PI * hz * i) / rate)
    signal += ideal ** 2
    error += (y[i]! - ideal) ** 2
  }
  return 10 * Math.log10(signal / error)
}

describe('resample', () => {
  it('converts sines between common rates with the error near 16-bit rounding (over 80 dB below)', () => {
    for (const [from, to, hz] of [
      [22_050, 48_000, 1_000],
      [16_000, 48_000, 3_000],
      [44_100, 48_000, 5_000],
      [8_000, 48_000, 3_000],
      [48_000, 16_000, 1_000],
      [96_000, 48_000, 7_000],
      // 48,000/22,051 does not reduce: the filter interpolates between phases.
      [22_051, 48_000, 1_000]
    ] as const) {
      const y = resample(sine(from, hz, from), from, to)
      assert.equal(y.length, Math.ceil((from * to) / from))
      const snr = snrDb(y, to, hz)
      assert.ok(snr > 80, `${from} -> ${to} Hz, a ${hz} Hz sine: ${snr.toFixed(1)} dB`)
    }
  })

  it('keeps DC at unity gain and makes ceil(n·out/in) samples', () => {
    const y = resample(new Int16Array(4410).fill(1000), 44_100, 48_000)
    assert.equal(y.length, 4800)
    for (let i = 100; i < 4700; i++) assert.ok(Math.abs(y[i]! - 1000) <= 1, `sample ${i} is ${y[i]}`)
    assert.equal(resample(new Int16Array(7), 22_050, 48_000).length, 16)
    assert.equal(resample(new Int16Array(0), 22_050, 48_000).length, 0)
  })

  it('removes what the lower rate cannot carry instead of folding it back (aliasing)', () => {
    const y = resample(sine(48_000, 10_000, 48_000), 48_000, 16_000)
    let peak = 0
    for (let i = 200; i < y.length - 200; i++) peak = Math.max(peak, Math.abs(y[i]!))
    assert.ok(peak <= 2, `a 10 kHz tone at 16 kHz should vanish, peak ${peak}`)
  })

  it('streams: any split of the input gives exactly the one-shot output', () => {
    const next = random(3)
    const input = Int16Array.from({ length: 22_050 }, () => Math.round((next() - 0.5) * 20_000))
    for (const [from, to] of [
      [22_050, 48_000],
      [48_000, 16_000],
      [22_051, 48_000],
      [48_000, 48_000]
    ] as const) {
      const whole = resample(input, from, to)
      const r = new Resampler(from, to)
      const parts: Int16Array[] = []
      for (let at = 0; at < input.length; ) {
        const n = 1 + Math.floor(next() * 700)
        parts.push(r.push(input.subarray(at, at + n)))
        at += n
      }
      parts.push(r.flush())
      const streamed = new Int16Array(parts.reduce((n, p) => n + p.length, 0))
      let at = 0
      for (const p of parts) {
        streamed.set(p, at)
        at += p.length
      }
      assert.deepEqual(streamed, whole, `${from} -> ${to}`)
    }
  })

  it('refuses rates it cannot use and a push after flush', () => {
    for (const [from, to] of [
      [0, 48_000],
      [48_000, 999],
      [44_100.5, 48_000],
      [48_000, 500_000]
    ]) {
      assert.throws(
        () => new Resampler(from!, to!),
        (e: unknown) => e instanceof CallsError && e.code === 'INVALID_ARGUMENT'
      )
    }
    const r = new Resampler(16_000, 48_000)
    r.flush()
    assert.deepEqual(r.flush(), new Int16Array(0))
    assert.throws(
      () => r.push(new Int16Array(10)),
      (e: unknown) => e instanceof CallsError && e.code === 'CLOSED'
    )
  })
})

describe('downmix', () => {
  it('averages the channels of interleaved frames', () => {
    assert.deepEqual(downmix(Int16Array.from([100, 300, -32768, -32768, 32767, -32768, 5, 6]), 2), Int16Array.from([200, -32768, 0, 6]))
    assert.deepEqual(downmix(Int16Array.from([1, 2, 3]), 1), Int16Array.from([1, 2, 3]))
    assert.throws(
      () => downmix(new Int16Array(2), 0),
      (e: unknown) => e instanceof CallsError
    )
  })
})
