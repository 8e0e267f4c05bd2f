import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { callQuality, eModel, parseSdpFingerprints, remoteFingerprint, type Stats, type StatsReport, snapshotStats } from '../src/index.ts'

const LOCAL = '87:1A:E9:04:74:E3:0C:08:CB:E4:1D:19:36:D7:91:47:04:6C:C2:79:F9:85:0B:2F:B6:16:15:69:71:06:D3:33'
const REMOTE = 'C1:91:13:1A:ED:95:0E:AA:A4:76:0C:5F:C7:1E:52:46:E3:8B:3B:58:19:48:0C:40:93:D0:FB:50:35:41:87:99'

/** A report shaped like the ones @roamhq/wrtc 0.10 (libwebrtc M106) returns for an audio call, trimmed to what matters. */
function report(
  at: number,
  counters: { received: number; lost: number; bytesIn: number; bytesOut: number; sent: number; jbDelay: number; jbEmitted: number }
): StatsReport {
  const entries: Stats[] = [
    {
      id: `RTCCertificate_${LOCAL}`,
      timestamp: at,
      type: 'certificate',
      fingerprint: LOCAL,
      fingerprintAlgorithm: 'sha-256',
      base64Certificate: 'MIIB'
    },
    {
      id: `RTCCertificate_${REMOTE}`,
      timestamp: at,
      type: 'certificate',
      fingerprint: REMOTE,
      fingerprintAlgorithm: 'sha-256',
      base64Certificate: 'MIIB'
    },
    // A pair that is not selected (and not nominated) must not be taken.
    {
      id: 'RTCIceCandidatePair_a_b',
      timestamp: at,
      type: 'candidate-pair',
      localCandidateId: 'RTCIceCandidate_a',
      remoteCandidateId: 'RTCIceCandidate_b',
      state: 'succeeded',
      nominated: false,
      currentRoundTripTime: 0.5
    },
    {
      id: 'RTCIceCandidatePair_c_d',
      timestamp: at,
      type: 'candidate-pair',
      localCandidateId: 'RTCIceCandidate_c',
      remoteCandidateId: 'RTCIceCandidate_d',
      state: 'succeeded',
      nominated: true,
      currentRoundTripTime: 0.042
    },
    { id: 'RTCIceCandidate_a', timestamp: at, type: 'local-candidate', candidateType: 'host', address: '192.0.2.2' },
    { id: 'RTCIceCandidate_b', timestamp: at, type: 'remote-candidate', candidateType: 'host', address: '192.0.2.3' },
    { id: 'RTCIceCandidate_c', timestamp: at, type: 'local-candidate', candidateType: 'srflx', address: '203.0.113.7' },
    { id: 'RTCIceCandidate_d', timestamp: at, type: 'remote-candidate', candidateType: 'relay', address: '198.51.100.9' },
    {
      id: 'RTCInboundRTPAudioStream_1',
      timestamp: at,
      type: 'inbound-rtp',
      kind: 'audio',
      mediaType: 'audio',
      jitter: 0.012,
      packetsLost: counters.lost,
      packetsReceived: counters.received,
      bytesReceived: counters.bytesIn,
      jitterBufferDelay: counters.jbDelay,
      jitterBufferEmittedCount: counters.jbEmitted
    },
    {
      id: 'RTCOutboundRTPAudioStream_2',
      timestamp: at,
      type: 'outbound-rtp',
      kind: 'audio',
      mediaType: 'audio',
      packetsSent: counters.sent,
      bytesSent: counters.bytesOut
    },
    {
      id: 'RTCRemoteInboundRtpAudioStream_2',
      timestamp: at,
      type: 'remote-inbound-rtp',
      kind: 'audio',
      roundTripTime: 0.04,
      fractionLost: 0.01,
      roundTripTimeMeasurements: 3
    },
    {
      id: 'RTCTransport_0_1',
      timestamp: at,
      type: 'transport',
      bytesSent: counters.bytesOut + 1000,
      bytesReceived: counters.bytesIn + 2000,
      dtlsState: 'connected',
      selectedCandidatePairId: 'RTCIceCandidatePair_c_d',
      localCertificateId: `RTCCertificate_${LOCAL}`,
      remoteCertificateId: `RTCCertificate_${REMOTE}`
    }
  ]
  return new Map(entries.map((s) => [s['id'] as string, s]))
}

