import { AudioPeer, type MediaTrack, type PeerConnection } from '@parley/calls'
import { LIMITS, ParleyError } from '@parley/protocol'
import { SampleQueue } from './mixer.ts'

/**
 * Live audio handed from one clock to another (a leg's receiver to a call's
 * sender, or back): a small jitter buffer. It starts giving samples once
 * `LIMITS.calls.bridgePrebufferMs` are queued, and after running dry waits
 * for that much again, so that the two clocks' jitter costs a rare pause
 * instead of a gap in every other frame. When more than
 * LIMITS.calls.bridgeMaxQueueMs has piled up (the pulling side's clock fell
 * behind: a stalled event loop), it drops back to the prebuffer at once, so
 * that the delay of a call never stays long.
 */
export class LiveAudio {
  readonly #queue = new SampleQueue()
  readonly #prebuffer = Math.round((LIMITS.calls.bridgePrebufferMs * LIMITS.calls.audio.sampleRate) / 1000)
  readonly #cap = Math.round((LIMITS.calls.bridgeMaxQueueMs * LIMITS.calls.audio.sampleRate) / 1000)
  #primed = false

  push(chunk: Int16Array): void {
    this.#queue.push(chunk)
    if (this.#queue.length > this.#cap) this.#queue.trimTo(this.#prebuffer)
  }

  /** Fills one frame (zeroed by the caller) with the next samples, or leaves it silent while buffering. */
  pull(frame: Int16Array): void {
    if (!this.#primed) {
      if (this.#queue.length < this.#prebuffer) return
      this.#primed = true
    }
    const sum = new Int32Array(frame.length)
    this.#queue.takeInto(sum)
    for (let i = 0; i < frame.length; i++) frame[i] = sum[i] as number
    if (this.#queue.length === 0) this.#primed = false
  }
}

/** The parts of libwebrtc's transceiver the leg uses (wrtc has them; the typed wrapper leaves them out). */
interface Transceiver {
  mid: string | null
  direction: string
  readonly receiver: { readonly track: MediaTrack }
  readonly sender: { readonly track: MediaTrack | null; replaceTrack(track: MediaTrack | null): Promise<void> }
}

/**
 * The web client's media, on its way to and from a call: a WebRTC connection
 * between the browser and its own daemon over this machine's addresses (the
 * browser captures the microphone and camera with its echo cancellation and
 * plays what comes back; DTLS-SRTP like any call), while the daemon carries
 * the call itself over the overlay, as it does for every call, conferences
 * included. The browser offers one audio and one video transceiver, both
 * send and receive; the leg answers. What the user says arrives at `onMic`
 * (48 kHz mono, 10 ms at a time); what they hear is pulled from `ear`;
 * the video they see is whatever track `show` was given (replaced, never
 * renegotiated); the video they send (camera or shared screen, as the
 * browser switches it) is `video`.
 */
export class BrowserLeg {
  readonly #peer: AudioPeer
  #video: Transceiver | undefined
  #shown: MediaTrack | null = null
  /** What the user hears: filled by the call (or the conference's mix), drained 10 ms at a time. */
  readonly ear = new LiveAudio()
  /** Where what the user says goes (set by the call service as the call is routed). */
  onMic: ((chunk: Int16Array) => void) | undefined
  /** When set, each 10 ms of what the user hears comes from here instead of `ear` (a conference's mix). */
  pull: ((frame: Int16Array) => void) | undefined
  #closed = false

  constructor() {
    // Host candidates only: both ends are on this machine.
    this.#peer = new AudioPeer({ player: { idle: 'silence' } })
    this.#peer.player.pull = (frame) => {
      if (this.pull !== undefined) this.pull(frame)
      else this.ear.pull(frame)
    }
    void this.#peer
      .remoteAudio()
      .then((recorder) => {
        recorder.onSamples = (chunk) => this.onMic?.(chunk)
      })
      .catch(() => {})
  }

  get pc(): PeerConnection {
    return this.#peer.pc
  }

  /** The browser's video (camera or screen, whichever it sends now), once its track is here. */
  get video(): MediaTrack | undefined {
    const track = this.#video?.receiver.track
    return track !== undefined && track.readyState === 'live' ? track : undefined
  }

  get closed(): boolean {
    return this.#closed || this.pc.connectionState === 'closed' || this.pc.connectionState === 'failed'
  }

  /** Takes the browser's offer and returns the answer, with every candidate in it (no trickling on one machine). */
  async answer(offer: string): Promise<string> {
    if (Buffer.byteLength(offer) > LIMITS.calls.sdpMaxBytes)
      throw new ParleyError('PAYLOAD_TOO_LARGE', `an SDP offer is at most ${LIMITS.calls.sdpMaxBytes} bytes`)
    if (!/^v=0\r?\n/.test(offer) || !/^m=audio /m.test(offer))
      throw new ParleyError('INVALID_REQUEST', 'the offer must be an SDP with an audio section (and a video one)')
    const pc = this.pc
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: offer })
    } catch (err) {
      throw new ParleyError('INVALID_REQUEST', `the offer was refused: ${(err as Error).message}`)
    }
    const transceivers = (pc as unknown as { getTransceivers(): Transceiver[] }).getTransceivers()
    this.#video = transceivers.find((t) => t.receiver.track.kind === 'video')
    if (this.#video !== undefined) {
      this.#video.direction = 'sendrecv'
      await this.#video.sender.replaceTrack(this.#shown)
    }
    await pc.setLocalDescription(await pc.createAnswer())
    // The clock of what the user hears runs from now on (silence until the call has something).
    this.#peer.player.start()
    await gathered(pc, LIMITS.calls.connectTimeoutMs)
    const sdp = pc.localDescription?.sdp
    if (sdp === undefined) throw new ParleyError('INTERNAL', 'no answer to give')
    return sdp
  }

  /** The video the user sees now (a participant's camera or screen), or none. */
  async show(track: MediaTrack | null): Promise<void> {
    if (this.#shown === track) return
    this.#shown = track
    await this.#video?.sender.replaceTrack(track).catch(() => {})
  }

  get shown(): MediaTrack | null {
    return this.#shown
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.onMic = undefined
    this.pull = undefined
    this.#peer.close()
  }
}

/** Resolves once ICE gathering is complete (or after `ms`, with what there is). */
async function gathered(pc: PeerConnection, ms: number): Promise<void> {
  if (pc.iceGatheringState === 'complete') return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      pc.removeEventListener('icegatheringstatechange', check)
      resolve()
    }
    function check(): void {
      if (pc.iceGatheringState === 'complete') done()
    }
    pc.addEventListener('icegatheringstatechange', check)
  })
}
