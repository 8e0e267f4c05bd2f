import { CallsError } from './errors.ts'
import { Fft, nextPowerOfTwo } from './fft.ts'
import { LIMITS } from './limits.ts'
import { resample } from './resample.ts'

/** Both signals are compared at 16 kHz: speech, and what libwebrtc delivers before its first packet. */
const RATE = 16_000
/** Short-time spectra: 32 ms Hann windows every 5 ms. */
const WINDOW = 512
const HOP = 80
/** Mel-spaced bands from 100 Hz to 7 kHz. */
const BANDS = 24
const LOW_HZ = 100
const HIGH_HZ = 7_000
/** Log-energy floor (per band, of samples scaled to ±1), about 90 dB below a full-scale band. */
const FLOOR = 1e-6
/** Frames of the original within this many dB of its loudest frame count as speech. */
const ACTIVE_RANGE_DB = 45
/** The original is scored in segments of 0.5 s … */
const SEGMENT_FRAMES = 100
/** … each aligned again within ±60 ms, since the receiver's jitter buffer stretches and shrinks time (NetEq). */
const LOCAL_SHIFT_FRAMES = 12
/** A segment with fewer frames of speech than this is not scored. */
const MIN_ACTIVE_FRAMES = 20

export interface CompareOptions {
  /** The rate of both signals. Default 48,000. */
  sampleRate?: number
  /** The similarity a recording must reach to pass, 0 to 1. Default 0.8 (a call through libwebrtc scores about 0.95; speech with a third cut out about 0.6). */
  threshold?: number
  /** The recording's level against the original's must be within these. Default 0.5 and 2 (±6 dB). */
  minLevelRatio?: number
  maxLevelRatio?: number
  /** How far the recording may be shifted against the original. Default 10 s. */
  maxOffsetMs?: number
}

export interface Comparison {
  /** Where the original starts in the recording, ms (negative: the recording starts inside the original). */
  offsetMs: number
  /**
   * How alike the two are, 0 (unrelated) to 1: the correlation of their
   * short-time log spectra (24 mel bands, each band's mean removed per half
   * second), over the half seconds where the original has speech.
   */
  similarity: number
  /** The recording's RMS level over the original's span, against the original's. */
  levelRatio: number
  pass: boolean
}

export const COMPARE_DEFAULTS = { threshold: 0.8, minLevelRatio: 0.5, maxLevelRatio: 2, maxOffsetMs: 10_000 } as const

function toAnalysis(signal: Int16Array, rate: number): Float64Array {
  // A shorter filter than for playback: the analysis stops at 7 kHz, well inside its pass band.
  const at16k = rate === RATE ? signal : resample(signal, rate, RATE, { halfTaps: 16 })
  const out = new Float64Array(at16k.length)
  for (let i = 0; i < at16k.length; i++) out[i] = at16k[i]! / 32768
  return out
}

function energy(x: Float64Array): number {
  let e = 0
  for (let i = 0; i < x.length; i++) e += x[i]! * x[i]!
  return e
}

/**
 * The lag (in samples) at which the recording best matches the original:
 * the peak of their cross-correlation (by FFT), normalised by the energy of
 * the recording under the original at each lag, so a loud stretch elsewhere
 * does not win.
 */
function bestLag(original: Float64Array, recording: Float64Array, maxLag: number): number {
  const n = nextPowerOfTwo(original.length + recording.length)
  const fft = new Fft(n)
  // Both real signals in one complex transform, z = o + i·r, then split: O[k] = (Z[k] + conj Z[-k]) / 2,
  // R[k] = (Z[k] - conj Z[-k]) / 2i.
  const zr = new Float64Array(n)
  const zi = new Float64Array(n)
  zr.set(original)
  zi.set(recording)
  fft.forward(zr, zi)
  const ar = new Float64Array(n)
  const ai = new Float64Array(n)
  for (let k = 0; k < n; k++) {
    const m = (n - k) % n
    const or = (zr[k]! + zr[m]!) / 2
    const oi = (zi[k]! - zi[m]!) / 2
    const rr = (zi[k]! + zi[m]!) / 2
    const ri = (zr[m]! - zr[k]!) / 2
    // conj(O)·R: its inverse is Σ o[t]·r[t + lag].
    ar[k] = or * rr + oi * ri
    ai[k] = or * ri - oi * rr
  }
  fft.inverse(ar, ai)
  const prefix = new Float64Array(recording.length + 1)
  for (let i = 0; i < recording.length; i++) prefix[i + 1] = prefix[i]! + recording[i]! * recording[i]!
  const windowEnergy = (lag: number): number => {
    const from = Math.max(0, lag)
    const to = Math.min(recording.length, lag + original.length)
    return to > from ? prefix[to]! - prefix[from]! : 0
  }
  // A floor under the window's energy (the recording's mean over a window as long as the original) keeps
  // near-silent stretches and lags where the two barely overlap from scoring by division.
  const floor = 1e-6 * energy(original) + (prefix[recording.length]! * Math.min(original.length, recording.length)) / recording.length
  let best = 0
  let bestScore = Number.NEGATIVE_INFINITY
  const lo = Math.max(-maxLag, -(original.length - 1))
  const hi = Math.min(maxLag, recording.length - 1)
  for (let lag = lo; lag <= hi; lag++) {
    const c = ar[lag >= 0 ? lag : n + lag]!
    const score = c / Math.sqrt(windowEnergy(lag) + floor)
    if (score > bestScore) {
      bestScore = score
      best = lag
    }
  }
  return best
}

