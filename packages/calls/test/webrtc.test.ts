// Real libwebrtc (@roamhq/wrtc) in one process: two peer connections on
// loopback, signalled directly (offer, answer and trickled candidates as
// JSON), Opus both ways, DTLS-SRTP.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  AudioPeer,
  CallsError,
  compareAudio,
  connectDirectly,
  parseSdpFingerprints,
  QualityMonitor,
  remoteFingerprint
} from '../src/index.ts'
import { SENTENCE, sleep, speech } from './support.ts'

const peers = new Set<AudioPeer>()

function peer(): AudioPeer {
  const p = new AudioPeer()
  peers.add(p)
  return p
}

after(() => {
  for (const p of peers) p.close()
  peers.clear()
})

let sentence: Int16Array

before(async () => {
  // Fails (never skips) without espeak-ng.
  sentence = await speech(SENTENCE)
})

describe('a call through libwebrtc on loopback', () => {
  it('carries speech from caller to callee: the recording passes the comparison, and the stats describe the call', async (t) => {
    const caller = peer()
    const callee = peer()
    const signal = AbortSignal.timeout(20_000)
    const started = performance.now()
    await connectDirectly(caller.pc, callee.pc, { signal })
    await Promise.all([caller.connected({ signal }), callee.connected({ signal })])
    t.diagnostic(`connected in ${(performance.now() - started).toFixed(0)} ms`)
    const recorder = await callee.remoteAudio({ signal })
    const playing = performance.now()
    await caller.player.play(sentence, { signal })
    await sleep(400) // the jitter buffer's tail
    const firstAudioMs = (recorder.firstAudioAt ?? Number.NaN) - playing
    t.diagnostic(`first audio ${firstAudioMs.toFixed(0)} ms after playing started`)
    assert.ok(firstAudioMs >= 0 && firstAudioMs < 1_000, `first audio after ${firstAudioMs} ms`)

    // The figures from stats, over one second of the call.
    const monitor = new QualityMonitor(callee.pc)
    await monitor.poll()
    await caller.player.play(sentence.subarray(0, 48_000), { signal })
    const q = await monitor.poll()
    t.diagnostic(`callee's view: ${JSON.stringify({ ...q, remoteFingerprint: q.remoteFingerprint?.value })}`)
    assert.equal(q.localCandidateType, 'host')
    assert.equal(q.remoteCandidateType, 'host')
    assert.ok(q.rttMs !== null && q.rttMs >= 0 && q.rttMs < 100, `rtt ${q.rttMs}`)
    assert.ok(q.jitterMs !== null && q.jitterMs < 30, `jitter ${q.jitterMs}`)
    assert.equal(q.lossFraction, 0)
    assert.ok(
      q.audioBitrateInBps !== null && q.audioBitrateInBps > 8_000 && q.audioBitrateInBps < 128_000,
      `audio in ${q.audioBitrateInBps} bit/s`
    )
    assert.ok(q.bitrateInBps !== null && q.bitrateInBps >= q.audioBitrateInBps)
    assert.ok(q.bitrateOutBps !== null && q.bitrateOutBps > 0)
    assert.ok(q.mos !== null && q.mos >= 4, `MOS ${q.mos}`)
    // The certificate each side saw in the DTLS handshake is the one the other signalled.
    const calleeSaw = remoteFingerprint(await callee.stats())
    const callerSaw = remoteFingerprint(await caller.stats())
    assert.deepEqual([calleeSaw], parseSdpFingerprints(caller.pc.localDescription?.sdp ?? ''))
    assert.deepEqual([callerSaw], parseSdpFingerprints(callee.pc.localDescription?.sdp ?? ''))
    assert.notDeepEqual(calleeSaw, callerSaw)

    caller.close()
    callee.close()
    const recording = recorder.samples()
    const c = compareAudio(sentence, recording)
    t.diagnostic(
      `recorded ${(recording.length / 48_000).toFixed(2)} s: similarity ${c.similarity.toFixed(3)}, level ${c.levelRatio.toFixed(3)}, offset ${c.offsetMs.toFixed(1)} ms`
    )
    assert.ok(c.pass, JSON.stringify(c))
    assert.ok(c.offsetMs > 0 && c.offsetMs < 1_000)
  })

  it('refuses media when the answer carries a forged fingerprint: DTLS fails, no audio arrives', async (t) => {
    const caller = peer()
    const callee = peer()
    const signal = AbortSignal.timeout(20_000)
    let genuine = ''
    let forged = ''
    await connectDirectly(caller.pc, callee.pc, {
      signal,
      // A man in the middle replacing the callee's certificate fingerprint with his own.
      editAnswer: (sdp) => {
        const [real] = parseSdpFingerprints(sdp)
        assert.ok(real !== undefined, 'the answer has a fingerprint')
        genuine = real.value
        forged = real.value.replace(/^../, real.value.startsWith('00') ? '01' : '00')
        return sdp.replace(/^(a=fingerprint:\S+ ).*$/gim, `$1${forged}`)
      }
    })
    assert.notEqual(forged, genuine)
    const recorder = await callee.remoteAudio({ signal })
    caller.player.start() // sending from the start: the media would flow as soon as DTLS let it
    await assert.rejects(caller.connected({ signal }), (e: unknown) => e instanceof CallsError && e.code === 'CONNECTION_FAILED')
    t.diagnostic(`caller ${caller.pc.connectionState}, callee ${callee.pc.connectionState}`)
    assert.equal(caller.pc.connectionState, 'failed')
    await caller.player.play(sentence.subarray(0, 48_000), { signal })
    await sleep(300)
    assert.equal(recorder.firstAudioAt, null, 'no audio may arrive over a connection whose certificate does not match')
    assert.ok(recorder.samples().every((v) => v === 0))
    // The DTLS transport failed and holds no remote certificate: libwebrtc accepted none.
    const stats = await caller.stats()
    const transport = [...stats.values()].find((s) => s['type'] === 'transport')
    assert.equal(transport?.['dtlsState'], 'failed')
    assert.equal(remoteFingerprint(stats), null)
  })

  it('refuses media when the offer carries a forged fingerprint (the callee checks too)', async () => {
    const caller = peer()
    const callee = peer()
    const signal = AbortSignal.timeout(20_000)
    await connectDirectly(caller.pc, callee.pc, {
      signal,
      editOffer: (sdp) =>
        sdp.replace(/^(a=fingerprint:\S+ )(..)/gim, (_, head: string, first: string) => `${head}${first === '00' ? '01' : '00'}`)
    })
    const recorder = await callee.remoteAudio({ signal })
    caller.player.start()
    await assert.rejects(callee.connected({ signal }), (e: unknown) => e instanceof CallsError && e.code === 'CONNECTION_FAILED')
    await sleep(300)
    assert.equal(recorder.firstAudioAt, null)
    assert.equal(remoteFingerprint(await callee.stats()), null)
  })

  it("gathers no candidate under iceTransportPolicy 'relay' without a TURN server (the config reaches libwebrtc)", async () => {
    const hidden = new AudioPeer({ iceTransportPolicy: 'relay' })
    const open = peer()
    peers.add(hidden)
    const gathered = async (p: AudioPeer): Promise<string[]> => {
      const candidates: string[] = []
      p.pc.onicecandidate = (e) => {
        if (e.candidate?.candidate) candidates.push(e.candidate.candidate)
      }
      await p.pc.setLocalDescription(await p.pc.createOffer())
      const until = performance.now() + 5_000
      while (p.pc.iceGatheringState !== 'complete' && performance.now() < until) await sleep(20)
      assert.equal(p.pc.iceGatheringState, 'complete')
      return candidates
    }
    assert.deepEqual(await gathered(hidden), [])
    assert.ok(!/^a=candidate/m.test(hidden.pc.localDescription?.sdp ?? ''))
    assert.ok((await gathered(open)).some((c) => / typ host/.test(c)))
  })
})
