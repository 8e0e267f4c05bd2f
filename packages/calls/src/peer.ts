import { AudioPlayer, type AudioPlayerInit, AudioRecorder, type AudioRecorderInit } from './audio.ts'
import { CallsError } from './errors.ts'
import {
  createPeerConnection,
  type IceCandidateInit,
  type IceServer,
  type PeerConnection,
  type RtpSender,
  type SessionDescriptionInit,
  type StatsReport
} from './wrtc.ts'

export interface AudioPeerInit {
  /** STUN and TURN servers. Default none: host candidates only. */
  iceServers?: IceServer[]
  /** 'relay' sends everything through TURN (neither side learns the other's addresses). Default 'all'. */
  iceTransportPolicy?: 'all' | 'relay'
  player?: AudioPlayerInit
  recorder?: AudioRecorderInit
}

/**
 * One side of an audio call: a libwebrtc peer connection sending an
 * `AudioPlayer`'s track and recording the first remote audio track with an
 * `AudioRecorder`. Signalling (offer, answer, candidates) is the caller's:
 * `pc` is the connection to drive, `connectDirectly` does it for two peers
 * in one process.
 */
export class AudioPeer {
  readonly pc: PeerConnection
  readonly player: AudioPlayer
  readonly sender: RtpSender
  /** The remote audio, from its first track on; null before. */
  recorder: AudioRecorder | null = null
  private readonly recorderInit: AudioRecorderInit
  private readonly recorderWaiters = new Set<{ resolve: (recorder: AudioRecorder) => void; reject: (reason: unknown) => void }>()
  private closed = false

  constructor(init: AudioPeerInit = {}) {
    this.recorderInit = init.recorder ?? {}
    this.pc = createPeerConnection({
      iceServers: init.iceServers ?? [],
      iceTransportPolicy: init.iceTransportPolicy ?? 'all',
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require'
    })
    try {
      this.player = new AudioPlayer(init.player)
      this.sender = this.pc.addTrack(this.player.track)
    } catch (err) {
      this.pc.close()
      throw err
    }
    this.pc.ontrack = (event) => {
      if (this.closed || this.recorder !== null || event.track.kind !== 'audio') return
      try {
        this.recorder = new AudioRecorder(event.track, this.recorderInit)
      } catch (err) {
        process.emitWarning(`AudioPeer: the remote track cannot be recorded: ${String(err)}`)
        return
      }
      for (const waiter of this.recorderWaiters) waiter.resolve(this.recorder)
      this.recorderWaiters.clear()
    }
  }

  /** Resolves with the recorder of the remote audio once its track has arrived. */
  async remoteAudio(options: { signal?: AbortSignal } = {}): Promise<AudioRecorder> {
    if (this.recorder !== null) return this.recorder
    return await this.waitFor<AudioRecorder>(options.signal, (resolve, reject) => {
      const waiter = { resolve, reject }
      this.recorderWaiters.add(waiter)
      return () => this.recorderWaiters.delete(waiter)
    })
  }

  /** Resolves once the connection is 'connected'; rejects with CONNECTION_FAILED if it fails or closes first. */
  async connected(options: { signal?: AbortSignal } = {}): Promise<void> {
    const pc = this.pc
    const settle = (): 'yes' | 'no' | undefined => {
      const state = pc.connectionState
      if (state === 'connected') return 'yes'
      if (state === 'failed' || state === 'closed') return 'no'
      return undefined
    }
    const failed = (): CallsError =>
      new CallsError('CONNECTION_FAILED', `the peer connection is ${pc.connectionState} (ICE ${pc.iceConnectionState})`)
    const now = settle()
    if (now === 'yes') return
    if (now === 'no') throw failed()
    await this.waitFor<void>(options.signal, (resolve, reject) => {
      const check = (): void => {
        const s = settle()
        if (s === 'yes') resolve()
        else if (s === 'no') reject(failed())
      }
      // wrtc does not always dispatch the change to 'failed' (seen when the DTLS client refuses the server's
      // certificate): the state is also read every 50 ms.
      const poll = setInterval(check, 50)
      pc.addEventListener('connectionstatechange', check)
      return () => {
        clearInterval(poll)
        pc.removeEventListener('connectionstatechange', check)
      }
    })
  }

