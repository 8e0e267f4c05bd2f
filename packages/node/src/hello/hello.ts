import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { type CredentialRefusal, type CredentialVerifier, decodeCredential } from '@parley/crypto'
import { LIMITS } from '@parley/protocol'

/**
 * The hello protocol: the first thing two Parley peers say on a new
 * connection. Each presents its credential; the other checks it offline
 * (signature by a trusted login key, times) and that the device key in it is
 * the key Noise authenticated for this connection. Until a peer's hello
 * checks out, Parley protocols refuse it (`HelloService.require`).
 *
 * Wire (each message length-prefixed, UTF-8 JSON, at most
 * LIMITS.overlay.helloMaxBytes): the dialer sends `{"credential": "<base64url>"}`;
 * the listener answers with its own, or `{"refused": {"code", "message"}}`; the
 * dialer then checks the listener's, and sends `{"ok": true}` or a refusal.
 */
export const HELLO_PROTOCOL = '/parley/hello/1.0.0'

export type HelloRefusal = CredentialRefusal | 'NO_CREDENTIAL' | 'TIMEOUT' | 'REFUSED_BY_PEER'

/** A peer whose hello checked out. */
export interface VerifiedPeer {
  peerId: string
  name: string
  expiresAt: number
  serial: bigint
}

export type HelloOutcome = { ok: true; peer: VerifiedPeer } | { ok: false; reason: HelloRefusal; message: string }

export class HelloRefusedError extends Error {
  override name = 'HelloRefusedError'
  readonly code: HelloRefusal
  constructor(code: HelloRefusal, message: string) {
    super(message)
    this.code = code
  }
}

export interface HelloComponents {
  libp2p: Libp2p
  verifier: CredentialVerifier
  /** This device's current credential (base64url); undefined while logged out. */
  credential: () => string | undefined
}

export interface HelloEvents {
  'peer:verified': CustomEvent<VerifiedPeer>
  'peer:refused': CustomEvent<{ peerId: string; reason: HelloRefusal; message: string }>
}

interface Message {
  credential?: string
  ok?: boolean
  refused?: { code: string; message: string }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Runs the hello protocol on every connection and keeps who is who. */
export class HelloService extends EventTarget {
  readonly #components: HelloComponents
  readonly #verified = new Map<string, VerifiedPeer>()
  readonly #pending = new Map<string, Promise<HelloOutcome>>()
  readonly #expiry = new Map<string, ReturnType<typeof setTimeout>>()
  #started = false

