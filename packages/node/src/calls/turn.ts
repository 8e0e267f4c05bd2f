import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { type IceServer, type TurnServer, turnCredentials } from '@parley/calls'
import { LIMITS } from '@parley/protocol'
import { TokenBuckets } from '../mailbox/rate.ts'
import type { ParleyNode } from '../node.ts'

/**
 * TURN for calls, `/parley/turn/1.0.0`: a supernode whose operator runs
 * coturn beside it (`--turn turn:HOST:PORT --turn-secret FILE`, the same
 * secret as coturn's `static-auth-secret`) hands out time-limited TURN
 * credentials (the TURN REST API scheme: username `EXPIRY:NAME`, password
 * HMAC-SHA1 of it) to peers that said hello with a valid Parley credential,
 * and to nobody else. They live LIMITS.calls.turnTtlSeconds at most, and
 * never past the asking peer's Parley credential.
 *
 * One length-prefixed JSON message each way: the peer sends `{}`, the
 * supernode answers `{"urls", "username", "credential", "ttl"}` or
 * `{"refused": {"code", "message"}}` (NO_CREDENTIAL, UNAVAILABLE: no TURN
 * here, RATE_LIMITED).
 */
export const TURN_PROTOCOL = '/parley/turn/1.0.0'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class TurnService {
  readonly #node: ParleyNode
  #server: TurnServer | undefined
  readonly #asks = new TokenBuckets(LIMITS.calls.turnAsksPerMinute, LIMITS.calls.turnAskBurst, LIMITS.chat.senderBuckets)
  /** Credentials from linked supernodes, while they are good for a while yet. */
  #cached: { servers: IceServer[]; until: number } | undefined

  constructor(node: ParleyNode, server?: TurnServer) {
    this.#node = node
    this.#server = server
  }

  /** Whether this node hands out TURN credentials. */
  get serving(): boolean {
    return this.#server !== undefined
  }

  async start(): Promise<void> {
    await this.#node.libp2p.handle(
      TURN_PROTOCOL,
      async (stream, connection) => {
        await this.#serve(stream, connection).catch((err: unknown) => {
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
      },
      { runOnLimitedConnection: true }
    )
  }

  async stop(): Promise<void> {
    await this.#node.libp2p.unhandle(TURN_PROTOCOL).catch(() => {})
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(LIMITS.calls.inviteTimeoutMs)
    const lp = lpStream(stream, { maxDataLength: 1024 })
    const answer = async (body: object): Promise<void> => {
      await lp.write(encoder.encode(JSON.stringify(body)), { signal })
      await stream.close({ signal }).catch(() => {})
    }
    await lp.read({ signal })
    const peer = this.#node.hello.verified(connection.remotePeer)
    const server = this.#server
    if (peer === undefined) return await answer({ refused: { code: 'NO_CREDENTIAL', message: 'say hello with a valid credential first' } })
    if (server === undefined || this.#node.role !== 'supernode')
      return await answer({ refused: { code: 'UNAVAILABLE', message: 'this node runs no TURN server' } })
    const wait = this.#asks.take(peer.name.toLowerCase())
    if (wait > 0) return await answer({ refused: { code: 'RATE_LIMITED', message: `try again in ${wait} ms` } })
    // Never past the peer's own credential.
    const left = Math.floor((peer.expiresAt - Date.now()) / 1000)
    const ttlSeconds = Math.min(LIMITS.calls.turnTtlSeconds, left)
    if (ttlSeconds < 60) return await answer({ refused: { code: 'NO_CREDENTIAL', message: 'your credential expires too soon: renew it' } })
    const granted = turnCredentials({ secret: server.secret, user: peer.name, ttlSeconds })
    await answer({ urls: server.urls, username: granted.username, credential: granted.credential, ttl: granted.ttl })
  }

  /** Whether TURN credentials from a supernode are at hand (asked for lately, still good). */
  get known(): boolean {
    return this.#cached !== undefined && this.#cached.until > Date.now() && this.#cached.servers.length > 0
  }

  /** TURN servers for a call: from the linked supernodes that run one (asked once, kept while good). */
  async iceServers(supernodes: PeerId[]): Promise<IceServer[]> {
    if (this.#cached !== undefined && this.#cached.until > Date.now()) return this.#cached.servers
    const answers = await Promise.all(supernodes.slice(0, 3).map(async (peer) => await this.#ask(peer).catch(() => undefined)))
    const servers = answers.filter((a) => a !== undefined).map((a) => a.server)
    const ttls = answers.filter((a) => a !== undefined).map((a) => a.ttl)
    if (servers.length > 0) this.#cached = { servers, until: Date.now() + (Math.min(...ttls) * 1000) / 2 }
    return servers
  }

  async #ask(peer: PeerId): Promise<{ server: IceServer; ttl: number } | undefined> {
    const signal = AbortSignal.timeout(LIMITS.calls.inviteTimeoutMs)
    const connection = this.#node.libp2p.getConnections(peer).find((c) => c.status === 'open')
    if (connection === undefined) return undefined
    const stream = await connection.newStream(TURN_PROTOCOL, { signal, runOnLimitedConnection: true })
    const lp = lpStream(stream, { maxDataLength: 4096 })
    await lp.write(encoder.encode('{}'), { signal })
    const answer = JSON.parse(decoder.decode((await lp.read({ signal })).subarray())) as Record<string, unknown>
    await stream.close({ signal }).catch(() => {})
    const urls = answer.urls
    if (
      !Array.isArray(urls) ||
      urls.length === 0 ||
      urls.length > 4 ||
      !urls.every((u) => typeof u === 'string' && /^turns?:[\x21-\x7e]{1,256}$/.test(u)) ||
      typeof answer.username !== 'string' ||
      answer.username.length > 256 ||
      typeof answer.credential !== 'string' ||
      answer.credential.length > 256 ||
      !Number.isSafeInteger(answer.ttl) ||
      (answer.ttl as number) < 60
    )
      return undefined
    return { server: { urls: urls as string[], username: answer.username, credential: answer.credential }, ttl: answer.ttl as number }
  }
}
