export * from './adpcm.ts'
export * from './audio.ts'
export * from './compare.ts'
export * from './emodel.ts'
export * from './errors.ts'
export * from './peer.ts'
export * from './quality.ts'
export * from './resample.ts'
export * from './turn.ts'
export * from './video.ts'
export * from './voicemail.ts'
export * from './wav.ts'
export {
  type AudioSink,
  type AudioSinkFrame,
  type AudioSource,
  type AudioSourceData,
  createAudioSink,
  createAudioSource,
  createPeerConnection,
  createVideoSink,
  createVideoSource,
  type IceCandidate,
  type IceCandidateInit,
  type IceCandidateType,
  type IceServer,
  type MediaTrack,
  type PeerConnection,
  type PeerConnectionConfig,
  type PeerConnectionState,
  type RtpSender,
  type SessionDescriptionInit,
  type Stats,
  type StatsReport,
  type VideoFrame,
  type VideoSink,
  type VideoSource
} from './wrtc.ts'
