/**
 * The part of `@roamhq/wrtc` (libwebrtc M106 for Node) this package uses,
 * typed. The package's own declarations re-export the DOM's globals, which
 * do not describe it (its events are plain objects, its stats report is a
 * Map, its audio source and sink are not in the DOM at all), so it is loaded
 * with `require` and given the types below. Everything else in this package
 * reaches libwebrtc through the three constructors at the bottom.
 */
import { createRequire } from 'node:module'

export type PeerConnectionState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed'
export type IceConnectionState = 'new' | 'checking' | 'connected' | 'completed' | 'disconnected' | 'failed' | 'closed'
export type IceGatheringState = 'new' | 'gathering' | 'complete'
export type SignalingState = 'stable' | 'have-local-offer' | 'have-remote-offer' | 'have-local-pranswer' | 'have-remote-pranswer' | 'closed'
export type IceCandidateType = 'host' | 'srflx' | 'prflx' | 'relay'

export interface SessionDescriptionInit {
  type: 'offer' | 'answer' | 'pranswer' | 'rollback'
  sdp?: string
}

/** What travels to the other side for one trickled candidate (`RTCIceCandidate.toJSON()`). */
export interface IceCandidateInit {
  candidate?: string
  sdpMid?: string | null
  sdpMLineIndex?: number | null
  usernameFragment?: string | null
}

export interface IceCandidate extends IceCandidateInit {
  readonly type: IceCandidateType | null
  readonly address: string | null
  readonly port: number | null
  readonly protocol: 'udp' | 'tcp' | null
  toJSON(): IceCandidateInit
}

export interface IceServer {
  urls: string | string[]
  username?: string
  credential?: string
}

export interface PeerConnectionConfig {
  iceServers?: IceServer[]
  /** 'relay': only TURN candidates, so neither side learns the other's addresses. Default 'all'. */
  iceTransportPolicy?: 'all' | 'relay'
  bundlePolicy?: 'balanced' | 'max-bundle' | 'max-compat'
  rtcpMuxPolicy?: 'require'
}

export interface MediaTrack {
  readonly id: string
  readonly kind: 'audio' | 'video'
  enabled: boolean
  readonly readyState: 'live' | 'ended'
  stop(): void
}

export interface RtpSender {
  readonly track: MediaTrack | null
}

export interface RtpReceiver {
  readonly track: MediaTrack
}

export interface TrackEvent {
  readonly track: MediaTrack
  readonly receiver: RtpReceiver
}

export interface IceCandidateEvent {
  /** null once gathering is complete. */
  readonly candidate: IceCandidate | null
}

/** One entry of a stats report: `type`, `id`, `timestamp` and the fields of its type, as libwebrtc fills them. */
export type Stats = Readonly<Record<string, unknown>>
/** `getStats()`: a Map from stats id to stats (wrtc returns a plain Map). */
export type StatsReport = ReadonlyMap<string, Stats>

export interface PeerConnection {
  readonly connectionState: PeerConnectionState
  readonly iceConnectionState: IceConnectionState
  readonly iceGatheringState: IceGatheringState
  readonly signalingState: SignalingState
  readonly localDescription: SessionDescriptionInit | null
  readonly remoteDescription: SessionDescriptionInit | null
  /** wrtc calls these (and listeners) on `process.nextTick`: a throwing handler is an uncaught exception. */
  onicecandidate: ((event: IceCandidateEvent) => void) | null
  ontrack: ((event: TrackEvent) => void) | null
  onconnectionstatechange: (() => void) | null
  addEventListener(type: 'connectionstatechange' | 'iceconnectionstatechange' | 'icegatheringstatechange', listener: () => void): void
  removeEventListener(type: 'connectionstatechange' | 'iceconnectionstatechange' | 'icegatheringstatechange', listener: () => void): void
  addTrack(track: MediaTrack): RtpSender
  removeTrack(sender: RtpSender): void
  createOffer(): Promise<SessionDescriptionInit>
  createAnswer(): Promise<SessionDescriptionInit>
  setLocalDescription(description: SessionDescriptionInit): Promise<void>
  setRemoteDescription(description: SessionDescriptionInit): Promise<void>
  /** null (or an empty candidate) marks the end of the remote candidates. */
  addIceCandidate(candidate: IceCandidateInit | null): Promise<void>
  getStats(): Promise<StatsReport>
  getSenders(): RtpSender[]
  getReceivers(): RtpReceiver[]
  close(): void
}

