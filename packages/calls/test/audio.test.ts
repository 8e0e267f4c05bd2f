import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AudioPlayer, AudioRecorder, CallsError } from '../src/index.ts'
import { random, sleep } from './support.ts'

/** A local loop: a recorder on the player's own track gets exactly what the player sends, frame by frame. */
function loop(
  init: ConstructorParameters<typeof AudioPlayer>[0] = {},
  recorderInit = {}
): { player: AudioPlayer; recorder: AudioRecorder; close: () => void } {
  const player = new AudioPlayer(init)
  const recorder = new AudioRecorder(player.track, recorderInit)
  return {
    player,
    recorder,
    close: () => {
      recorder.stop()
      player.close()
    }
  }
}

function busy(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // Holding the event loop, as a burst of other work would.
  }
}

const isClosed = (e: unknown): boolean => e instanceof CallsError && e.code === 'CLOSED'

describe('AudioPlayer', () => {
  it('hands libwebrtc every sample in 10 ms frames, in real time, and the recorder gets them back', async () => {
    const { player, recorder, close } = loop({ idle: 'nothing' })
    try {
      const next = random(2)
      const samples = Int16Array.from({ length: 48_000 + 123 }, () => Math.round((next() - 0.5) * 30_000))
      const started = performance.now()
      await player.play(samples)
      const took = performance.now() - started
      // The last of 101 frames goes out 1,000 ms after the first.
      assert.ok(took >= 990 && took < 1_500, `${took.toFixed(0)} ms`)
      assert.equal(player.framesSent, 101)
      await sleep(50)
      const got = recorder.samples()
      assert.equal(recorder.framesReceived, 101)
      assert.deepEqual(got.subarray(0, samples.length), samples)
      // The last frame is filled with silence.
      assert.ok(got.subarray(samples.length).every((v) => v === 0))
      assert.equal(recorder.firstAudioSample, 0)
      assert.ok(recorder.firstAudioAt !== null && recorder.firstAudioAt - started < 30)
    } finally {
      close()
    }
  })

  it('keeps time against its start, not by chaining timers: stalls are caught up, long ones skipped', async () => {
    const { player, close } = loop()
    try {
      player.start()
      const started = performance.now()
      for (let i = 0; i < 8; i++) {
        await sleep(100)
        busy(100) // under 200 ms: caught up with a burst
      }
      await sleep(100)
      const expected = Math.floor((performance.now() - started) / 10) + 1
      assert.ok(Math.abs(player.framesSent - expected) <= 2, `sent ${player.framesSent}, due ${expected}`)
      assert.equal(player.skippedMs, 0)
      busy(600) // 60 frames due at once: 20 go, 40 (400 ms) are skipped
      await sleep(30)
      assert.ok(player.skippedMs >= 380 && player.skippedMs <= 420, `skipped ${player.skippedMs} ms`)
    } finally {
      close()
    }
  })

  it("sends silence while idle by default, and nothing with idle: 'nothing'", async () => {
    const silent = loop()
    const quiet = loop({ idle: 'nothing' })
    try {
      silent.player.start()
      quiet.player.start()
      await quiet.player.play(new Int16Array(960).fill(1000))
      assert.equal(quiet.player.running, false)
      const sentBefore = quiet.player.framesSent
      await sleep(200)
      assert.equal(quiet.player.framesSent, sentBefore)
      assert.ok(silent.player.framesSent >= 18, `${silent.player.framesSent} frames of silence`)
      assert.equal(silent.recorder.firstAudioAt, null)
      assert.ok(silent.recorder.framesReceived >= 18)
    } finally {
      silent.close()
      quiet.close()
    }
  })

  it('queues plays in order; an aborted play is dropped and rejects with its reason', async () => {
    const { player, recorder, close } = loop({ idle: 'nothing' })
    try {
      const controller = new AbortController()
      const a = player.play(new Int16Array(4800).fill(100))
      const b = player.play(new Int16Array(48_000).fill(200), { signal: controller.signal })
      const c = player.play(new Int16Array(4800).fill(300))
      setTimeout(() => controller.abort(new Error('hung up')), 150)
      await a
      await assert.rejects(b, /hung up/)
      await c
      await sleep(30)
      const got = recorder.samples()
      assert.ok(got.subarray(0, 4800).every((v) => v === 100))
      const twos = got.filter((v) => v === 200).length
      assert.ok(twos > 0 && twos < 48_000 && twos % 480 === 0, `${twos} samples of the aborted play went out`)
      assert.equal(got.filter((v) => v === 300).length, 4800)
      await assert.rejects(player.play(new Int16Array(10), { signal: AbortSignal.abort(new Error('already')) }), /already/)
    } finally {
      close()
    }
  })

  it('close rejects queued plays with CLOSED, is safe twice, and refuses to play afterwards', async () => {
    const { player, close } = loop()
    const pending = player.play(new Int16Array(48_000))
    await sleep(30)
    close()
    close()
    await assert.rejects(pending, isClosed)
    await assert.rejects(player.play(new Int16Array(10)), isClosed)
    assert.throws(() => player.start(), isClosed)
    assert.equal(player.track.readyState, 'ended')
  })
})

describe('AudioRecorder', () => {
  it('resolves firstAudio on the first frame above the silence threshold', async () => {
    const { player, recorder, close } = loop({}, { silenceThreshold: 500 })
    try {
      player.start()
      const first = recorder.firstAudio({ signal: AbortSignal.timeout(5_000) })
      await sleep(100)
      assert.equal(recorder.firstAudioAt, null)
      // Under the threshold (RMS 400), then over it.
      await player.play(new Int16Array(4800).fill(400))
      assert.equal(recorder.firstAudioAt, null)
      const loud = performance.now()
      await player.play(new Int16Array(480).fill(600))
      const at = await first
      assert.ok(at >= loud - 1 && at - loud < 50)
      assert.equal(await recorder.firstAudio(), at)
    } finally {
      close()
    }
  })

  it('stops at the maximum duration (truncated), and rejects waiting for audio once stopped', async () => {
    const { player, recorder, close } = loop({}, { maxDurationMs: 100 })
    const waiting = recorder.firstAudio()
    const aborted = recorder.firstAudio({ signal: AbortSignal.timeout(20) })
    await assert.rejects(aborted, (e: unknown) => e instanceof DOMException && e.name === 'TimeoutError')
    player.start()
    await sleep(250)
    close()
    assert.equal(recorder.samples().length, 4800)
    assert.equal(recorder.truncated, true)
    await assert.rejects(waiting, isClosed)
    await assert.rejects(recorder.firstAudio(), isClosed)
    recorder.stop()
  })
})