function melOf(hz: number): number {
  return 2595 * Math.log10(1 + hz / 700)
}

/** The FFT bins [from, to) of each band. */
function bandBins(): Array<[number, number]> {
  const lo = melOf(LOW_HZ)
  const hi = melOf(HIGH_HZ)
  const binHz = RATE / WINDOW
  const edges: number[] = []
  for (let b = 0; b <= BANDS; b++) {
    const mel = lo + ((hi - lo) * b) / BANDS
    const hz = 700 * (10 ** (mel / 2595) - 1)
    edges.push(Math.round(hz / binHz))
  }
  const bins: Array<[number, number]> = []
  for (let b = 0; b < BANDS; b++) {
    const from = edges[b]!
    bins.push([from, Math.max(from + 1, edges[b + 1]!)])
  }
  return bins
}

const BAND_BINS = bandBins()
const HANN = Float64Array.from({ length: WINDOW }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / WINDOW))

/**
 * Log band energies (dB) of `count` frames centred at `start + t·HOP`
 * (samples outside the signal are silence): `count` rows of BANDS values.
 */
function spectra(signal: Float64Array, start: number, count: number): Float64Array {
  const fft = new Fft(WINDOW)
  const re = new Float64Array(WINDOW)
  const im = new Float64Array(WINDOW)
  const out = new Float64Array(count * BANDS)
  const windowed = (t: number, into: Float64Array): void => {
    const first = start + t * HOP - WINDOW / 2
    for (let i = 0; i < WINDOW; i++) {
      const at = first + i
      into[i] = t < count && at >= 0 && at < signal.length ? signal[at]! * HANN[i]! : 0
    }
  }
  // Two real frames per complex transform: frame t in the real part, t + 1 in the imaginary part.
  for (let t = 0; t < count; t += 2) {
    windowed(t, re)
    windowed(t + 1, im)
    fft.forward(re, im)
    for (let b = 0; b < BANDS; b++) {
      const [from, to] = BAND_BINS[b]!
      let e0 = 0
      let e1 = 0
      for (let k = from; k < to; k++) {
        const m = WINDOW - k
        const xr = re[k]! + re[m]!
        const xi = im[k]! - im[m]!
        const yr = im[k]! + im[m]!
        const yi = re[m]! - re[k]!
        e0 += xr * xr + xi * xi
        e1 += yr * yr + yi * yi
      }
      // The split spectra are twice the frames' (the /2 is folded into the scale).
      out[t * BANDS + b] = 10 * Math.log10(e0 / WINDOW + FLOOR)
      if (t + 1 < count) out[(t + 1) * BANDS + b] = 10 * Math.log10(e1 / WINDOW + FLOOR)
    }
  }
  return out
}

/** Pearson correlation of two blocks of `frames` rows, after removing each band's mean within the block; 0 when either is flat. */
function blockCorrelation(a: Float64Array, aRow: number, b: Float64Array, bRow: number, frames: number): number {
  let sab = 0
  let saa = 0
  let sbb = 0
  for (let band = 0; band < BANDS; band++) {
    let ma = 0
    let mb = 0
    for (let t = 0; t < frames; t++) {
      ma += a[(aRow + t) * BANDS + band]!
      mb += b[(bRow + t) * BANDS + band]!
    }
    ma /= frames
    mb /= frames
    for (let t = 0; t < frames; t++) {
      const x = a[(aRow + t) * BANDS + band]! - ma
      const y = b[(bRow + t) * BANDS + band]! - mb
      sab += x * y
      saa += x * x
      sbb += y * y
    }
  }
  // Less than 0.01 dB² of variation is silence (or a constant tone), not speech.
  if (saa < 1e-2 * frames * BANDS || sbb < 1e-2 * frames * BANDS) return 0
  return sab / Math.sqrt(saa * sbb)
}

