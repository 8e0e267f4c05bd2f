import { CallsError } from './errors.ts'
import { LIMITS } from './limits.ts'
import { downmix, Resampler } from './resample.ts'
import { type AudioSink, type AudioSinkFrame, type AudioSource, createAudioSink, createAudioSource, type MediaTrack } from './wrtc.ts'

const AUDIO = LIMITS.calls.audio
/** Frames sent at once when the event loop was held up; beyond that the clock is moved on instead. */
const MAX_BURST_FRAMES = 20

export interface AudioPlayerInit {
  /**
   * What the player sends while nothing is queued: 'silence' (default: like an open microphone, it keeps
   * the stream and the receiver's clock running) or 'nothing' (the clock stops until the next `play`).
   */
  idle?: 'silence' | 'nothing'
}

interface Queued {
  samples: Int16Array
  offset: number
  resolve: () => void
  reject: (reason: unknown) => void
  cleanUp: () => void
}

/**
 * Plays 48 kHz mono 16-bit audio into a libwebrtc audio source, one 10 ms
 * frame (480 samples) at a time. Frame k goes out at start + 10·k ms,
 * measured on `performance.now()` against the start, so timer lateness does
 * not add up into drift: a late timer sends the frames that fell due (up to
 * 20 at once; after a longer stall the clock moves on and the audio resumes
 * where it was). `track` is what a peer connection sends.
 */
export class AudioPlayer {
  readonly source: AudioSource
  readonly track: MediaTrack
  private readonly idle: 'silence' | 'nothing'
  private readonly queue: Queued[] = []
  private readonly frame = new Int16Array(AUDIO.frameSamples)
  private timer: NodeJS.Timeout | undefined
  private startedAt = 0
  private sentSinceStart = 0
  private closed = false
  /** Frames handed to libwebrtc, silence included. */
  framesSent = 0
  /** Time the clock was moved on after stalls, ms. */
  skippedMs = 0
  /**
   * When set, each frame comes from here instead of the queue (a conference
   * host's mix for one participant): called once per 10 ms frame with the
   * frame to fill (480 samples, zeroed).
   */
  pull: ((frame: Int16Array) => void) | undefined

  constructor(init: AudioPlayerInit = {}) {
    this.idle = init.idle ?? 'silence'
    this.source = createAudioSource()
    this.track = this.source.createTrack()
  }

  /** Whether the clock is running (frames are being sent). */
  get running(): boolean {
    return this.timer !== undefined
  }

  /** Starts the clock without queuing audio (with idle 'silence', silence flows from now on). */
  start(): void {
    if (this.closed) throw new CallsError('CLOSED', 'the player is closed')
    if (this.timer !== undefined) return
    this.startedAt = performance.now()
    this.sentSinceStart = 0
    this.tick()
  }

  /**
   * Queues samples (48 kHz mono) after whatever is queued; resolves once the last of them has been handed
   * to libwebrtc. Aborting drops what is left of them and rejects with the signal's reason.
   */
  async play(samples: Int16Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.closed) throw new CallsError('CLOSED', 'the player is closed')
    const { signal } = options
    signal?.throwIfAborted()
    if (samples.length === 0) return
    await new Promise<void>((resolve, reject) => {
      const entry: Queued = { samples, offset: 0, resolve, reject, cleanUp: () => {} }
      if (signal !== undefined) {
        const onAbort = (): void => {
          const at = this.queue.indexOf(entry)
          if (at >= 0) this.queue.splice(at, 1)
          reject(signal.reason)
        }
        signal.addEventListener('abort', onAbort, { once: true })
        entry.cleanUp = () => signal.removeEventListener('abort', onAbort)
      }
      this.queue.push(entry)
      this.start()
    })
  }

  /** Stops the clock and the track; queued plays reject with CLOSED. Safe to call twice. */
  close(): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.timer)
    this.timer = undefined
    for (const entry of this.queue.splice(0)) {
      entry.cleanUp()
      entry.reject(new CallsError('CLOSED', 'the player was closed'))
    }
    this.track.stop()
  }

  private tick(): void {
    this.timer = undefined
    if (this.closed) return
    const now = performance.now()
    const due = Math.floor((now - this.startedAt) / AUDIO.frameMs) + 1
    if (due - this.sentSinceStart > MAX_BURST_FRAMES) {
      const skip = due - this.sentSinceStart - MAX_BURST_FRAMES
      this.startedAt += skip * AUDIO.frameMs
      this.skippedMs += skip * AUDIO.frameMs
    }
    const target = Math.floor((now - this.startedAt) / AUDIO.frameMs) + 1
    while (this.sentSinceStart < target) {
      if (this.queue.length === 0 && this.idle === 'nothing') return
      this.sendFrame()
      this.sentSinceStart++
    }
    if (this.queue.length === 0 && this.idle === 'nothing') return
    const next = this.startedAt + this.sentSinceStart * AUDIO.frameMs
    this.timer = setTimeout(() => this.tick(), Math.max(0, next - performance.now()))
  }

  private sendFrame(): void {
    const frame = this.frame
    if (this.pull !== undefined) {
      frame.fill(0)
      this.pull(frame)
      this.source.onData({ samples: frame, sampleRate: AUDIO.sampleRate })
      this.framesSent++
      return
    }
    let filled = 0
    while (filled < frame.length && this.queue.length > 0) {
      const head = this.queue[0]!
      const n = Math.min(frame.length - filled, head.samples.length - head.offset)
      frame.set(head.samples.subarray(head.offset, head.offset + n), filled)
      filled += n
      head.offset += n
      if (head.offset === head.samples.length) {
        this.queue.shift()
        head.cleanUp()
        head.resolve()
      }
    }
    frame.fill(0, filled)
    // wrtc copies the frame's whole ArrayBuffer synchronously, so one buffer serves every frame.
    this.source.onData({ samples: frame, sampleRate: AUDIO.sampleRate })
    this.framesSent++
  }
}

