import { CallsError } from './errors.ts'

/** Taps on each side of a polyphase filter, at the lower of the two rates. */
const HALF_TAPS = 48

export interface ResamplerOptions {
  /**
   * Filter taps on each side of the centre, counted at the lower rate. Default 48 (a transition band of
   * about 5 % of the lower rate); 16 is three times faster and good enough for analysis.
   */
  halfTaps?: number
}
/** Kaiser window β: about 80 dB of stop-band attenuation. */
const KAISER_BETA = 8
/** Ratios whose reduced output rate is at most this get one filter per phase; others interpolate between this many. */
const MAX_PHASES = 1024

/** The modified Bessel function of the first kind, order 0 (its series converges fast for the β used here). */
function besselI0(x: number): number {
  let sum = 1
  let term = 1
  const q = (x * x) / 4
  for (let k = 1; k < 64; k++) {
    term *= q / (k * k)
    sum += term
    if (term < sum * 1e-12) break
  }
  return sum
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

function checkRate(rate: number, what: string): void {
  if (!Number.isInteger(rate) || rate < 1_000 || rate > 384_000) {
    throw new CallsError('INVALID_ARGUMENT', `${what} must be a whole number of Hz from 1,000 to 384,000, not ${rate}`)
  }
}

function clip16(v: number): number {
  return v >= 32767 ? 32767 : v <= -32768 ? -32768 : Math.round(v)
}

/**
 * A streaming band-limited resampler for 16-bit mono audio: a polyphase
 * windowed-sinc filter (Kaiser, about 80 dB of stop band, pass band to 90 %
 * of the lower rate's Nyquist frequency with the default 48 taps a side), exact for rates whose ratio reduces
 * to an output rate of at most 1,024 (22,050 -> 48,000 is 320/147; 16,000 ->
 * 48,000 is 3/1), interpolating between 1,024 phases otherwise. Output sample
 * n is the input at time n·inRate/outRate; the filter is centred, so there is
 * no delay to undo.
 */
export class Resampler {
  readonly inRate: number
  readonly outRate: number
  /** Reduced ratio: each output advances the input by `step / phases` samples. */
  private readonly phases: number
  private readonly step: number
  /** Taps on each side of the centre, and the filter length (2·side). */
  private readonly side: number
  private readonly taps: number
  /** Rows of `taps` coefficients: one per phase, or `MAX_PHASES + 1` rows to interpolate between. */
  private readonly table: Float32Array
  private readonly interpolated: boolean
  private readonly identity: boolean
  /** Pending input; `buffer[0]` is input sample `bufferStart` (negative at first: the zeros before the start). */
  private buffer: Float32Array
  private bufferLength: number
  private bufferStart: number
  /** The next output's time: input sample `base` plus `phase / phases`. */
  private base = 0
  private phase = 0
  private inCount = 0
  private outCount = 0
  private flushed = false

  constructor(inRate: number, outRate: number, options: ResamplerOptions = {}) {
    checkRate(inRate, 'the input rate')
    checkRate(outRate, 'the output rate')
    const halfTaps = options.halfTaps ?? HALF_TAPS
    if (!Number.isInteger(halfTaps) || halfTaps < 4 || halfTaps > 256)
      throw new CallsError('INVALID_ARGUMENT', `halfTaps must be 4 to 256, not ${halfTaps}`)
    this.inRate = inRate
    this.outRate = outRate
    this.identity = inRate === outRate
    const g = gcd(inRate, outRate)
    this.phases = outRate / g
    this.step = inRate / g
    // Downsampling: the cut-off moves down to the output's Nyquist frequency and the filter grows to match.
    const ratio = Math.min(1, outRate / inRate)
    // A Kaiser window of β = 8 over 2·halfTaps taps has a transition band about 5/halfTaps of the Nyquist
    // frequency wide (Kaiser's formula): centring it at 1 - 2.5/halfTaps puts the stop band's start at Nyquist.
    const cutoff = (1 - 2.51 / halfTaps) * ratio
    this.side = Math.ceil(halfTaps / ratio)
    this.taps = 2 * this.side
    this.interpolated = this.phases > MAX_PHASES
    const rows = this.interpolated ? MAX_PHASES + 1 : this.phases
    this.table = new Float32Array(this.identity ? 0 : rows * this.taps)
    const i0Beta = besselI0(KAISER_BETA)
    for (let row = 0; row < (this.identity ? 0 : rows); row++) {
      const fraction = this.interpolated ? row / MAX_PHASES : row / this.phases
      let sum = 0
      for (let j = 0; j < this.taps; j++) {
        const x = j - this.side + 1 - fraction
        const r = x / this.side
        const window = Math.abs(r) >= 1 ? 0 : besselI0(KAISER_BETA * Math.sqrt(1 - r * r)) / i0Beta
        const u = cutoff * x
        const sinc = u === 0 ? 1 : Math.sin(Math.PI * u) / (Math.PI * u)
        const c = cutoff * sinc * window
        this.table[row * this.taps + j] = c
        sum += c
      }
      // Each phase passes DC at exactly unity gain.
      for (let j = 0; j < this.taps; j++) this.table[row * this.taps + j]! /= sum
    }
    this.bufferStart = -(this.side - 1)
    this.buffer = new Float32Array(Math.max(4096, 4 * this.taps))
    this.bufferLength = this.side - 1
  }

  /** Resamples the next piece of the stream; returns the output it completes (it lags the input by a few samples until `flush`). */
  push(input: Int16Array): Int16Array {
    if (this.flushed) throw new CallsError('CLOSED', 'the resampler was flushed')
    if (this.identity) {
      this.inCount += input.length
      this.outCount += input.length
      return input.slice()
    }
    this.append(input)
    this.inCount += input.length
    return this.produce(false)
  }

  /** The rest of the output, as if the input were followed by silence. The resampler is finished after it. */
  flush(): Int16Array {
    if (this.flushed) return new Int16Array(0)
    this.flushed = true
    if (this.identity) return new Int16Array(0)
    this.append(new Int16Array(this.side))
    return this.produce(true)
  }

  private append(input: Int16Array): void {
    const needed = this.bufferLength + input.length
    if (needed > this.buffer.length) {
      const grown = new Float32Array(Math.max(needed, 2 * this.buffer.length))
      grown.set(this.buffer.subarray(0, this.bufferLength))
      this.buffer = grown
    }
    for (let i = 0; i < input.length; i++) this.buffer[this.bufferLength + i] = input[i]!
    this.bufferLength = needed
  }

  private produce(final: boolean): Int16Array {
    const available = this.bufferStart + this.bufferLength // one past the last input index held
    // Output n exists while its time is before the end of the input: n < inCount·phases/step.
    const total = final ? Math.ceil((this.inCount * this.phases) / this.step) : Number.POSITIVE_INFINITY
    const { buffer, table, taps, side, phases, step } = this
    // At most this many outputs have their last input sample held.
    const bound = Math.max(0, Math.ceil(((available - side - this.base) * phases) / step) + 1)
    const out = new Int16Array(Math.min(bound, total - this.outCount))
    let written = 0
    while (written < out.length && this.base + side < available) {
      const first = this.base - side + 1 - this.bufferStart
      let acc = 0
      if (this.interpolated) {
        const position = (this.phase * MAX_PHASES) / phases
        const row = Math.floor(position)
        const a = position - row
        const r0 = row * taps
        const r1 = r0 + taps
        for (let j = 0; j < taps; j++) acc += buffer[first + j]! * ((1 - a) * table[r0 + j]! + a * table[r1 + j]!)
      } else {
        const r0 = this.phase * taps
        for (let j = 0; j < taps; j++) acc += buffer[first + j]! * table[r0 + j]!
      }
      out[written++] = clip16(acc)
      this.outCount++
      this.phase += step
      if (this.phase >= phases) {
        this.base += Math.floor(this.phase / phases)
        this.phase %= phases
      }
    }
    // Drop the input no later output needs.
    const keepFrom = this.base - side + 1 - this.bufferStart
    if (keepFrom > 0) {
      const drop = Math.min(keepFrom, this.bufferLength)
      this.buffer.copyWithin(0, drop, this.bufferLength)
      this.bufferLength -= drop
      this.bufferStart += drop
    }
    return written === out.length ? out : out.slice(0, written)
  }
}

/** Resamples a whole signal (16-bit mono). The output has ceil(length·outRate/inRate) samples. */
export function resample(input: Int16Array, inRate: number, outRate: number, options: ResamplerOptions = {}): Int16Array {
  const r = new Resampler(inRate, outRate, options)
  const head = r.push(input)
  const tail = r.flush()
  const out = new Int16Array(head.length + tail.length)
  out.set(head)
  out.set(tail, head.length)
  return out
}

/** Interleaved frames of `channels` channels to mono (the mean of the channels). */
export function downmix(interleaved: Int16Array, channels: number): Int16Array {
  if (!Number.isInteger(channels) || channels < 1)
    throw new CallsError('INVALID_ARGUMENT', `channels must be a positive integer, not ${channels}`)
  if (channels === 1) return interleaved.slice()
  const frames = Math.floor(interleaved.length / channels)
  const out = new Int16Array(frames)
  for (let i = 0; i < frames; i++) {
    let sum = 0
    for (let c = 0; c < channels; c++) sum += interleaved[i * channels + c]!
    out[i] = Math.round(sum / channels)
  }
  return out
}
