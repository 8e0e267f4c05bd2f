import { api, seg } from './api.ts'

export type VideoSource = 'none' | 'camera' | 'screen'

/**
 * The browser's side of a call: the microphone (and camera or screen) go to
 * this user's own daemon over a loopback WebRTC leg, and the daemon carries
 * the call over the network. One leg per call this browser is in (a
 * conference keeps the leg of its first call: the daemon mixes).
 *
 * The leg always has an audio and a video transceiver, so the camera or the
 * screen is switched with `replaceTrack` and no renegotiation; the daemon is
 * told with `PUT /v1/calls/:id/video`.
 */
export class CallMedia {
  readonly callId: string
  readonly pc: RTCPeerConnection
  readonly remote = new MediaStream()
  readonly #audio: RTCRtpSender
  readonly #video: RTCRtpSender
  #mic: MediaStreamTrack | undefined
  #videoTrack: MediaStreamTrack | undefined
  #source: VideoSource = 'none'
  #closed = false
  /** Told when the remote stream gains or loses tracks, and when the local video changes. */
  onChange: (() => void) | undefined
  /** The screen share ended from the browser's own bar ("Stop sharing"). */
  onScreenEnded: (() => void) | undefined

  private constructor(callId: string, pc: RTCPeerConnection, audio: RTCRtpSender, video: RTCRtpSender, mic: MediaStreamTrack | undefined) {
    this.callId = callId
    this.pc = pc
    this.#audio = audio
    this.#video = video
    this.#mic = mic
    pc.ontrack = (event) => {
      if (!this.remote.getTracks().includes(event.track)) this.remote.addTrack(event.track)
      event.track.onended = () => {
        this.remote.removeTrack(event.track)
        this.onChange?.()
      }
      this.onChange?.()
    }
  }

  /**
   * Opens the leg for a call the daemon placed or answered with `media:'browser'`:
   * the microphone (and the camera when `video`), an offer with every ICE
   * candidate in it (loopback: no trickling), the daemon's answer.
   */
  static async open(callId: string, options: { video: boolean }): Promise<CallMedia> {
    let mic: MediaStreamTrack | undefined
    let camera: MediaStreamTrack | undefined
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
        video: options.video ? { width: { ideal: 1280 }, height: { ideal: 720 } } : false
      })
      mic = stream.getAudioTracks()[0]
      camera = stream.getVideoTracks()[0]
    } catch (err) {
      // No microphone (or no permission): the call still goes on, and the user hears the other side.
      if (options.video) {
        try {
          mic = (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks()[0]
        } catch {
          /* none */
        }
      }
      if (mic === undefined) console.warn('no microphone', err)
    }
    const pc = new RTCPeerConnection({ iceServers: [] })
    const audio = pc.addTransceiver(mic ?? 'audio', { direction: 'sendrecv' }).sender
    const video = pc.addTransceiver('video', { direction: 'sendrecv' }).sender
    const media = new CallMedia(callId, pc, audio, video, mic)
    try {
      const offer = await pc.createOffer()
      await pc.setLocalDescription(offer)
      await iceGathered(pc)
      const { sdp } = await api.post<{ sdp: string }>(`/v1/calls/${seg(callId)}/media`, { sdp: pc.localDescription?.sdp ?? offer.sdp })
      await pc.setRemoteDescription({ type: 'answer', sdp })
      if (camera !== undefined) await media.#setVideo(camera, 'camera')
    } catch (err) {
      media.close()
      camera?.stop()
      throw err
    }
    return media
  }

  get videoSource(): VideoSource {
    return this.#source
  }

  get localVideo(): MediaStreamTrack | undefined {
    return this.#videoTrack
  }

  get hasMicrophone(): boolean {
    return this.#mic !== undefined
  }

  /** Mutes the microphone here too (the daemon is told by the caller of this). */
  setMuted(muted: boolean): void {
    if (this.#mic !== undefined) this.#mic.enabled = !muted
  }

  /** Camera, screen or nothing: the track is swapped on the video sender and the daemon told. */
  async setVideoSource(source: VideoSource): Promise<void> {
    if (source === this.#source) return
    const before = this.#source
    if (source === 'none') {
      await this.#setVideo(undefined, 'none')
    } else {
      const track =
        source === 'camera'
          ? (await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } } })).getVideoTracks()[0]
          : (await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false })).getVideoTracks()[0]
      if (track === undefined) throw new Error(source === 'camera' ? 'no camera' : 'nothing to share')
      if (source === 'screen')
        track.onended = () => {
          if (this.#videoTrack === track) this.onScreenEnded?.()
        }
      await this.#setVideo(track, source)
    }
    const body: Record<string, boolean> = {}
    if (before !== 'none') body[before] = false
    if (source !== 'none') body[source] = true
    await api.put(`/v1/calls/${seg(this.callId)}/video`, body)
  }

  async #setVideo(track: MediaStreamTrack | undefined, source: VideoSource): Promise<void> {
    const old = this.#videoTrack
    await this.#video.replaceTrack(track ?? null)
    this.#videoTrack = track
    this.#source = source
    if (old !== undefined && old !== track) old.stop()
    this.onChange?.()
  }

  /** Receiving audio: RTP packets that came in so far (for a check that sound flows). */
  async inboundAudioPackets(): Promise<number> {
    const stats = await this.pc.getStats(this.pc.getReceivers().find((r) => r.track.kind === 'audio')?.track ?? null)
    let packets = 0
    stats.forEach((s: { type: string; kind?: string; packetsReceived?: number }) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') packets += s.packetsReceived ?? 0
    })
    return packets
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#mic?.stop()
    this.#videoTrack?.stop()
    void this.#audio
    this.pc.close()
  }
}

/** Resolves when ICE gathering is complete (host candidates on loopback: quick), or after 2 s with what there is. */
function iceGathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      pc.removeEventListener('icegatheringstatechange', check)
      clearTimeout(timer)
      resolve()
    }
    const check = (): void => {
      if (pc.iceGatheringState === 'complete') done()
    }
    const timer = setTimeout(done, 2000)
    pc.addEventListener('icegatheringstatechange', check)
  })
}