  constructor(components: HelloComponents) {
    super()
    this.#components = components
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    const { libp2p } = this.#components
    // Relayed (limited) connections say hello too: a peer behind NAT is reached through a relay first.
    await libp2p.handle(
      HELLO_PROTOCOL,
      async (stream, connection) => {
        await this.#answer(stream, connection).catch((err: unknown) => {
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
      },
      { runOnLimitedConnection: true }
    )
    libp2p.addEventListener('connection:open', this.#onConnection)
    libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    const { libp2p } = this.#components
    libp2p.removeEventListener('connection:open', this.#onConnection)
    libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    await libp2p.unhandle(HELLO_PROTOCOL).catch(() => {})
    for (const timer of this.#expiry.values()) clearTimeout(timer)
    this.#expiry.clear()
    this.#verified.clear()
  }

  /** The peer's verified identity, if its hello checked out and its credential has not expired. */
  verified(peerId: PeerId | string): VerifiedPeer | undefined {
    const peer = this.#verified.get(peerId.toString())
    if (peer === undefined || peer.expiresAt <= Date.now()) return undefined
    return peer
  }

  /** For Parley protocol handlers: the peer's identity, or a refusal with a reason code. */
  require(peerId: PeerId | string): VerifiedPeer {
    const peer = this.verified(peerId)
    if (peer === undefined) throw new HelloRefusedError('NO_CREDENTIAL', `peer ${peerId.toString()} has not presented a valid credential`)
    return peer
  }

  /** Greets a connected peer (once; concurrent callers share the attempt). */
  async greet(connection: Connection): Promise<HelloOutcome> {
    const key = connection.remotePeer.toString()
    const known = this.verified(key)
    if (known !== undefined) return { ok: true, peer: known }
    let pending = this.#pending.get(key)
    if (pending === undefined) {
      pending = this.#dial(connection).finally(() => this.#pending.delete(key))
      this.#pending.set(key, pending)
    }
    return await pending
  }

  /** Greets every peer connected now (after this device signs in: the hellos it could not give before). */
  async greetAll(): Promise<void> {
    await Promise.all(this.#components.libp2p.getConnections().map((c) => this.greet(c).catch(() => undefined)))
  }

  /** Forgets every peer's hello (after this device signs out: it greets again once signed in). */
  forgetAll(): void {
    for (const timer of this.#expiry.values()) clearTimeout(timer)
    this.#expiry.clear()
    this.#verified.clear()
  }

  readonly #onConnection = (event: CustomEvent<Connection>): void => {
    const connection = event.detail
    // The dialer greets; the listener answers. Both learn who the other is.
    if (connection.direction !== 'outbound') return
    void this.greet(connection).catch(() => {})
  }

  readonly #onDisconnect = (event: CustomEvent<PeerId>): void => {
    const key = event.detail.toString()
    this.#verified.delete(key)
    const timer = this.#expiry.get(key)
    if (timer !== undefined) clearTimeout(timer)
    this.#expiry.delete(key)
  }

  async #dial(connection: Connection): Promise<HelloOutcome> {
    const own = this.#components.credential()
    if (own === undefined) return this.#refused(connection.remotePeer, 'NO_CREDENTIAL', 'this device is not logged in')
    const signal = AbortSignal.timeout(LIMITS.overlay.helloTimeoutMs)
    let stream: Stream
    try {
      stream = await connection.newStream(HELLO_PROTOCOL, { signal, runOnLimitedConnection: true })
    } catch (err) {
      return this.#refused(connection.remotePeer, 'TIMEOUT', `could not open a hello stream: ${(err as Error).message}`)
    }
    const lp = lpStream(stream, { maxDataLength: LIMITS.overlay.helloMaxBytes })
    try {
      await lp.write(encode({ credential: own }), { signal })
      const answer = decode(await lp.read({ signal }))
      if (answer.refused !== undefined) {
        return this.#refused(
          connection.remotePeer,
          'REFUSED_BY_PEER',
          `refused by the peer: ${answer.refused.code} ${answer.refused.message}`
        )
      }
      const outcome = this.#check(connection.remotePeer, answer)
      await lp.write(encode(outcome.ok ? { ok: true } : { refused: { code: outcome.reason, message: outcome.message } }), { signal })
      await stream.close({ signal }).catch(() => {})
      return outcome
    } catch (err) {
      stream.abort(err as Error)
      return this.#refused(connection.remotePeer, signal.aborted ? 'TIMEOUT' : 'MALFORMED', `hello failed: ${(err as Error).message}`)
    }
  }

  async #answer(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(LIMITS.overlay.helloTimeoutMs)
    const lp = lpStream(stream, { maxDataLength: LIMITS.overlay.helloMaxBytes })
    let hello: Message
    try {
      hello = decode(await lp.read({ signal }))
    } catch (err) {
      this.#refused(connection.remotePeer, signal.aborted ? 'TIMEOUT' : 'MALFORMED', `bad hello: ${(err as Error).message}`)
      await lp
        .write(encode({ refused: { code: 'MALFORMED', message: 'the hello was not a length-prefixed JSON message' } }), { signal })
        .catch(() => {})
      await stream.close({ signal }).catch(() => {})
      return
    }
    const outcome = this.#check(connection.remotePeer, hello)
    if (!outcome.ok) {
      await lp.write(encode({ refused: { code: outcome.reason, message: outcome.message } }), { signal })
      await stream.close({ signal }).catch(() => {})
      return
    }
    const own = this.#components.credential()
    if (own === undefined) {
      await lp.write(encode({ refused: { code: 'NO_CREDENTIAL', message: 'this device is not logged in' } }), { signal })
    } else {
      await lp.write(encode({ credential: own }), { signal })
      // The dialer's verdict on ours; a refusal only concerns its side.
      await lp.read({ signal }).catch(() => undefined)
    }
    await stream.close({ signal }).catch(() => {})
  }

  #check(remote: PeerId, message: Message): HelloOutcome {
    if (typeof message.credential !== 'string') return this.#refused(remote, 'MALFORMED', 'no credential in the hello')
    const raw = remote.publicKey?.raw
    if (remote.type !== 'Ed25519' || raw === undefined)
      return this.#refused(remote, 'DEVICE_KEY_MISMATCH', 'the peer id is not an Ed25519 key')
    const verdict = this.#components.verifier.verify(message.credential, { deviceKey: raw })
    if (!verdict.ok) return this.#refused(remote, verdict.reason, verdict.message)
    const c = verdict.credential
    const peer: VerifiedPeer = { peerId: remote.toString(), name: c.name, expiresAt: c.expiresAt, serial: c.serial }
    this.#verified.set(peer.peerId, peer)
    this.#scheduleExpiry(remote, peer)
    this.dispatchEvent(new CustomEvent('peer:verified', { detail: peer }))
    return { ok: true, peer }
  }

  /** An expired credential ends the peer's standing: its Parley streams are refused from then on. */
  #scheduleExpiry(remote: PeerId, peer: VerifiedPeer): void {
    const key = remote.toString()
    const previous = this.#expiry.get(key)
    if (previous !== undefined) clearTimeout(previous)
    const timer = setTimeout(
      () => {
        if (this.#verified.get(key) === peer) this.#verified.delete(key)
        this.#expiry.delete(key)
      },
      Math.min(Math.max(0, peer.expiresAt - Date.now()), 2 ** 31 - 1)
    )
    timer.unref?.()
    this.#expiry.set(key, timer)
  }

  #refused(remote: PeerId, reason: HelloRefusal, message: string): HelloOutcome {
    this.dispatchEvent(new CustomEvent('peer:refused', { detail: { peerId: remote.toString(), reason, message } }))
    return { ok: false, reason, message }
  }
}

function encode(message: Message): Uint8Array {
  return encoder.encode(JSON.stringify(message))
}

function decode(data: { subarray(): Uint8Array }): Message {
  const value: unknown = JSON.parse(decoder.decode(data.subarray()))
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('a hello is a JSON object')
  return value as Message
}

/** The name in a credential, without checking it (for logs). */
export function credentialName(credential: string): string | undefined {
  try {
    return decodeCredential(credential).name
  } catch {
    return undefined
  }
}