/**
 * Compares a recording (what came out of a call, a voicemail) with the
 * original that went in: aligns them by cross-correlation, then measures
 * how alike their short-time spectra are and how their levels compare.
 * A lossy codec (Opus) keeps the spectral envelope of speech while changing
 * its waveform, so the spectra are compared, not the samples; the
 * receiver's jitter buffer may stretch time by tens of ms, so each half
 * second is aligned again within ±60 ms. Silence, noise, other speech,
 * reversed speech and speech with pieces cut out all score far below
 * a real call.
 */
export function compareAudio(original: Int16Array, recording: Int16Array, options: CompareOptions = {}): Comparison {
  const rate = options.sampleRate ?? LIMITS.calls.audio.sampleRate
  const threshold = options.threshold ?? COMPARE_DEFAULTS.threshold
  const minLevel = options.minLevelRatio ?? COMPARE_DEFAULTS.minLevelRatio
  const maxLevel = options.maxLevelRatio ?? COMPARE_DEFAULTS.maxLevelRatio
  const maxOffsetMs = options.maxOffsetMs ?? COMPARE_DEFAULTS.maxOffsetMs
  if (!(threshold >= 0 && threshold <= 1)) throw new CallsError('INVALID_ARGUMENT', `a threshold of ${threshold} (0 to 1)`)
  if (!(maxOffsetMs >= 0)) throw new CallsError('INVALID_ARGUMENT', `a maximum offset of ${maxOffsetMs} ms`)
  const o = toAnalysis(original, rate)
  const r = toAnalysis(recording, rate)
  const originalEnergy = energy(o)
  if (originalEnergy === 0) throw new CallsError('INVALID_ARGUMENT', 'the original is silent: there is nothing to compare with')

  const lag = energy(r) === 0 ? 0 : bestLag(o, r, Math.round((maxOffsetMs * RATE) / 1000))

  // Level over the original's span (what the recording lacks there counts as silence).
  let recordedEnergy = 0
  for (let i = 0; i < o.length; i++) {
    const v = r[lag + i]
    if (v !== undefined) recordedEnergy += v * v
  }
  const levelRatio = Math.sqrt(recordedEnergy / originalEnergy)

  const frames = Math.ceil(o.length / HOP)
  const so = spectra(o, 0, frames)
  // The recording's frames from LOCAL_SHIFT_FRAMES before the aligned start to as many after the end.
  const sr = spectra(r, lag - LOCAL_SHIFT_FRAMES * HOP, frames + 2 * LOCAL_SHIFT_FRAMES)
  const frameDb = new Float64Array(frames)
  let loudest = Number.NEGATIVE_INFINITY
  for (let t = 0; t < frames; t++) {
    let e = 0
    for (let b = 0; b < BANDS; b++) e += 10 ** (so[t * BANDS + b]! / 10)
    frameDb[t] = 10 * Math.log10(e)
    loudest = Math.max(loudest, frameDb[t]!)
  }

  let weighted = 0
  let weights = 0
  for (let seg = 0; seg < frames; seg += SEGMENT_FRAMES) {
    const length = Math.min(SEGMENT_FRAMES, frames - seg)
    let active = 0
    for (let t = seg; t < seg + length; t++) if (frameDb[t]! >= loudest - ACTIVE_RANGE_DB) active++
    if (active < MIN_ACTIVE_FRAMES) continue
    let best = Number.NEGATIVE_INFINITY
    for (let d = -LOCAL_SHIFT_FRAMES; d <= LOCAL_SHIFT_FRAMES; d++) {
      best = Math.max(best, blockCorrelation(so, seg, sr, seg + LOCAL_SHIFT_FRAMES + d, length))
    }
    weighted += active * Math.max(0, best)
    weights += active
  }
  const similarity = weights === 0 ? 0 : weighted / weights
  const offsetMs = (lag * 1000) / RATE
  const pass = similarity >= threshold && levelRatio >= minLevel && levelRatio <= maxLevel
  return { offsetMs, similarity, levelRatio, pass }
}