describe('call quality from stats', () => {
  const first = report(1_000_000, {
    received: 1000,
    lost: 0,
    bytesIn: 80_000,
    bytesOut: 79_000,
    sent: 990,
    jbDelay: 1000,
    jbEmitted: 20_000
  })
  const second = report(1_002_000, {
    received: 1095,
    lost: 5,
    bytesIn: 88_000,
    bytesOut: 87_000,
    sent: 1090,
    jbDelay: 1000 + 4.8 * 60,
    jbEmitted: 20_000 + 4800
  })

  it('reads the selected pair, the RTT, jitter, loss, bitrates over the interval and the MOS', () => {
    const q = callQuality(snapshotStats(second), snapshotStats(first))
    assert.equal(q.localCandidateType, 'srflx')
    assert.equal(q.remoteCandidateType, 'relay')
    // RTCP's round trip is preferred to the ICE pair's.
    assert.equal(q.rttMs, 40)
    assert.equal(q.jitterMs, 12)
    assert.ok(Math.abs(q.lossFraction! - 0.05) < 1e-12, `loss ${q.lossFraction}`)
    assert.equal(q.sendLossFraction, 0.01)
    assert.ok(Math.abs(q.jitterBufferMs! - 60) < 1e-9, `buffer ${q.jitterBufferMs}`)
    // 8,000 bytes in 2 s.
    assert.equal(q.audioBitrateInBps, 32_000)
    assert.equal(q.audioBitrateOutBps, 32_000)
    assert.equal(q.bitrateInBps, 32_000)
    assert.equal(q.bitrateOutBps, 32_000)
    assert.equal(q.mos, eModel({ rttMs: 40, jitterBufferMs: 60, lossFraction: 0.05 }).mos)
    assert.ok(q.mos! > 3.6 && q.mos! < 4.2)
    assert.deepEqual(q.remoteFingerprint, { algorithm: 'sha-256', value: REMOTE })
  })

  it('without a previous snapshot: averages since the start, no bitrates', () => {
    const q = callQuality(snapshotStats(second))
    assert.ok(Math.abs(q.lossFraction! - 5 / 1100) < 1e-12)
    assert.equal(q.bitrateInBps, null)
    assert.equal(q.audioBitrateOutBps, null)
    assert.ok(Math.abs(q.jitterBufferMs! - ((1000 + 288) / 24_800) * 1000) < 1e-9)
  })

  it('falls back to the ICE pair for the RTT and to the nominated pair without a selected one', () => {
    const r = new Map(second)
    r.delete('RTCRemoteInboundRtpAudioStream_2')
    const transport = { ...r.get('RTCTransport_0_1')! }
    delete transport['selectedCandidatePairId']
    r.set('RTCTransport_0_1', transport)
    const q = callQuality(snapshotStats(r))
    assert.equal(q.rttMs, 42)
    assert.equal(q.localCandidateType, 'srflx')
    assert.equal(q.sendLossFraction, null)
  })

  it('reports nothing it does not know (an empty report)', () => {
    const q = callQuality(snapshotStats(new Map()))
    assert.deepEqual(
      Object.values(q),
      Object.values(q).map(() => null)
    )
  })

  it('finds the remote certificate through the transport', () => {
    assert.deepEqual(remoteFingerprint(first), { algorithm: 'sha-256', value: REMOTE })
    assert.deepEqual(snapshotStats(first).localFingerprint, { algorithm: 'sha-256', value: LOCAL })
    assert.equal(remoteFingerprint(new Map()), null)
  })
})

describe('parseSdpFingerprints', () => {
  it('reads session- and media-level fingerprints, normalised, and leaves malformed lines out', () => {
    const sdp = [
      'v=0',
      'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
      's=-',
      't=0 0',
      `a=fingerprint:SHA-256 ${REMOTE.toLowerCase()}`,
      'm=audio 9 UDP/TLS/RTP/SAVPF 111',
      'c=IN IP4 0.0.0.0',
      `a=fingerprint:sha-1 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01`,
      'a=fingerprint:sha-256 not-hex',
      'a=fingerprint:sha-256',
      'a=setup:actpass',
      ''
    ].join('\r\n')
    assert.deepEqual(parseSdpFingerprints(sdp), [
      { algorithm: 'sha-256', value: REMOTE },
      { algorithm: 'sha-1', value: 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01' }
    ])
    assert.deepEqual(parseSdpFingerprints('v=0\nm=audio 9 UDP/TLS/RTP/SAVPF 111\n'), [])
  })
})