  async stats(): Promise<StatsReport> {
    return await this.pc.getStats()
  }

  /** Stops the player, the recorder and the connection. Safe to call twice. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const waiter of this.recorderWaiters) waiter.reject(new CallsError('CLOSED', 'the peer was closed'))
    this.recorderWaiters.clear()
    this.player.close()
    this.recorder?.stop()
    this.pc.close()
  }

  /** A promise settled by `subscribe`'s callbacks, or rejected by the signal; `subscribe` returns its clean-up. */
  private async waitFor<T>(
    signal: AbortSignal | undefined,
    subscribe: (resolve: (value: T) => void, reject: (reason: unknown) => void) => () => void
  ): Promise<T> {
    signal?.throwIfAborted()
    if (this.closed) throw new CallsError('CLOSED', 'the peer is closed')
    return await new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        unsubscribe()
        reject(signal?.reason)
      }
      const unsubscribe = subscribe(
        (value) => {
          unsubscribe()
          signal?.removeEventListener('abort', onAbort)
          resolve(value)
        },
        (reason) => {
          unsubscribe()
          signal?.removeEventListener('abort', onAbort)
          reject(reason)
        }
      )
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

export interface ConnectDirectlyOptions {
  signal?: AbortSignal
  /** Rewrites the offer's SDP on its way to the callee (a test's man in the middle). */
  editOffer?: (sdp: string) => string
  /** Rewrites the answer's SDP on its way to the caller. */
  editAnswer?: (sdp: string) => string
}

/**
 * Negotiates two peer connections in one process the way signalling would,
 * with trickle ICE: the offer, the answer and each candidate pass as JSON,
 * candidates that arrive before their remote description wait for it.
 * Returns once both descriptions are set; ICE and DTLS go on (await
 * `AudioPeer.connected`). Takes over both connections' `onicecandidate`.
 */
export async function connectDirectly(caller: PeerConnection, callee: PeerConnection, options: ConnectDirectlyOptions = {}): Promise<void> {
  const { signal } = options
  signal?.throwIfAborted()
  const trickle = (from: PeerConnection, to: PeerConnection): (() => void) => {
    let ready = false
    const waiting: string[] = []
    const deliver = (json: string): void => {
      const candidate = JSON.parse(json) as IceCandidateInit
      // A candidate for a connection closed meanwhile has nowhere to go.
      to.addIceCandidate(candidate).catch(() => {})
    }
    from.onicecandidate = (event) => {
      if (event.candidate === null) return
      const json = JSON.stringify(event.candidate.toJSON())
      if (ready) deliver(json)
      else waiting.push(json)
    }
    return () => {
      ready = true
      for (const json of waiting.splice(0)) deliver(json)
    }
  }
  const toCallee = trickle(caller, callee)
  const toCaller = trickle(callee, caller)
  const pass = (description: SessionDescriptionInit, edit?: (sdp: string) => string): SessionDescriptionInit => {
    const sent = JSON.parse(JSON.stringify(description)) as SessionDescriptionInit
    return { type: sent.type, sdp: edit === undefined ? sent.sdp : edit(sent.sdp ?? '') }
  }
  const offer = await caller.createOffer()
  await caller.setLocalDescription(offer)
  signal?.throwIfAborted()
  await callee.setRemoteDescription(pass(offer, options.editOffer))
  toCallee()
  const answer = await callee.createAnswer()
  await callee.setLocalDescription(answer)
  signal?.throwIfAborted()
  await caller.setRemoteDescription(pass(answer, options.editAnswer))
  toCaller()
}
