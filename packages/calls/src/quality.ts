import type { CallQualityFigures } from '@parley/protocol'
import { eModel } from './emodel.ts'
import type { IceCandidateType, PeerConnection, Stats, StatsReport } from './wrtc.ts'

/** A certificate fingerprint: `algorithm` lower case ('sha-256'), `value` upper-case hex pairs joined by colons. */
export interface Fingerprint {
  algorithm: string
  value: string
}

/** The cumulative counters of one `getStats()` report that call quality is computed from. */
export interface StatsSnapshot {
  /** ms since the epoch (the report's). */
  timestamp: number
  /** The transport's bytes (all of it: RTP, RTCP, STUN, SRTP overhead). */
  bytesSent: number | null
  bytesReceived: number | null
  /** Audio received (summed over inbound-rtp streams). */
  inbound: {
    packetsReceived: number
    packetsLost: number
    bytes: number
    /** RFC 3550 interarrival jitter, s (the largest over the streams). */
    jitter: number | null
    /** Σ of the time each emitted sample spent in the jitter buffer, s, and how many samples. */
    jitterBufferDelay: number
    jitterBufferEmitted: number
  } | null
  /** Audio sent (summed over outbound-rtp streams). */
  outbound: { packetsSent: number; bytes: number } | null
  /** What the other side reports about what we send (RTCP receiver reports). */
  remoteInbound: { roundTripTime: number | null; fractionLost: number | null } | null
  /** The selected candidate pair. */
  pair: {
    currentRoundTripTime: number | null
    localType: IceCandidateType | null
    remoteType: IceCandidateType | null
  } | null
  localFingerprint: Fingerprint | null
  remoteFingerprint: Fingerprint | null
}

/**
 * Live figures of a call, from one stats report or the difference between two:
 * the figures the local API shows (`CallQualityFigures`: RTT is RTCP's when
 * measured, else the selected ICE pair's; loss is over the interval, or since
 * the start without a previous snapshot; bitrates are null without one), with
 * the candidate types named and what only the call service uses.
 */
export interface CallQuality extends CallQualityFigures {
  /** Bits per second of audio payload (RTP payload only); null without a previous snapshot. */
  audioBitrateInBps: number | null
  audioBitrateOutBps: number | null
  localCandidateType: IceCandidateType | null
  remoteCandidateType: IceCandidateType | null
  remoteFingerprint: Fingerprint | null
}

const CANDIDATE_TYPES: readonly IceCandidateType[] = ['host', 'srflx', 'prflx', 'relay']

function num(stats: Stats | undefined, key: string): number | null {
  const v = stats?.[key]
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}

function str(stats: Stats | undefined, key: string): string | null {
  const v = stats?.[key]
  return typeof v === 'string' ? v : null
}

function candidateType(stats: Stats | undefined): IceCandidateType | null {
  const t = str(stats, 'candidateType')
  return t !== null && (CANDIDATE_TYPES as readonly string[]).includes(t) ? (t as IceCandidateType) : null
}

function certificate(report: StatsReport, id: string | null): Fingerprint | null {
  if (id === null) return null
  const cert = report.get(id)
  const value = str(cert, 'fingerprint')
  const algorithm = str(cert, 'fingerprintAlgorithm')
  return value === null || algorithm === null ? null : { algorithm: algorithm.toLowerCase(), value: value.toUpperCase() }
}

function byType(report: StatsReport, type: string): Stats[] {
  const out: Stats[] = []
  for (const stats of report.values()) if (stats['type'] === type) out.push(stats)
  return out
}

function isAudio(stats: Stats): boolean {
  return (stats['kind'] ?? stats['mediaType']) === 'audio'
}

/** The transport that carries the media (with max-bundle, the only one). */
function mainTransport(report: StatsReport): Stats | undefined {
  const transports = byType(report, 'transport')
  return transports.find((t) => typeof t['selectedCandidatePairId'] === 'string') ?? transports[0]
}

/** The remote DTLS certificate's fingerprint, as libwebrtc saw it in the handshake (transport.remoteCertificateId). */
export function remoteFingerprint(report: StatsReport): Fingerprint | null {
  return certificate(report, str(mainTransport(report), 'remoteCertificateId'))
}

