import { randomBytes } from 'node:crypto'
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  AudioPeer,
  type AudioRecorder,
  type CallQuality,
  CallsError,
  callQuality,
  decodeVoicemail,
  encodeVoicemail,
  type IceServer,
  type RtpSender,
  remoteFingerprint,
  type StatsSnapshot,
  snapshotStats,
  VideoCounter,
  VideoPattern
} from '@parley/calls'
import type { VoicemailBody } from '@parley/messaging'
import { type CallState, type CallView, LIMITS, ParleyError } from '@parley/protocol'
import type { ChatService, VoicemailView } from '../chat/service.ts'
import { TokenBuckets } from '../mailbox/rate.ts'
import type { ParleyNode } from '../node.ts'
import { BrowserLeg, LiveAudio } from './browser.ts'
import { SignalChannel } from './channel.ts'
import { Mixer } from './mixer.ts'
import { CALL_PROTOCOL, type CancelReason, fingerprintsOf, type RejectReason, type Signal } from './signal.ts'
import type { CallOutcome, CallRecord, CallStore } from './store.ts'

/**
 * Voice calls between devices: signalling over `/parley/call/1.0.0` (see
 * signal.ts) on hello-verified connections, media over WebRTC (libwebrtc
 * through @parley/calls' AudioPeer: Opus, its jitter buffer and loss
 * concealment), encrypted with DTLS-SRTP whose fingerprints travel only in
 * the authenticated signalling.
 *
 * A call rings every device of the callee that can be reached; the first to
 * answer wins and the others are told `answered-elsewhere`. Only users who
 * are not blocked ring (a blocked caller's invite is dropped as if the device
 * were not there); with the privacy setting "contacts", strangers are
 * declined (`not-allowed`). An unanswered call ends after
 * LIMITS.calls.noAnswerMs: `no-answer` for the caller, `missed` for the
 * callee. Every call ends in the call history (CallStore) with its outcome.
 */

export type { CallState, CallView } from '@parley/protocol'

export interface CallMediaOptions {
  /** 48 kHz mono samples to play into the call once it is connected. */
  play?: Int16Array
  /** A call this device is in: the new call joins it as a conference that this device hosts and mixes. */
  conference?: string
  /** Hang up this long after the call is connected. */
  seconds?: number
}

export interface CallsComponents {
  node: ParleyNode
  chat: ChatService
  store: CallStore
  me: () => string | undefined
  emit: (type: string, data: object) => void
  /** STUN and TURN servers for ICE (none: host candidates only). */
  iceServers?: () => Promise<IceServer[]>
  /** How long a call rings before it is given up (default LIMITS.calls.noAnswerMs). */
  noAnswerMs?: number
  /** Invites taken from one user (default LIMITS.calls.invitesPerMinute and inviteBurst; a bench places many calls). */
  inviteRate?: { perMinute: number; burst: number }
  /** 'relay': media only through TURN, so the other side never learns this device's addresses. Default 'all'. */
  iceTransportPolicy?: () => 'all' | 'relay'
}

interface Call {
  view: CallView
  /** Outgoing: the stream to each device rung; incoming: the one from the caller. */
  channels: Map<string, SignalChannel>
  winner: SignalChannel | undefined
  media: AudioPeer | undefined
  /** The remote SDP (the offer for the callee, the answer for the caller), whose fingerprints the media must show. */
  remoteSdp: string | undefined
  /** Candidates that came before the remote description was set, per device. */
  pendingIce: Map<string, Array<Extract<Signal, { t: 'ice' }>>>
  /** Local candidates so far (outgoing: sent to each device as its stream opens). */
  localIce: Array<Extract<Signal, { t: 'ice' }>>
  options: CallMediaOptions
  timers: Array<ReturnType<typeof setTimeout>>
  /** The last statistics taken (live figures are the difference from it), and the figures over the whole call. */
  lastStats: StatsSnapshot | undefined
  overall: CallQuality | undefined
  /** The recording of the other side (kept when the call ends). */
  recording: Int16Array | undefined
  ended: Promise<CallView>
  end: (view: CallView) => void
  dialedAt: number
  /** Video this side sends, by kind, and the other side's video tracks. */
  videoOut: Map<string, { sender: RtpSender; release: () => void }>
  videoIn: VideoCounter[]
  /** Renegotiations of this side waiting for the other side's answer, and the one under way (one at a time). */
  answerWaiters: Array<() => void>
  negotiating: Promise<void>
  /** A conference host: other participants' video tracks it forwards into this call, by track id. */
  forwarded: Map<string, RtpSender>
  /** Outgoing, before an answer: why each device that said no said it. */
  rejections: RejectReason[]
  /** The web client's media leg, when its user is in this call through the browser (a conference's: on one of its calls). */
  browser: BrowserLeg | undefined
}

const FINAL_STATES = new Set<CallState>(['ended'])

export class CallService {
  readonly #c: CallsComponents
  readonly #calls = new Map<string, Call>()
  readonly #invites: TokenBuckets
  readonly #incomingWaiters = new Set<(call: CallView) => void>()

  constructor(components: CallsComponents) {
    this.#c = components
    const rate = components.inviteRate ?? { perMinute: LIMITS.calls.invitesPerMinute, burst: LIMITS.calls.inviteBurst }
    this.#invites = new TokenBuckets(rate.perMinute, rate.burst, LIMITS.chat.senderBuckets)
  }