/** What `RTCAudioSource.onData` takes: exactly 10 ms of 16-bit samples. */
export interface AudioSourceData {
  /** Its ArrayBuffer must be exactly the frame: wrtc reads `samples.buffer`, ignoring `byteOffset`. */
  samples: Int16Array
  /** At most 65,535 (wrtc reads it as a uint16). */
  sampleRate: number
  channelCount?: number
}

export interface AudioSource {
  createTrack(): MediaTrack
  onData(data: AudioSourceData): void
}

/** What `RTCAudioSink.ondata` gets: 10 ms at whatever rate libwebrtc's mixer chose (16 kHz before the first packet, then 48 kHz). */
export interface AudioSinkFrame {
  readonly samples: Int16Array
  readonly sampleRate: number
  readonly bitsPerSample: number
  readonly channelCount: number
  readonly numberOfFrames: number
}

export interface AudioSink {
  ondata: ((frame: AudioSinkFrame) => void) | null
  readonly stopped: boolean
  stop(): void
}

/** An I420 frame: `data` holds width·height luma bytes, then the two quarter-size chroma planes. */
export interface VideoFrame {
  width: number
  height: number
  data: Uint8ClampedArray
}

export interface VideoSource {
  createTrack(): MediaTrack
  onFrame(frame: VideoFrame): void
}

export interface VideoSink {
  onframe: ((event: { frame: VideoFrame }) => void) | null
  readonly stopped: boolean
  stop(): void
}

interface Wrtc {
  RTCPeerConnection: new (config?: PeerConnectionConfig) => PeerConnection
  nonstandard: {
    RTCAudioSource: new () => AudioSource
    RTCAudioSink: new (track: MediaTrack) => AudioSink
    RTCVideoSource: new (init?: { isScreencast?: boolean }) => VideoSource
    RTCVideoSink: new (track: MediaTrack) => VideoSink
  }
}

const wrtc = createRequire(import.meta.url)('@roamhq/wrtc') as Wrtc

let exitGuarded = false

/**
 * libwebrtc's audio objects crash the process (SIGSEGV) when Node tears down
 * the add-on at a natural exit while one of them is still alive (an
 * RTCAudioSource is enough; node-webrtc issue #636, still so in
 * @roamhq/wrtc 0.10.0 on Node 24). `process.exit()` skips that teardown. So
 * on the 'exit' event the listeners registered after this one are run (the
 * event would have run them), then the process exits with the code it was
 * going to exit with. Installed once, by the first constructor below.
 */
function guardExit(): void {
  if (exitGuarded) return
  exitGuarded = true
  const onExit = (code: number): void => {
    const listeners = process.listeners('exit')
    for (const listener of listeners.slice(listeners.indexOf(onExit) + 1)) {
      try {
        listener.call(process, code)
      } catch (err) {
        process.stderr.write(`an 'exit' listener threw: ${String(err)}\n`)
        process.exitCode = 7
      }
    }
    const exitCode = process.exitCode
    process.exit(typeof exitCode === 'number' ? exitCode : exitCode === undefined ? code : Number(exitCode))
  }
  process.on('exit', onExit)
}

/** A libwebrtc peer connection. Close it: an open one keeps the process alive. */
export function createPeerConnection(config: PeerConnectionConfig = {}): PeerConnection {
  guardExit()
  return new wrtc.RTCPeerConnection(config)
}

/** A source of local audio (`nonstandard.RTCAudioSource`): push 10 ms frames into it, make tracks of it. */
export function createAudioSource(): AudioSource {
  guardExit()
  return new wrtc.nonstandard.RTCAudioSource()
}

/** A sink on an audio track (`nonstandard.RTCAudioSink`). Keep a reference while it is in use, and stop it. */
export function createAudioSink(track: MediaTrack): AudioSink {
  guardExit()
  return new wrtc.nonstandard.RTCAudioSink(track)
}

/** A source of local video (`nonstandard.RTCVideoSource`; `isScreencast` for a shared screen): push I420 frames. */
export function createVideoSource(init: { isScreencast?: boolean } = {}): VideoSource {
  guardExit()
  return new wrtc.nonstandard.RTCVideoSource(init)
}

/** A sink on a video track (`nonstandard.RTCVideoSink`). Keep a reference while it is in use, and stop it. */
export function createVideoSink(track: MediaTrack): VideoSink {
  guardExit()
  return new wrtc.nonstandard.RTCVideoSink(track)
}
