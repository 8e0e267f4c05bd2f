// The floor under call set-up: what libwebrtc itself takes, with no network,
// signalling server or overlay in the way. Two peer connections in this
// process exchange offer, answer and trickled candidates directly (as JSON,
// connectDirectly); the caller's player sends a continuous tone from before
// the offer, so the first sound is there the moment media can flow. Timed
// from createOffer to the first frame at the callee that is not silence,
// RUNS times (after one cold run, reported apart: the first connection also
// starts libwebrtc's threads). Each run also gives the time to 'connected'
// (ICE and DTLS done) on both sides, and from the callee's 'connected' to
// the first audio (the jitter buffer filling).
// Prints one JSON object on stdout; progress goes to stderr.
//   node packages/calls/bench/floor.bench.ts [--runs N]
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { ms, progressFor, timeSummary } from '@parley/testing'
import { AudioPeer, connectDirectly } from '../src/index.ts'

const progress = progressFor('floor')
const { values: flags } = parseArgs({ options: { runs: { type: 'string', default: '20' } } })
const RUNS = Number(flags.runs)
/** A run that has no audio after this long is counted as failed. */
const RUN_TIMEOUT_MS = 10_000
/** 440 Hz at -12 dBFS, long enough for any run. */
const TONE = Int16Array.from({ length: 48_000 * 12 }, (_, i) => Math.round(8_000 * Math.sin((2 * Math.PI * 440 * i) / 48_000)))

interface Run {
  firstAudioMs: number
  callerConnectedMs: number
  calleeConnectedMs: number
  connectedToAudioMs: number
  signallingMs: number
}

const summary = timeSummary

/** When `peer`'s connection reports 'connected' (ms on performance.now()). */
function connectedAt(peer: AudioPeer, signal: AbortSignal): Promise<number> {
  return peer.connected({ signal }).then(() => performance.now())
}

async function once(): Promise<Run> {
  const caller = new AudioPeer()
  const callee = new AudioPeer()
  const signal = AbortSignal.timeout(RUN_TIMEOUT_MS)
  try {
    const playing = caller.player.play(TONE, { signal }).catch(() => {})
    const callerUp = connectedAt(caller, signal)
    const calleeUp = connectedAt(callee, signal)
    const started = performance.now()
    await connectDirectly(caller.pc, callee.pc, { signal })
    const signalled = performance.now()
    const recorder = await callee.remoteAudio({ signal })
    const firstAudio = await recorder.firstAudio({ signal })
    const [callerConnected, calleeConnected] = await Promise.all([callerUp, calleeUp])
    caller.player.close()
    await playing
    return {
      firstAudioMs: firstAudio - started,
      callerConnectedMs: callerConnected - started,
      calleeConnectedMs: calleeConnected - started,
      connectedToAudioMs: firstAudio - calleeConnected,
      signallingMs: signalled - started
    }
  } finally {
    caller.close()
    callee.close()
  }
}

const load = (): number[] => loadavg().map((n) => Number(n.toFixed(2)))
const loadAtStart = load()
const cold = await once()
progress(`cold run: first audio after ${cold.firstAudioMs.toFixed(1)} ms`)
const runs: Run[] = []
let failed = 0
for (let i = 0; i < RUNS; i++) {
  try {
    const run = await once()
    runs.push(run)
    progress(`run ${i + 1}/${RUNS}: first audio after ${run.firstAudioMs.toFixed(1)} ms (connected ${run.calleeConnectedMs.toFixed(1)} ms)`)
  } catch (err) {
    failed++
    progress(`run ${i + 1}/${RUNS} failed: ${String(err)}`)
  }
  // Closed connections release their ports and threads in the background.
  await new Promise((resolve) => setTimeout(resolve, 50))
}

const firstAudio = summary(runs.map((r) => r.firstAudioMs))
process.stdout.write(
  `${JSON.stringify({
    bench: 'floor',
    note: 'two @roamhq/wrtc (libwebrtc M106) peer connections in one process on loopback, signalled directly with trickle ICE; Opus; from createOffer to the first non-silent 10 ms frame at the callee',
    runs: RUNS,
    failed,
    p50: firstAudio.p50Ms,
    p95: firstAudio.p95Ms,
    firstAudio,
    signalling: summary(runs.map((r) => r.signallingMs)),
    callerConnected: summary(runs.map((r) => r.callerConnectedMs)),
    calleeConnected: summary(runs.map((r) => r.calleeConnectedMs)),
    calleeConnectedToFirstAudio: summary(runs.map((r) => r.connectedToAudioMs)),
    cold: Object.fromEntries(Object.entries(cold).map(([k, v]) => [k, ms(v)])),
    loadAverage: { atStart: loadAtStart, atEnd: load() }
  })}\n`
)
process.exit(failed === 0 ? 0 : 1)
