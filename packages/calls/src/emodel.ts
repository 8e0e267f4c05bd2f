import { CallsError } from './errors.ts'

export interface EModelInput {
  /** Round-trip time, ms (the one-way delay is half of it unless `oneWayDelayMs` is given). */
  rttMs?: number
  /** One-way network delay, ms. */
  oneWayDelayMs?: number
  /** Interarrival jitter, ms (RFC 3550): the jitter buffer is taken to hold twice it, unless `jitterBufferMs` is given. */
  jitterMs?: number
  /** The receiver's jitter buffer delay, ms (libwebrtc reports it: `jitterBufferDelay / jitterBufferEmittedCount`). */
  jitterBufferMs?: number
  /** Packets lost, 0 to 1. */
  lossFraction?: number
  /** Burst ratio (1: random loss, more: bursty). Default 1. */
  burstR?: number
  /** The codec's own delay (framing and look-ahead), ms. Default 26.5 (Opus, 20 ms frames). */
  codecDelayMs?: number
  /** Default OPUS. */
  codec?: CodecImpairment
  /** The advantage factor A. Default 0. */
  advantage?: number
}

export interface CodecImpairment {
  /** Equipment impairment factor Ie. */
  ie: number
  /** Packet-loss robustness factor Bpl. */
  bpl: number
}

/** Opus (see above for where these come from). */
export const OPUS: CodecImpairment = { ie: 0, bpl: 25.1 }
/** G.711 with packet-loss concealment (G.113 Appendix I). */
export const G711_PLC: CodecImpairment = { ie: 0, bpl: 25.1 }

/** Ro − Is with G.107's default parameters. */
const R_DEFAULT = 94.77 - 1.41
const OPUS_DELAY_MS = 26.5

export interface EModelResult {
  /** The transmission rating, 0 to 100. */
  r: number
  /** The estimated mean opinion score (conversational quality), 1 to 4.5. */
  mos: number
  /** The one-way mouth-to-ear delay used, ms. */
  delayMs: number
  idd: number
  ieEff: number
}

function check(value: number | undefined, name: string, max = Number.POSITIVE_INFINITY): number | undefined {
  if (value === undefined) return undefined
  if (!Number.isFinite(value) || value < 0 || value > max)
    throw new CallsError('INVALID_ARGUMENT', `${name} must be a number from 0 to ${max}, not ${value}`)
  return value
}

/** Idd: the impairment of a one-way delay of `ta` ms (G.107, mT = 100, sT = 1). */
export function delayImpairment(ta: number): number {
  if (ta <= 100) return 0
  const x = Math.log10(ta / 100) / Math.log10(2)
  return 25 * ((1 + x ** 6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)
}

/** Ie,eff for a loss of `ppl` percent (G.107). */
export function lossImpairment(ppl: number, codec: CodecImpairment = OPUS, burstR = 1): number {
  return codec.ie + ((95 - codec.ie) * ppl) / (ppl / burstR + codec.bpl)
}

/** R → MOS (G.107 Annex B). */
export function mosFromR(r: number): number {
  if (r <= 0) return 1
  if (r >= 100) return 4.5
  // Below R ≈ 6.5 the polynomial dips under 1; MOS 1 is the floor of the scale.
  return Math.max(1, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6)
}

/**
 * The ITU-T G.107 E-model (06/2015), simplified as it is commonly used for
 * VoIP monitoring: R = Ro − Is − Id − Ie,eff + A, then R → MOS (G.107
 * Annex B).
 *
 * - Ro − Is: what G.107 computes from its default parameters, Ro = 94.77
 *   and Is = 1.41: a clean connection rates 93.36 (G.107's often quoted
 *   93.2 also takes off the default echo terms).
 * - Id: only Idd, the impairment of a long absolute delay Ta (G.107
 *   clause 7, with the default mT = 100 ms and sT = 1). The talker- and
 *   listener-echo terms (Idte, Idle) are left out: the ends cancel echo
 *   (browsers) or have none (headless peers playing files).
 *   Ta is the one-way mouth-to-ear delay: the network's (RTT/2 unless given),
 *   the jitter buffer's (measured, or twice the jitter), and the codec's.
 * - Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl) (G.107 clause 7).
 * - A, the advantage factor: 0 by default (G.107's value for wired access).
 *
 * Opus values: G.113 Appendix I (11/2007) has no narrowband planning values
 * for Opus (it predates it). Opus is used at Ie = 0 (at the 32 kbit/s
 * libwebrtc sends speech at, its listening quality is at or above G.711's,
 * which G.113 rates 0) and Bpl = 25.1, G.113 Appendix I's value for G.711
 * with packet-loss concealment under random loss: Opus's
 * concealment (and in-band FEC, which libwebrtc turns on) does at least as
 * well, so this errs on the safe side. Give other values in `codec` to
 * model another codec. Figures left out count as ideal.
 */
export function eModel(input: EModelInput): EModelResult {
  const rtt = check(input.rttMs, 'rttMs')
  const oneWay = check(input.oneWayDelayMs, 'oneWayDelayMs')
  const jitter = check(input.jitterMs, 'jitterMs')
  const buffer = check(input.jitterBufferMs, 'jitterBufferMs')
  const loss = check(input.lossFraction, 'lossFraction', 1) ?? 0
  const burstR = input.burstR ?? 1
  if (!Number.isFinite(burstR) || burstR < 1) throw new CallsError('INVALID_ARGUMENT', `burstR must be at least 1, not ${burstR}`)
  const codecDelay = check(input.codecDelayMs, 'codecDelayMs') ?? OPUS_DELAY_MS
  const codec = input.codec ?? OPUS
  const advantage = check(input.advantage, 'advantage', 20) ?? 0

  const network = oneWay ?? (rtt === undefined ? 0 : rtt / 2)
  const delayMs = network + (buffer ?? 2 * (jitter ?? 0)) + codecDelay
  const idd = delayImpairment(delayMs)
  const ieEff = lossImpairment(loss * 100, codec, burstR)
  const r = Math.min(100, Math.max(0, R_DEFAULT - idd - ieEff + advantage))
  return { r, mos: mosFromR(r), delayMs, idd, ieEff }
}