  get #noAnswerMs(): number {
    return this.#c.noAnswerMs ?? LIMITS.calls.noAnswerMs
  }

  async start(): Promise<void> {
    await this.#c.node.libp2p.handle(
      CALL_PROTOCOL,
      async (stream, connection) => {
        await this.#serve(stream, connection).catch((err: unknown) => {
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
      },
      { runOnLimitedConnection: true }
    )
  }

  async stop(): Promise<void> {
    for (const call of [...this.#calls.values()]) this.#finish(call, call.view.state === 'active' ? 'completed' : 'cancelled', 'shut down')
    await this.#c.node.libp2p.unhandle(CALL_PROTOCOL).catch(() => {})
  }

  /** Calls in progress (ringing, connecting, active). */
  calls(): CallView[] {
    return [...this.#calls.values()].map((c) => c.view)
  }

  /** A call in progress, or one from the history. */
  get(id: string): CallView | undefined {
    const live = this.#calls.get(id)
    if (live !== undefined) return { ...live.view }
    const record = this.#c.store.get(id)
    return record === undefined ? undefined : viewOfRecord(record)
  }

  history(limit = 50): CallRecord[] {
    return this.#c.store.list(Math.min(limit, LIMITS.calls.historyMax))
  }

  /** The recording of the other side, once the call has ended (calls placed or answered with media options). */
  recording(id: string): Int16Array | undefined {
    return this.#recordings.get(id)
  }

  readonly #recordings = new Map<string, Int16Array>()

  /** The recorder of the other side's audio in a connected call (a bench or a test taps it as audio arrives). */
  async recorderOf(id: string): Promise<AudioRecorder> {
    const media = this.#live(id).media
    if (media === undefined) throw new ParleyError('NOT_FOUND', `no media in call ${id}`)
    return await media.remoteAudio()
  }

  /** What this side has heard of a connected call so far (48 kHz mono). */
  heard(id: string): Int16Array {
    return this.#live(id).media?.recorder?.samples() ?? new Int16Array(0)
  }

  /** Plays audio (48 kHz mono) into a connected call (to every participant of a conference it is in). */
  async play(id: string, samples: Int16Array): Promise<void> {
    const call = this.#live(id)
    const conference = call.view.conference === null ? undefined : this.#conferences.get(call.view.conference)
    if (conference !== undefined) {
      conference.mixer.hostSays(samples)
      return
    }
    if (call.media === undefined) throw new ParleyError('NOT_FOUND', `no media in call ${id}`)
    await call.media.player.play(samples)
  }

  /** The calls of a conference this device hosts (by the id of any of them). */
  conference(id: string): CallView[] {
    const key = this.#calls.get(id)?.view.conference
    const conference = key === null || key === undefined ? undefined : this.#conferences.get(key)
    return conference === undefined ? [] : [...conference.members].flatMap((m) => this.#calls.get(m)?.view ?? [])
  }

  /**
   * The web client joins a call with its own media: takes the browser's SDP
   * offer for its leg to this daemon and returns the answer (see
   * BrowserLeg). A leg already there (the page was reloaded) is replaced.
   */
  async attachBrowser(id: string, offer: string): Promise<{ sdp: string; call: CallView }> {
    // An outgoing call has its media from the dial on (the browser's leg is up while it rings); an incoming one once answered.
    const call = this.#calls.get(id)
    if (call === undefined || call.view.state === 'ended') throw new ParleyError('NOT_FOUND', `no call ${id}`)
    if (call.media === undefined) throw new ParleyError('CALL_NOT_CONNECTED', `call ${id} is not answered yet: answer it first`)
    const key = call.view.conference
    const host = key === null ? call : (this.#calls.get(key) ?? call)
    for (const other of this.#calls.values()) {
      if (other.browser === undefined) continue
      other.browser.close()
      other.browser = undefined
      other.view.browser = false
    }
    const leg = new BrowserLeg()
    let sdp: string
    try {
      sdp = await leg.answer(offer)
    } catch (err) {
      leg.close()
      throw err
    }
    if (host.view.state === 'ended') {
      leg.close()
      throw new ParleyError('NOT_FOUND', `call ${id} has ended`)
    }
    host.browser = leg
    host.view.browser = true
    this.#routeBrowser(host)
    this.#emit('call.state', host)
    return { sdp, call: { ...call.view } }
  }

  /** The web client's leg serving this call (on the call, or on another call of its conference). */
  #legOf(call: Call): BrowserLeg | undefined {
    if (call.browser !== undefined) return call.browser
    const key = call.view.conference
    const conference = key === null ? undefined : this.#conferences.get(key)
    for (const m of conference?.members ?? []) {
      const leg = this.#calls.get(m)?.browser
      if (leg !== undefined) return leg
    }
    return undefined
  }

  /**
   * Where the web client's audio goes and what it hears: in a plain call, its
   * microphone is what the call sends and the other side is what it hears;
   * in a conference this device hosts, its user is the host (heard by all,
   * hearing everyone's mix). Its screen shows the newest video that came.
   */
  #routeBrowser(call: Call): void {
    const leg = call.browser
    if (leg === undefined) return
    const key = call.view.conference
    const conference = key === null ? undefined : this.#conferences.get(key)
    if (conference !== undefined) {
      conference.mixer.add(Mixer.HOST_EAR)
      leg.onMic = (chunk) => conference.mixer.hostSays(chunk, { live: true })
      leg.pull = (frame) => conference.mixer.pull(Mixer.HOST_EAR, frame)
    } else if (call.media !== undefined) {
      const media = call.media
      const mic = new LiveAudio()
      leg.pull = undefined
      leg.onMic = (chunk) => mic.push(chunk)
      media.player.pull = (frame) => mic.pull(frame)
      void media
        .remoteAudio()
        .then((recorder) => {
          // Once per call: a leg that replaces another (a reloaded page) is found through the call.
          if (this.#bridged.has(recorder)) return
          this.#bridged.add(recorder)
          const before = recorder.onSamples
          recorder.onSamples = (chunk) => {
            before?.(chunk)
            if (call.view.conference === null) call.browser?.ear.push(chunk)
          }
        })
        .catch(() => {})
    }
    const members = conference === undefined ? [call] : [...conference.members].flatMap((m) => this.#calls.get(m) ?? [])
    const live = members.flatMap((m) => m.videoIn.map((v) => v.track)).filter((t) => t.readyState === 'live')
    void leg.show(live.at(-1) ?? null)
  }

  /** The recorders of calls whose audio already goes on to the web client's leg. */
  readonly #bridged = new WeakSet<object>()

  /** A call with the web client's leg ends: the leg stays with the rest of its conference, or closes. */
  #handOverBrowser(call: Call): void {
    const leg = call.browser
    if (leg === undefined) return
    call.browser = undefined
    const key = call.view.conference
    const conference = key === null ? undefined : this.#conferences.get(key)
    const next = [...(conference?.members ?? [])].map((m) => this.#calls.get(m)).find((c) => c !== undefined && c !== call)
    if (next === undefined || leg.closed) {
      leg.close()
      return
    }
    next.browser = leg
    next.view.browser = true
    this.#routeBrowser(next)
  }

  // Conferences this device hosts: each participant on its own call with this device, which mixes.
  readonly #conferences = new Map<string, { mixer: Mixer; members: Set<string> }>()

  /** The conference key for a call joining `id`'s (the id of its first call). */
  #conferenceOf(id: string): string {
    return this.#calls.get(id)?.view.conference ?? id
  }

  #checkConference(id: string): void {
    const first = this.#calls.get(id)
    if (first === undefined || first.view.state === 'ended') throw new ParleyError('NOT_FOUND', `no call ${id} to add people to`)
    const members = this.#conferences.get(this.#conferenceOf(id))?.members.size ?? 1
    if (members >= LIMITS.calls.conferenceMax)
      throw new ParleyError('INVALID_REQUEST', `a conference has at most ${LIMITS.calls.conferenceMax} participants besides its host`)
  }

  /** A connected call of a conference: its audio goes into the mix, and it hears the mix of the others. */
  #joinConference(call: Call): void {
    const key = call.view.conference
    if (key === null) return
    let conference = this.#conferences.get(key)
    if (conference === undefined) {
      conference = { mixer: new Mixer(), members: new Set() }
      this.#conferences.set(key, conference)
      // The first call (a plain call until now) joins its own conference.
      const first = this.#calls.get(key)
      if (first !== undefined && first !== call) {
        first.view.conference = key
        this.#mix(first, conference.mixer)
        conference.members.add(first.view.id)
      }
    }
    this.#mix(call, conference.mixer)
    conference.members.add(call.view.id)
    this.#forwardVideo(call)
    const withBrowser = [...conference.members].map((m) => this.#calls.get(m)).find((c) => c?.browser !== undefined)
    if (withBrowser !== undefined) this.#routeBrowser(withBrowser)
    for (const id of conference.members) {
      const member = this.#calls.get(id)
      if (member !== undefined) this.#emit('call.state', member)
    }
  }

  #mix(call: Call, mixer: Mixer): void {
    const media = call.media
    if (media === undefined) return
    const id = call.view.id
    mixer.add(id)
    media.player.pull = (frame) => mixer.pull(id, frame)
    void media
      .remoteAudio()
      .then((recorder) => {
        recorder.onSamples = (chunk) => mixer.push(id, chunk)
      })
      .catch(() => {})
  }

  #leaveConference(call: Call): void {
    const key = call.view.conference
    const conference = key === null ? undefined : this.#conferences.get(key)
    if (key === null || conference === undefined) return
    conference.mixer.remove(call.view.id)
    conference.members.delete(call.view.id)
    if (conference.members.size === 0) this.#conferences.delete(key)
  }

  /**
   * Leaves a voicemail (up to 3 minutes of 48 kHz mono audio) for a user:
   * 16 kHz IMA ADPCM in parts, each sent like a chat envelope (signed, sealed
   * to each of their devices and kept in their mailboxes while they are away).
   * `call` names the call it follows (a fresh id when there was none).
   */
  async leaveVoicemail(
    to: string,
    samples: Int16Array,
    call: string = newCallId()
  ): Promise<{ call: string; parts: number; state: string }> {
    let encoded: ReturnType<typeof encodeVoicemail>
    try {
      encoded = encodeVoicemail(samples)
    } catch (err) {
      throw new ParleyError(
        err instanceof CallsError && err.code === 'TOO_LARGE' ? 'PAYLOAD_TOO_LARGE' : 'INVALID_REQUEST',
        (err as Error).message
      )
    }
    const parts: VoicemailBody[] = encoded.parts.map((p, i) => ({
      call,
      part: i,
      parts: encoded.parts.length,
      codec: 'ima-adpcm',
      rate: encoded.rate,
      samples: p.samples,
      seconds: Math.round(encoded.seconds * 100) / 100,
      data: Buffer.from(p.data).toString('base64url')
    }))
    const sent = await this.#c.chat.sendVoicemail(to, parts)
    const states = new Set(sent.map((s) => s.state))
    const state = states.has('refused') ? 'refused' : states.has('pending') ? 'pending' : states.has('stored') ? 'stored' : 'delivered'
    this.#c.emit('voicemail.sent', { call, to, parts: parts.length, state })
    return { call, parts: parts.length, state }
  }

  /** The voicemails left for this user, newest first. */
  voicemails(): VoicemailView[] {
    return this.#c.chat.voicemails()
  }

  /** A voicemail left for this user, as 48 kHz mono audio; undefined until all its parts are here. */
  voicemailAudio(call: string): Int16Array | undefined {
    const parts = this.#c.chat.voicemailParts(call)
    if (parts === undefined) return undefined
    return decodeVoicemail(
      parts.map((p) => ({ samples: p.samples, data: new Uint8Array(Buffer.from(p.data, 'base64url')) })),
      parts[0]?.rate
    )
  }

  /** Resolves with the call's view once it has ended. */
  async ended(id: string): Promise<CallView> {
    const call = this.#calls.get(id)
    if (call === undefined) {
      const done = this.get(id)
      if (done === undefined) throw new ParleyError('NOT_FOUND', `no call ${id}`)
      return done
    }
    return await call.ended
  }

  /** Places a call to a user: rings each of their devices that can be reached. Resolves once the invites are out. */
  async call(to: string, options: CallMediaOptions = {}): Promise<CallView> {
    const me = this.#me()
    if (to.toLowerCase() === me.toLowerCase()) throw new ParleyError('INVALID_REQUEST', 'you cannot call yourself')
    if (this.#c.chat.isBlocked(to)) throw new ParleyError('NOT_ALLOWED', `${to} is blocked: unblock them to call them`)
    if (options.conference === undefined) this.#checkFree()
    else this.#checkConference(options.conference)
    const call = this.#newCall(newCallId(), 'outgoing', to, options)
    if (options.conference !== undefined) call.view.conference = this.#conferenceOf(options.conference)
    call.view.state = 'calling'
    this.#emit('call.outgoing', call)
    const media = await this.#media(call)
    media.pc.onicecandidate = (event) => {
      const ice = iceSignal(event.candidate)
      call.localIce.push(ice)
      if (call.winner !== undefined) void call.winner.send(ice)
      else for (const ch of call.channels.values()) void ch.send(ice)
    }
    const offer = await media.pc.createOffer()
    await media.pc.setLocalDescription(offer)
    const invite: Signal = { t: 'invite', call: call.view.id, video: false, sdp: offer.sdp ?? '' }
    const devices = await this.#c.chat.devicesOf(to, { fresh: true }).catch(() => [] as string[])
    const opened = await Promise.all(devices.map(async (device) => await this.#ring(call, device, invite)))
    if (!opened.some(Boolean)) {
      this.#finish(call, 'unavailable', devices.length === 0 ? `no device of ${to} is known` : `no device of ${to} could be reached`)
      return { ...call.view }
    }
    call.timers.push(
      setTimeout(() => {
        if (call.winner === undefined) this.#cancelAll(call, 'no-answer', 'no-answer', `not answered within ${this.#noAnswerMs / 1000} s`)
      }, this.#noAnswerMs)
    )
    return { ...call.view }
  }

  /** Answers a ringing call on this device (the caller tells this user's other devices it was answered elsewhere). */
  async answer(id: string, options: CallMediaOptions = {}): Promise<CallView> {
    const call = this.#calls.get(id)
    if (call === undefined || call.view.direction !== 'incoming') throw new ParleyError('NOT_FOUND', `no incoming call ${id}`)
    if (call.view.state !== 'ringing') throw new ParleyError('INVALID_REQUEST', `the call is ${call.view.state}, not ringing`)
    const channel = call.winner as SignalChannel
    call.options = options
    call.view.state = 'connecting'
    call.view.answeredAt = Date.now()
    call.dialedAt = performance.now()
    const media = await this.#media(call)
    media.pc.onicecandidate = (event) => void channel.send(iceSignal(event.candidate))
    await media.pc.setRemoteDescription({ type: 'offer', sdp: call.remoteSdp as string })
    await this.#flushIce(call, channel.device)
    const answer = await media.pc.createAnswer()
    await media.pc.setLocalDescription(answer)
    await channel.send({ t: 'accept', sdp: answer.sdp ?? '' })
    this.#emit('call.state', call)
    void this.#connect(call)
    return { ...call.view }
  }

  /** Declines a ringing call (the caller hears `declined`). */
  async decline(id: string): Promise<void> {
    const call = this.#calls.get(id)
    if (call === undefined || call.view.direction !== 'incoming' || call.view.state !== 'ringing')
      throw new ParleyError('NOT_FOUND', `no incoming call ${id} ringing`)
    await call.winner?.send({ t: 'reject', reason: 'declined' })
    this.#finish(call, 'declined', 'declined here')
  }

  /** Ends a call: hangs up a connected one, cancels one still ringing. */
  async hangUp(id: string): Promise<CallView> {
    const call = this.#calls.get(id)
    if (call === undefined) throw new ParleyError('NOT_FOUND', `no call ${id} in progress`)
    if (call.view.direction === 'outgoing' && call.winner === undefined) {
      this.#cancelAll(call, 'cancelled', 'cancelled', 'cancelled by the caller')
    } else if (call.view.direction === 'incoming' && call.view.state === 'ringing') {
      await this.decline(id)
    } else {
      await call.winner?.send({ t: 'hangup' })
      this.#finish(call, call.view.answeredAt === null ? 'cancelled' : 'completed', 'hung up here')
    }
    return await call.ended
  }

  /** Mutes or unmutes this side's audio (the other side is told). */
  async mute(id: string, muted: boolean): Promise<CallView> {
    const call = this.#live(id)
    call.view.muted = muted
    const track = call.media?.player.track
    if (track !== undefined) track.enabled = !muted && !call.view.held
    await call.winner?.send({ t: 'mute', audio: muted, video: false })
    this.#emit('call.state', call)
    return { ...call.view }
  }

  /** Puts the call on hold (no audio either way) or takes it off. */
  async hold(id: string, held: boolean): Promise<CallView> {
    const call = this.#live(id)
    call.view.held = held
    const track = call.media?.player.track
    if (track !== undefined) track.enabled = !held && !call.view.muted
    await call.winner?.send({ t: 'hold', on: held })
    this.#emit('call.state', call)
    return { ...call.view }
  }

  /** Resolves with the next incoming call (from `from` when given) that rings here, or one ringing already. */
  async nextIncoming(options: { from?: string; signal?: AbortSignal } = {}): Promise<CallView> {
    const matches = (v: CallView): boolean =>
      v.direction === 'incoming' &&
      v.state === 'ringing' &&
      (options.from === undefined || v.peer.toLowerCase() === options.from.toLowerCase())
    const ringing = [...this.#calls.values()].find((c) => matches(c.view))
    if (ringing !== undefined) return { ...ringing.view }
    options.signal?.throwIfAborted()
    return await new Promise<CallView>((resolve, reject) => {
      const waiter = (view: CallView): void => {
        if (!matches(view)) return
        this.#incomingWaiters.delete(waiter)
        options.signal?.removeEventListener('abort', onAbort)
        resolve(view)
      }
      const onAbort = (): void => {
        this.#incomingWaiters.delete(waiter)
        reject(new ParleyError('TIMEOUT', `no call${options.from === undefined ? '' : ` from ${options.from}`} rang in time`))
      }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.#incomingWaiters.add(waiter)
    })
  }

  // The caller's side.

  /** Opens a stream to one device of the callee and sends the invite; whether it could. */
  async #ring(call: Call, device: string, invite: Signal): Promise<boolean> {
    const { node } = this.#c
    let stream: Stream
    try {
      const signal = AbortSignal.timeout(LIMITS.calls.inviteTimeoutMs)
      const connection = await node.libp2p.dial(peerIdFromString(device), { signal })
      const hello = await node.hello.greet(connection)
      if (!hello.ok || hello.peer.name.toLowerCase() !== call.view.peer.toLowerCase()) return false
      stream = await connection.newStream(CALL_PROTOCOL, { signal, runOnLimitedConnection: true })
    } catch {
      return false
    }
    if (call.view.state === 'ended' || call.winner !== undefined) {
      stream.abort(new Error('the call is over'))
      return false
    }
    const channel = new SignalChannel(stream, device)
    call.channels.set(device, channel)
    await channel.send(invite)
    for (const ice of call.localIce) await channel.send(ice)
    channel.pump(
      async (signal) => await this.#onCallerSignal(call, channel, signal),
      () => this.#onChannelEnd(call, channel)
    )
    return true
  }

  async #onCallerSignal(call: Call, channel: SignalChannel, signal: Signal): Promise<void> {
    if (call.view.state === 'ended') return
    switch (signal.t) {
      case 'ringing':
        if (call.view.state === 'calling') {
          call.view.state = 'ringing'
          this.#emit('call.state', call)
        }
        return
      case 'accept': {
        if (call.winner !== undefined) {
          // Another device answered first.
          await channel.send({ t: 'cancel', reason: 'answered-elsewhere' })
          channel.close()
          return
        }
        call.winner = channel
        call.remoteSdp = signal.sdp
        call.view.state = 'connecting'
        call.view.answeredAt = Date.now()
        for (const [device, other] of call.channels) {
          if (device === channel.device) continue
          void other.send({ t: 'cancel', reason: 'answered-elsewhere' }).then(() => other.close())
          call.channels.delete(device)
        }
        this.#emit('call.state', call)
        await call.media?.pc.setRemoteDescription({ type: 'answer', sdp: signal.sdp })
        await this.#flushIce(call, channel.device)
        void this.#connect(call)
        return
      }
      case 'reject':
        channel.close()
        call.channels.delete(channel.device)
        this.#afterDeviceGone(call, signal.reason)
        return
      case 'refused':
        channel.close()
        call.channels.delete(channel.device)
        this.#afterDeviceGone(call, signal.code === 'NOT_ALLOWED' ? 'not-allowed' : 'unavailable')
        return
      default:
        await this.#onInCallSignal(call, channel, signal)
    }
  }

  /** A device declined or went away before anyone answered: the call ends once none is left ringing. */
  #afterDeviceGone(call: Call, reason: RejectReason | 'gone'): void {
    if (call.winner !== undefined || call.view.state === 'ended') return
    if (reason !== 'gone') call.rejections.push(reason)
    if (call.channels.size > 0) return
    const reasons = call.rejections
    if (reasons.includes('busy')) this.#finish(call, 'busy', `${call.view.peer} is busy`)
    else if (reasons.includes('declined')) this.#finish(call, 'declined', `${call.view.peer} declined`)
    else if (reasons.includes('not-allowed')) this.#finish(call, 'declined', `${call.view.peer} takes calls from contacts only`)
    else this.#finish(call, 'unavailable', `no device of ${call.view.peer} took the call`)
  }

  #cancelAll(call: Call, reason: CancelReason, outcome: CallOutcome, why: string): void {
    for (const ch of call.channels.values()) void ch.send({ t: 'cancel', reason }).then(() => ch.close())
    this.#finish(call, outcome, why)
  }

  // The callee's side.

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const device = connection.remotePeer.toString()
    const channel = new SignalChannel(stream, device)
    const peer = this.#c.node.hello.verified(connection.remotePeer)
    if (peer === undefined) {
      await channel.send({ t: 'refused', code: 'NO_CREDENTIAL', message: 'say hello with a valid credential first' })
      channel.close()
      return
    }
    const first = await channel.next(LIMITS.calls.inviteTimeoutMs)
    if (first === undefined) return
    if (first.t !== 'invite') {
      await channel.send({ t: 'refused', code: 'MALFORMED', message: 'a call starts with an invite' })
      channel.close()
      return
    }
    const from = peer.name
    const me = this.#c.me()
    // Blocked: the invite goes nowhere, as if this device were not there; the caller is not told.
    if (me === undefined || this.#c.chat.isBlocked(from)) {
      stream.abort(new Error('unavailable'))
      return
    }
    if (this.#c.chat.privacy === 'contacts' && !this.#c.chat.isContact(from)) {
      await channel.send({ t: 'reject', reason: 'not-allowed' })
      channel.close()
      return
    }
    const wait = this.#invites.take(from.toLowerCase())
    if (wait > 0) {
      await channel.send({ t: 'refused', code: 'RATE_LIMITED', message: `too many calls from ${from}: try again in ${wait} ms` })
      channel.close()
      return
    }
    if (this.#calls.has(first.call)) {
      channel.close()
      return
    }
    const call = this.#newCall(first.call, 'incoming', from, {})
    call.view.video = first.video
    call.remoteSdp = first.sdp
    call.winner = channel
    call.channels.set(device, channel)
    if (this.#busy(call.view.id)) {
      await channel.send({ t: 'reject', reason: 'busy' })
      this.#finish(call, 'missed', 'busy in another call')
      return
    }
    call.view.state = 'ringing'
    await channel.send({ t: 'ringing' })
    this.#emit('call.incoming', call)
    for (const waiter of [...this.#incomingWaiters]) waiter({ ...call.view })
    // The caller ends an unanswered call; this is in case it does not.
    call.timers.push(
      setTimeout(() => {
        if (call.view.state === 'ringing') this.#finish(call, 'missed', 'not answered')
      }, this.#noAnswerMs + LIMITS.calls.inviteTimeoutMs)
    )
    channel.pump(
      async (signal) => await this.#onCalleeSignal(call, channel, signal),
      () => this.#onChannelEnd(call, channel)
    )
  }

  async #onCalleeSignal(call: Call, channel: SignalChannel, signal: Signal): Promise<void> {
    if (call.view.state === 'ended') return
    if (signal.t === 'cancel') {
      const outcome: CallOutcome = signal.reason === 'answered-elsewhere' ? 'answered-elsewhere' : 'missed'
      this.#finish(call, call.view.state === 'ringing' ? outcome : 'cancelled', signal.reason)
      return
    }
    await this.#onInCallSignal(call, channel, signal)
  }

  // Both sides.

  async #onInCallSignal(call: Call, channel: SignalChannel, signal: Signal): Promise<void> {
    switch (signal.t) {
      case 'ice': {
        const pc = call.media?.pc
        if (pc === undefined || pc.remoteDescription === null || channel !== call.winner) {
          const pending = call.pendingIce.get(channel.device) ?? []
          if (pending.length < LIMITS.calls.signalsPerCall) pending.push(signal)
          call.pendingIce.set(channel.device, pending)
          return
        }
        await addIce(call, signal)
        return
      }
      case 'hangup':
        this.#finish(call, call.view.answeredAt === null ? 'cancelled' : 'completed', 'hung up by the other side')
        return
      case 'hold':
        call.view.remoteHeld = signal.on
        this.#emit('call.state', call)
        return
      case 'mute':
        call.view.remoteMuted = signal.audio
        this.#emit('call.state', call)
        return
      case 'offer': {
        // Renegotiation by the other side (video or a shared screen added or dropped).
        const pc = call.media?.pc
        if (pc === undefined || channel !== call.winner) return
        await pc.setRemoteDescription({ type: 'offer', sdp: signal.sdp })
        const answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        await channel.send({ t: 'answer', sdp: answer.sdp ?? '' })
        noteVideo(call.view, { remote: sendsVideo(signal.sdp) })
        this.#emit('call.state', call)
        return
      }
      case 'answer':
        if (channel !== call.winner) return
        await call.media?.pc.setRemoteDescription({ type: 'answer', sdp: signal.sdp })
        noteVideo(call.view, { remote: sendsVideo(signal.sdp) })
        for (const done of call.answerWaiters.splice(0)) done()
        return
      default:
        // Out of place here (an invite or accept in the middle of a call): refused, the call goes on.
        await channel.send({ t: 'refused', code: 'MALFORMED', message: `${signal.t} is out of place now` })
    }
  }

  #onChannelEnd(call: Call, channel: SignalChannel): void {
    if (call.view.state === 'ended') return
    if (call.view.direction === 'outgoing' && call.winner === undefined) {
      call.channels.delete(channel.device)
      this.#afterDeviceGone(call, 'gone')
      return
    }
    if (channel === call.winner) {
      // The signalling went away: the other side is gone (or crashed).
      this.#finish(
        call,
        call.view.answeredAt === null ? (call.view.direction === 'incoming' ? 'missed' : 'cancelled') : 'completed',
        'signalling closed'
      )
    }
  }

  /** After the answer: media connected, its certificate the signalled one, then audio; or the call fails. */
  async #connect(call: Call): Promise<void> {
    const media = call.media as AudioPeer
    try {
      await media.connected({ signal: AbortSignal.timeout(LIMITS.calls.connectTimeoutMs) })
    } catch (err) {
      await call.winner?.send({ t: 'hangup' })
      this.#finish(call, 'failed', `media did not connect: ${(err as Error).message}`)
      return
    }
    if (call.view.state === 'ended') return
    // Sound at once (what DTLS let through is from the certificate the SDP named); the check below ends the call otherwise.
    media.player.start()
    if (call.options.play !== undefined) void media.player.play(call.options.play).catch(() => {})
    void media
      .remoteAudio()
      .then(async (recorder) => await recorder.firstAudio())
      .then((at) => {
        call.view.setupMs = Math.round((at - call.dialedAt) * 10) / 10
        this.#emit('call.state', call)
      })
      .catch(() => {})
    const report = await media.pc.getStats()
    const seen = remoteFingerprint(report)
    const signalled = fingerprintsOf(call.remoteSdp ?? '')
    if (seen !== null && !signalled.some((f) => f.algorithm === seen.algorithm && f.value === seen.value)) {
      await call.winner?.send({ t: 'refused', code: 'FINGERPRINT_MISMATCH', message: 'the media certificate is not the signalled one' })
      this.#finish(call, 'failed', 'FINGERPRINT_MISMATCH: the media certificate is not the one in the signalled SDP')
      return
    }
    // The other side may have hung up meanwhile (the state changes under the awaits).
    if ((call.view.state as CallState) === 'ended') return
    call.view.state = 'active'
    if (call.view.answeredAt === null) call.view.answeredAt = Date.now()
    const poll = async (): Promise<void> => {
      if (call.view.state !== 'active') return
      const snapshot = snapshotStats(await media.pc.getStats())
      call.view.quality = callQuality(snapshot, call.lastStats)
      call.overall = callQuality(snapshot)
      call.lastStats = snapshot
      const local = call.view.quality.localCandidateType
      const remote = call.view.quality.remoteCandidateType
      if (local !== null && remote !== null) call.view.path = `${local}/${remote}`
      this.#emit('call.quality', call)
    }
    await poll().catch(() => {})
    const stats = setInterval(() => void poll().catch(() => {}), LIMITS.calls.statsEveryMs)
    stats.unref?.()
    call.timers.push(stats as unknown as ReturnType<typeof setTimeout>)
    this.#emit('call.state', call)
    this.#joinConference(call)
    if (call.options.seconds !== undefined) {
      call.timers.push(
        setTimeout(() => {
          void call.winner?.send({ t: 'hangup' })
          this.#finish(call, 'completed', 'the time given is up')
        }, call.options.seconds * 1000)
      )
    }
  }

  async #media(call: Call): Promise<AudioPeer> {
    const iceServers = (await this.#c.iceServers?.().catch(() => [])) ?? []
    const media = new AudioPeer({ iceServers, iceTransportPolicy: this.#c.iceTransportPolicy?.() ?? 'all', player: { idle: 'silence' } })
    call.media = media
    // Audio is the AudioPeer's; video tracks the other side adds are counted here.
    const audioTrack = media.pc.ontrack
    media.pc.ontrack = (event) => {
      audioTrack?.(event)
      if (event.track.kind !== 'video' || call.view.state === 'ended') return
      const counter = new VideoCounter(event.track)
      call.videoIn.push(counter)
      // The web client's user sees the newest video that arrived.
      void this.#legOf(call)?.show(event.track)
      // A conference this device hosts: the video goes on to the other participants (group video, forwarded).
      this.#forwardVideo(call)
      const sink = counter.sink
      const onframe = sink.onframe
      sink.onframe = (e) => {
        onframe?.(e)
        call.view.videoFramesIn++
      }
    }
    return media
  }

  /**
   * Starts or stops sending video in a connected call ('camera', or 'screen'
   * for a shared screen): the track is added or dropped and the call is
   * renegotiated over its signalling stream (offer, answer).
   */
  async video(id: string, kind: 'camera' | 'screen', on: boolean): Promise<CallView> {
    const call = this.#live(id)
    const pc = call.media?.pc
    if (pc === undefined || call.winner === undefined) throw new ParleyError('NOT_FOUND', `no media in call ${id}`)
    const current = call.videoOut.get(kind)
    if (on === (current !== undefined)) return { ...call.view }
    const leg = this.#legOf(call)
    if (leg !== undefined) {
      // The web client sends one video (its camera or its screen, switched in the browser): one track, however labelled.
      const shared = [...call.videoOut.values()][0]
      let changed = false
      if (on && shared !== undefined) call.videoOut.set(kind, shared)
      else if (on) {
        const track = leg.video
        if (track === undefined)
          throw new ParleyError(
            'INVALID_REQUEST',
            'the web client sends no video: start the camera or the screen share in the browser first'
          )
        call.videoOut.set(kind, { sender: pc.addTrack(track), release: () => {} })
        changed = true
      } else {
        call.videoOut.delete(kind)
        if (call.videoOut.size === 0 && current !== undefined) {
          pc.removeTrack(current.sender)
          changed = true
        }
      }
      noteVideo(call.view, { sending: [...call.videoOut.keys()].sort() })
      if (changed) await this.#renegotiate(call)
      this.#emit('call.state', call)
      return { ...call.view }
    }
    if (on) {
      const pattern = new VideoPattern({ screen: kind === 'screen' })
      call.videoOut.set(kind, { sender: pc.addTrack(pattern.track), release: () => pattern.stop() })
    } else if (current !== undefined) {
      pc.removeTrack(current.sender)
      current.release()
      call.videoOut.delete(kind)
    }
    noteVideo(call.view, { sending: [...call.videoOut.keys()].sort() })
    await this.#renegotiate(call)
    this.#emit('call.state', call)
    return { ...call.view }
  }

  /** Renegotiates a call after those under way for it (one offer at a time per call). */
  async #renegotiate(call: Call): Promise<void> {
    const next = call.negotiating.catch(() => {}).then(async () => await this.#offerAgain(call))
    call.negotiating = next
    await next
  }

  /**
   * Conference video: every participant's video tracks go into every other
   * participant's call with this host (libwebrtc re-encodes them there); a
   * call that joins gets those already flowing.
   */
  #forwardVideo(call: Call): void {
    const key = call.view.conference
    const conference = key === null ? undefined : this.#conferences.get(key)
    if (conference === undefined) return
    for (const id of conference.members) {
      const target = this.#calls.get(id)
      const pc = target?.media?.pc
      if (target === undefined || pc === undefined || target.view.state !== 'active') continue
      let added = false
      for (const memberId of conference.members) {
        if (memberId === id) continue
        for (const counter of this.#calls.get(memberId)?.videoIn ?? []) {
          if (target.forwarded.has(counter.track.id) || counter.track.readyState !== 'live') continue
          target.forwarded.set(counter.track.id, pc.addTrack(counter.track))
          added = true
        }
      }
      if (added) void this.#renegotiate(target).catch(() => {})
    }
  }

  /** A new offer for the media as it is now, and the other side's answer (within the connect timeout). */
  async #offerAgain(call: Call): Promise<void> {
    const pc = call.media?.pc
    const channel = call.winner
    if (pc === undefined || channel === undefined) return
    const offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    const answered = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new ParleyError('TIMEOUT', 'the other side did not answer the renegotiation')),
        LIMITS.calls.connectTimeoutMs
      )
      call.answerWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
    await channel.send({ t: 'offer', sdp: offer.sdp ?? '' })
    await answered
  }

  async #flushIce(call: Call, device: string): Promise<void> {
    const pending = call.pendingIce.get(device) ?? []
    call.pendingIce.clear()
    for (const ice of pending) await addIce(call, ice).catch(() => {})
  }

  #newCall(id: string, direction: 'outgoing' | 'incoming', peer: string, options: CallMediaOptions): Call {
    let end: (view: CallView) => void = () => {}
    const ended = new Promise<CallView>((resolve) => {
      end = resolve
    })
    const call: Call = {
      view: {
        id,
        direction,
        peer,
        video: false,
        state: 'calling',
        outcome: null,
        reason: null,
        startedAt: Date.now(),
        answeredAt: null,
        endedAt: null,
        setupMs: null,
        seconds: 0,
        path: null,
        ...IN_CALL_DEFAULTS,
        sending: []
      },
      videoOut: new Map(),
      videoIn: [],
      answerWaiters: [],
      negotiating: Promise.resolve(),
      forwarded: new Map(),
      rejections: [],
      browser: undefined,
      channels: new Map(),
      winner: undefined,
      media: undefined,
      remoteSdp: undefined,
      pendingIce: new Map(),
      localIce: [],
      options,
      timers: [],
      lastStats: undefined,
      overall: undefined,
      recording: undefined,
      ended,
      end,
      dialedAt: performance.now()
    }
    this.#calls.set(id, call)
    return call
  }

  /** Ends a call here: stops media and timers, closes the signalling, keeps it in the history. Idempotent. */
  #finish(call: Call, outcome: CallOutcome, reason: string): void {
    if (FINAL_STATES.has(call.view.state)) return
    const now = Date.now()
    call.view.state = 'ended'
    call.view.outcome = outcome
    call.view.reason = reason
    call.view.endedAt = now
    call.view.seconds = call.view.answeredAt === null || outcome !== 'completed' ? 0 : (now - call.view.answeredAt) / 1000
    for (const t of call.timers) clearTimeout(t)
    for (const ch of call.channels.values()) ch.close()
    call.winner?.close()
    for (const { release } of call.videoOut.values()) release()
    for (const counter of call.videoIn) counter.stop()
    if (call.media !== undefined) {
      call.media.recorder?.stop()
      const recording = call.media.recorder?.samples()
      if (recording !== undefined) {
        this.#recordings.set(call.view.id, recording)
        // Only the last few recordings are kept in memory.
        while (this.#recordings.size > 8) this.#recordings.delete(this.#recordings.keys().next().value as string)
      }
      call.media.close()
    }
    this.#leaveConference(call)
    this.#handOverBrowser(call)
    this.#calls.delete(call.view.id)
    this.#c.store.add({
      id: call.view.id,
      direction: call.view.direction,
      peer: call.view.peer,
      video: call.view.video,
      outcome,
      reason,
      startedAt: call.view.startedAt,
      answeredAt: call.view.answeredAt,
      endedAt: now,
      seconds: call.view.seconds,
      setupMs: call.view.setupMs,
      path: call.view.path,
      // Over the whole call: the loss since the start, the last RTT and jitter.
      quality:
        call.overall === undefined
          ? null
          : {
              mos: call.overall.mos,
              rttMs: call.overall.rttMs,
              jitterMs: call.overall.jitterMs,
              lossFraction: call.overall.lossFraction
            }
    })
    this.#emit('call.ended', call)
    if (outcome === 'missed') this.#emit('call.missed', call)
    call.end({ ...call.view })
  }

  #live(id: string): Call {
    const call = this.#calls.get(id)
    if (call === undefined || (call.view.state !== 'active' && call.view.state !== 'connecting'))
      throw new ParleyError('NOT_FOUND', `no connected call ${id}`)
    return call
  }

  #busy(except: string): boolean {
    return [...this.#calls.values()].filter((c) => c.view.id !== except).length >= LIMITS.calls.maxCalls
  }

  #checkFree(): void {
    if (this.#calls.size >= LIMITS.calls.maxCalls) throw new ParleyError('UNAVAILABLE', 'already in a call: hang up first')
  }

  #emit(type: string, call: Call): void {
    this.#c.emit(type, { ...call.view })
  }

  #me(): string {
    const me = this.#c.me()
    if (me === undefined) throw new ParleyError('NOT_LOGGED_IN', 'this device is not logged in')
    return me
  }
}