/** Reads the counters call quality needs from one stats report. */
export function snapshotStats(report: StatsReport): StatsSnapshot {
  const transport = mainTransport(report)
  let timestamp = num(transport, 'timestamp') ?? 0

  let inbound: StatsSnapshot['inbound'] = null
  for (const s of byType(report, 'inbound-rtp').filter(isAudio)) {
    inbound ??= { packetsReceived: 0, packetsLost: 0, bytes: 0, jitter: null, jitterBufferDelay: 0, jitterBufferEmitted: 0 }
    inbound.packetsReceived += num(s, 'packetsReceived') ?? 0
    // packetsLost is signed (duplicates make it negative).
    inbound.packetsLost += Math.max(0, num(s, 'packetsLost') ?? 0)
    inbound.bytes += num(s, 'bytesReceived') ?? 0
    const jitter = num(s, 'jitter')
    if (jitter !== null) inbound.jitter = Math.max(inbound.jitter ?? 0, jitter)
    inbound.jitterBufferDelay += num(s, 'jitterBufferDelay') ?? 0
    inbound.jitterBufferEmitted += num(s, 'jitterBufferEmittedCount') ?? 0
    timestamp = Math.max(timestamp, num(s, 'timestamp') ?? 0)
  }

  let outbound: StatsSnapshot['outbound'] = null
  for (const s of byType(report, 'outbound-rtp').filter(isAudio)) {
    outbound ??= { packetsSent: 0, bytes: 0 }
    outbound.packetsSent += num(s, 'packetsSent') ?? 0
    outbound.bytes += num(s, 'bytesSent') ?? 0
  }

  let remoteInbound: StatsSnapshot['remoteInbound'] = null
  for (const s of byType(report, 'remote-inbound-rtp').filter(isAudio)) {
    const measured = (num(s, 'roundTripTimeMeasurements') ?? 1) > 0
    remoteInbound = { roundTripTime: measured ? num(s, 'roundTripTime') : null, fractionLost: num(s, 'fractionLost') }
  }

  const pairId = str(transport, 'selectedCandidatePairId')
  const pairStats =
    (pairId === null ? undefined : report.get(pairId)) ??
    byType(report, 'candidate-pair').find((p) => p['nominated'] === true && p['state'] === 'succeeded')
  const pair =
    pairStats === undefined
      ? null
      : {
          currentRoundTripTime: num(pairStats, 'currentRoundTripTime'),
          localType: candidateType(report.get(str(pairStats, 'localCandidateId') ?? '')),
          remoteType: candidateType(report.get(str(pairStats, 'remoteCandidateId') ?? ''))
        }

  return {
    timestamp,
    bytesSent: num(transport, 'bytesSent'),
    bytesReceived: num(transport, 'bytesReceived'),
    inbound,
    outbound,
    remoteInbound,
    pair,
    localFingerprint: certificate(report, str(transport, 'localCertificateId')),
    remoteFingerprint: certificate(report, str(transport, 'remoteCertificateId'))
  }
}

function rate(now: number | null | undefined, before: number | null | undefined, seconds: number): number | null {
  if (now === null || now === undefined || before === null || before === undefined || seconds <= 0) return null
  return Math.max(0, ((now - before) * 8) / seconds)
}

/**
 * Call quality from a snapshot, and the previous one for rates and for loss
 * and jitter-buffer figures over the interval (without it, loss and buffer
 * figures are averages since the start and bitrates are null).
 */
export function callQuality(current: StatsSnapshot, previous?: StatsSnapshot): CallQuality {
  const seconds = previous === undefined ? 0 : (current.timestamp - previous.timestamp) / 1000
  const inNow = current.inbound
  const inBefore = previous?.inbound ?? null

  let lossFraction: number | null = null
  let jitterBufferMs: number | null = null
  if (inNow !== null) {
    const lost = inNow.packetsLost - (inBefore?.packetsLost ?? 0)
    const received = inNow.packetsReceived - (inBefore?.packetsReceived ?? 0)
    lossFraction = lost + received > 0 ? Math.min(1, Math.max(0, lost / (lost + received))) : null
    const emitted = inNow.jitterBufferEmitted - (inBefore?.jitterBufferEmitted ?? 0)
    const delay = inNow.jitterBufferDelay - (inBefore?.jitterBufferDelay ?? 0)
    jitterBufferMs = emitted > 0 ? (delay / emitted) * 1000 : null
  }

  const rttS = current.remoteInbound?.roundTripTime ?? current.pair?.currentRoundTripTime ?? null
  const rttMs = rttS === null ? null : rttS * 1000
  const jitterMs = inNow?.jitter === null || inNow?.jitter === undefined ? null : inNow.jitter * 1000

  const mos =
    lossFraction === null
      ? null
      : eModel({
          rttMs: rttMs ?? 0,
          lossFraction,
          ...(jitterBufferMs === null ? { jitterMs: jitterMs ?? 0 } : { jitterBufferMs })
        }).mos

  return {
    rttMs,
    jitterMs,
    jitterBufferMs,
    lossFraction,
    sendLossFraction: current.remoteInbound?.fractionLost ?? null,
    bitrateInBps: rate(current.bytesReceived, previous?.bytesReceived, seconds),
    bitrateOutBps: rate(current.bytesSent, previous?.bytesSent, seconds),
    audioBitrateInBps: rate(inNow?.bytes, inBefore?.bytes, seconds),
    audioBitrateOutBps: rate(current.outbound?.bytes, previous?.outbound?.bytes, seconds),
    localCandidateType: current.pair?.localType ?? null,
    remoteCandidateType: current.pair?.remoteType ?? null,
    mos,
    remoteFingerprint: current.remoteFingerprint
  }
}

/** Polls a peer connection's stats; each `poll()` reports the interval since the previous one. */
export class QualityMonitor {
  readonly pc: PeerConnection
  private previous: StatsSnapshot | undefined

  constructor(pc: PeerConnection) {
    this.pc = pc
  }

  async poll(): Promise<CallQuality> {
    const snapshot = snapshotStats(await this.pc.getStats())
    const quality = callQuality(snapshot, this.previous)
    this.previous = snapshot
    return quality
  }
}

const FINGERPRINT_LINE = /^a=fingerprint:([A-Za-z0-9-]+) +([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+) *$/

/** The `a=fingerprint:` lines of an SDP (session and media level, in order); malformed ones are left out. */
export function parseSdpFingerprints(sdp: string): Fingerprint[] {
  const out: Fingerprint[] = []
  for (const line of sdp.split(/\r?\n/)) {
    const m = FINGERPRINT_LINE.exec(line)
    if (m !== null) out.push({ algorithm: m[1]!.toLowerCase(), value: m[2]!.toUpperCase() })
  }
  return out
}