export interface AudioRecorderInit {
  /** A frame whose RMS (16-bit units) exceeds this is audio, not silence. Default 32 (about -60 dBFS). */
  silenceThreshold?: number
  /** Audio past this is dropped (`truncated` is set). Default `LIMITS.calls.audio.maxDurationMs`. */
  maxDurationMs?: number
}

/**
 * Records an audio track (normally a remote one) through a libwebrtc sink:
 * whatever rate and channel count arrive (libwebrtc delivers 16 kHz mono
 * before the first packet, then 48 kHz) become 48 kHz mono. Notes when the
 * first frame that is not silence arrived, for "time to first audio". Holds
 * the track and the sink: an unreferenced sink is garbage-collected and goes
 * quiet.
 */
export class AudioRecorder {
  readonly track: MediaTrack
  readonly sink: AudioSink
  /** `performance.now()` when the first frame that is not silence arrived; null until then. */
  firstAudioAt: number | null = null
  /** Where that frame starts in `samples()`. */
  firstAudioSample: number | null = null
  /** Frames received, silence included. */
  framesReceived = 0
  /** Whether audio past the maximum duration was dropped. */
  truncated = false
  /** Called with each piece of audio as it arrives (48 kHz mono), e.g. to mix it into a conference. */
  onSamples: ((chunk: Int16Array) => void) | undefined
  private readonly threshold: number
  private readonly maxSamples: number
  private readonly chunks: Int16Array[] = []
  private length = 0
  private resampler: Resampler | null = null
  private rate: number = AUDIO.sampleRate
  private readonly waiters = new Set<{ resolve: (at: number) => void; reject: (reason: unknown) => void }>()
  private stopped = false

  constructor(track: MediaTrack, init: AudioRecorderInit = {}) {
    this.threshold = init.silenceThreshold ?? 32
    this.maxSamples = Math.round(((init.maxDurationMs ?? AUDIO.maxDurationMs) * AUDIO.sampleRate) / 1000)
    this.track = track
    this.sink = createAudioSink(track)
    this.sink.ondata = (frame) => {
      // wrtc calls this on process.nextTick: a throw here would be an uncaught exception.
      try {
        this.onFrame(frame)
      } catch (err) {
        process.emitWarning(`AudioRecorder: a frame was dropped: ${String(err)}`)
      }
    }
  }

  /** The recording so far, 48 kHz mono (the last millisecond or so arrives with `stop()` when resampling). */
  samples(): Int16Array {
    const out = new Int16Array(this.length)
    let at = 0
    for (const chunk of this.chunks) {
      out.set(chunk, at)
      at += chunk.length
    }
    return out
  }

  /** Resolves with `firstAudioAt` once a frame that is not silence has arrived. */
  async firstAudio(options: { signal?: AbortSignal } = {}): Promise<number> {
    if (this.firstAudioAt !== null) return this.firstAudioAt
    if (this.stopped) throw new CallsError('CLOSED', 'the recorder was stopped before any audio arrived')
    const { signal } = options
    signal?.throwIfAborted()
    return await new Promise<number>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters.delete(waiter)
        reject(signal?.reason)
      }
      const waiter = {
        resolve: (at: number) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(at)
        },
        reject: (reason: unknown) => {
          signal?.removeEventListener('abort', onAbort)
          reject(reason)
        }
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiters.add(waiter)
    })
  }

  /** Stops the sink (the track belongs to its peer connection). Safe to call twice. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.sink.ondata = null
    this.sink.stop()
    if (this.resampler !== null) this.append(this.resampler.flush())
    this.resampler = null
    for (const waiter of this.waiters) waiter.reject(new CallsError('CLOSED', 'the recorder was stopped before any audio arrived'))
    this.waiters.clear()
  }

  private onFrame(frame: AudioSinkFrame): void {
    if (this.stopped) return
    this.framesReceived++
    const { sampleRate, channelCount } = frame
    const mono = channelCount === 1 ? frame.samples : downmix(frame.samples, channelCount)
    if (sampleRate !== this.rate) {
      if (this.resampler !== null) this.append(this.resampler.flush())
      this.rate = sampleRate
      this.resampler = sampleRate === AUDIO.sampleRate ? null : new Resampler(sampleRate, AUDIO.sampleRate)
    }
    const startsAt = this.length
    const chunk = this.resampler === null ? mono.slice() : this.resampler.push(mono)
    this.append(chunk)
    if (chunk.length > 0) this.onSamples?.(chunk)
    if (this.firstAudioAt === null && rms(mono) > this.threshold) {
      this.firstAudioAt = performance.now()
      this.firstAudioSample = startsAt
      for (const waiter of this.waiters) waiter.resolve(this.firstAudioAt)
      this.waiters.clear()
    }
  }

  private append(chunk: Int16Array): void {
    if (chunk.length === 0) return
    const room = this.maxSamples - this.length
    if (chunk.length > room) this.truncated = true
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk
    if (kept.length === 0) return
    this.chunks.push(kept)
    this.length += kept.length
  }
}

function rms(samples: Int16Array): number {
  if (samples.length === 0) return 0
  let sum = 0
  for (let i = 0; i < samples.length; i++) sum += samples[i]! * samples[i]!
  return Math.sqrt(sum / samples.length)
}