/** Hex: an id never starts with '-' (a command line would take it for an option). */
function newCallId(): string {
  return randomBytes(18).toString('hex')
}

function iceSignal(
  candidate: { candidate?: string; sdpMid?: string | null; sdpMLineIndex?: number | null } | null
): Extract<Signal, { t: 'ice' }> {
  return {
    t: 'ice',
    candidate: candidate?.candidate ?? '',
    mid: candidate?.sdpMid ?? null,
    index: candidate?.sdpMLineIndex ?? null
  }
}

async function addIce(call: Call, ice: Extract<Signal, { t: 'ice' }>): Promise<void> {
  const pc = call.media?.pc
  if (pc === undefined) return
  if (ice.candidate === '') await pc.addIceCandidate(null).catch(() => {})
  else await pc.addIceCandidate({ candidate: ice.candidate, sdpMid: ice.mid ?? undefined, sdpMLineIndex: ice.index ?? undefined })
}

function viewOfRecord(r: CallRecord): CallView {
  return {
    id: r.id,
    direction: r.direction,
    peer: r.peer,
    video: r.video,
    state: 'ended',
    outcome: r.outcome,
    reason: r.reason,
    startedAt: r.startedAt,
    answeredAt: r.answeredAt,
    endedAt: r.endedAt,
    setupMs: r.setupMs,
    seconds: r.seconds,
    path: r.path,
    ...IN_CALL_DEFAULTS,
    sending: [],
    summary: r.quality
  }
}

/** What a call's view says of the call in progress, before anything happened (and of one from the history). */
const IN_CALL_DEFAULTS = {
  held: false,
  muted: false,
  conference: null,
  sending: [],
  remoteVideo: false,
  videoFramesIn: 0,
  remoteHeld: false,
  remoteMuted: false,
  browser: false,
  quality: null
} as const satisfies Partial<CallView>

/** Whether an SDP's author sends video: a video section that is sendrecv or sendonly. */
export function sendsVideo(sdp: string): boolean {
  return sdp
    .split(/\r?\nm=/)
    .slice(1)
    .some((section) => section.startsWith('video') && /\r?\na=(sendrecv|sendonly)\r?$/m.test(section) && !/^video 0 /.test(section))
}

/**
 * The video a call carries now, one way or the other; a call that carried
 * video at some point stays a video call (as the history keeps it).
 */
function noteVideo(view: CallView, now: { remote?: boolean; sending?: string[] }): void {
  if (now.remote !== undefined) view.remoteVideo = now.remote
  if (now.sending !== undefined) view.sending = now.sending
  if (view.remoteVideo || view.sending.length > 0) view.video = true
}
