import { randomBytes, timingSafeEqual } from 'node:crypto'
import { join } from 'node:path'
import AjvCompiler from '@fastify/ajv-compiler'
import fastifyWebsocket, { type WebSocket } from '@fastify/websocket'
import { writeSecretFile } from '@parley/crypto/keyfile'
import {
  clientErrorOf,
  DIRECTORY_QUERY_SCHEMA,
  directoryLimit,
  httpStatusOf,
  isValidName,
  LIMITS,
  ParleyError,
  type SessionView
} from '@parley/protocol'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { EventHub, HubClosedError, SlowConsumerError } from './events.ts'
import { defaultWebRoot, serveWebClient } from './web.ts'

export * from './events.ts'

/** Where a running daemon tells the CLI how to reach it: `<profile>/api.json` (0600). */
export const API_FILE = 'api.json'

/** The subprotocol of `GET /v1/events`; a client offering it gets it back. */
export const EVENTS_PROTOCOL = 'parley.events.v1'
/** Browsers cannot set headers on a WebSocket: they may offer the token as the subprotocol `parley.token.<token>` instead. */
export const TOKEN_PROTOCOL_PREFIX = 'parley.token.'

/** Close codes of the event stream (besides 1009, a client message over LIMITS.api.eventClientMessageMaxBytes). */
export const EVENTS_CLOSE = {
  /** The daemon is stopping. */
  GOING_AWAY: 1001,
  /** The client fell more than LIMITS.api.eventQueueLength events behind: reconnect with `?since=`. */
  SLOW_CONSUMER: 4008
} as const

export interface ApiHandlers {
  /** Whether this device is signed in: signed out, only the session, account, whoami, net and event routes answer. */
  signedIn(): boolean
  session(): Promise<SessionView>
  register(body: { name: string; password: string; displayName?: string; email?: string }): Promise<SessionView>
  login(body: { name: string; password: string }): Promise<SessionView>
  logout(): Promise<SessionView>
  whoami(): Promise<object>
  net(): Promise<object>
  whois(name: string): Promise<object>
  /** The directory (the login server's search by name or display name), asked for this device with a signed request. */
  directory(query: string, limit: number): Promise<object>
  /** Connects to a user's online devices and tells how: direct or through a relay. */
  peer(name: string): Promise<object>
}

export interface LocalApiOptions {
  /** The daemon's events, served at `GET /v1/events`. Default: a hub of the API's own, closed with it. */
  events?: EventHub
  /** Feature routes (chat, calls, files…), registered behind the same checks. */
  routes?: Array<(app: FastifyInstance) => void>
  /** The built web client (index.html and its assets), served at `/`. Default: @parley/web's dist, when built. */
  webRoot?: string
}

export interface LocalApi {
  url: string
  /** The address to open in a browser: it carries the token once, which the daemon then keeps in an HttpOnly cookie. */
  web: string
  /** What `GET /v1/events` serves. */
  events: EventHub
  close(): Promise<void>
}

/**
 * Fastify's own validator compiler (Ajv, with Fastify's options), made lazy:
 * a route's schema is compiled when a request first needs it, not while the
 * daemon starts (compiling every route's schema up front was a tenth of a
 * daemon's start-up). Validation itself is unchanged.
 */
function lazyValidators(): AjvCompiler.BuildCompilerFromPool {
  const build = AjvCompiler()
  return (externalSchemas, options) => {
    let compile: ReturnType<typeof build> | undefined
    return (route) => {
      let validate: ReturnType<ReturnType<typeof build>> | undefined
      const lazy = (data: unknown): boolean | Promise<unknown> => {
        validate ??= (compile ??= build(externalSchemas, options))(route)
        const valid = validate(data)
        lazy.errors = validate.errors
        return valid
      }
      lazy.errors = undefined as unknown
      return lazy as unknown as ReturnType<ReturnType<typeof build>>
    }
  }
}

/** How long a stopping API waits for event-stream clients to answer its close frame. */
const CLOSE_GRACE_MS = 1_000

/**
 * The daemon's local API: the one front door for the CLI and the web client.
 * Loopback only; every request carries the profile's random token
 * (`Authorization: Bearer …`, or for the event stream's WebSocket the
 * subprotocol `parley.token.<token>`); the Host header must name this server,
 * so another site in a browser cannot reach it through DNS rebinding, and an
 * Origin header, when there is one, must be this server's own origin.
 */
export async function startLocalApi(
  dataDir: string,
  listen: { host: string; port: number },
  handlers: ApiHandlers,
  options: LocalApiOptions = {}
): Promise<LocalApi> {
  const token = randomBytes(32).toString('base64url')
  const wanted = Buffer.from(token)
  const isToken = (given: string | undefined): boolean => {
    if (given === undefined) return false
    const bytes = Buffer.from(given)
    return bytes.length === wanted.length && timingSafeEqual(bytes, wanted)
  }
  const hub = options.events ?? new EventHub()
  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: LIMITS.httpBodyBytes,
    schemaController: { compilersFactory: { buildValidator: lazyValidators() } }
  })
  let allowedHosts = new Set<string>()
  let allowedOrigins = new Set<string>()
  // The browser's copy of the token: HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it).
  // Named by port, since a browser keeps cookies per host whatever the port (two daemons on one machine).
  let cookieName = 'parley-token'

  await app.register(fastifyWebsocket, {
    options: {
      maxPayload: LIMITS.api.eventClientMessageMaxBytes,
      handleProtocols: (offered: Set<string>) => {
        // A browser fails the connection unless the server picks one of the offered subprotocols.
        if (offered.has(EVENTS_PROTOCOL)) return EVENTS_PROTOCOL
        for (const p of offered) if (p.startsWith(TOKEN_PROTOCOL_PREFIX)) return p
        return false
      }
    },
    preClose: async () => {
      const clients = [...app.websocketServer.clients]
      const closed = clients.map((c) => new Promise<void>((resolve) => c.once('close', () => resolve())))
      for (const c of clients) c.close(EVENTS_CLOSE.GOING_AWAY, 'the daemon is stopping')
      const grace = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref())
      await Promise.race([Promise.all(closed), grace])
      for (const c of clients) c.terminate()
    }
  })

  app.addHook('onRequest', async (request) => {
    if (!allowedHosts.has(request.headers.host ?? '')) throw new ParleyError('UNAUTHENTICATED', 'wrong Host for the local API')
    const origin = request.headers.origin
    if (origin !== undefined && !allowedOrigins.has(origin))
      throw new ParleyError('UNAUTHENTICATED', 'the local API answers only pages of its own origin')
    const path = request.url.split('?')[0] ?? '/'
    // The web client's files are the same for everyone: served without the token (the Host check above still holds).
    if (!path.startsWith('/v1/')) return
    const bearer = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1]
    if (!isToken(bearer) && !(request.ws && isToken(protocolToken(request))) && !isToken(cookieOf(request, cookieName)))
      throw new ParleyError(
        'UNAUTHENTICATED',
        'the local API needs the profile token: open the address the daemon printed (it carries the token), or send it as a Bearer header'
      )
    if (!handlers.signedIn() && !SIGNED_OUT_ROUTES.has(path))
      throw new ParleyError('NOT_LOGGED_IN', 'this device is signed out: sign in (or sign up) first')
  })
  app.setErrorHandler((err, _request, reply) => {
    const e = err instanceof ParleyError ? err : (clientErrorOf(err, LIMITS.httpBodyBytes) ?? new ParleyError('INTERNAL', 'internal error'))
    void reply.status(httpStatusOf(e.code)).send(e.toBody())
  })
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send(new ParleyError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`).toBody())
  })
  const account = {
    name: { type: 'string', minLength: LIMITS.name.minLength, maxLength: LIMITS.name.maxLength },
    password: { type: 'string', minLength: 1, maxLength: LIMITS.password.maxLength }
  }
  app.get('/v1/session', async () => ({ session: await handlers.session() }))
  app.post(
    '/v1/account/register',
    {
      schema: {
        body: {
          type: 'object',
          required: ['name', 'password'],
          additionalProperties: false,
          properties: {
            ...account,
            displayName: { type: 'string', minLength: 1, maxLength: LIMITS.displayName.maxLength },
            email: { type: 'string', minLength: 3, maxLength: LIMITS.email.maxLength }
          }
        }
      }
    },
    async (request) => ({ session: await handlers.register(request.body as Parameters<ApiHandlers['register']>[0]) })
  )
  app.post(
    '/v1/account/login',
    { schema: { body: { type: 'object', required: ['name', 'password'], additionalProperties: false, properties: account } } },
    async (request) => ({ session: await handlers.login(request.body as { name: string; password: string }) })
  )
  app.post('/v1/account/logout', async () => ({ session: await handlers.logout() }))
  app.get('/v1/whoami', async () => await handlers.whoami())
  app.get('/v1/net', async () => await handlers.net())
  app.get('/v1/net/peer/:name', async (request) => {
    const { name } = request.params as { name: string }
    if (!isValidName(name)) throw new ParleyError('INVALID_NAME', `${name} is not a user name`)
    return await handlers.peer(name)
  })
  app.get('/v1/directory', { schema: { querystring: DIRECTORY_QUERY_SCHEMA } }, async (request) => {
    const { q, limit } = request.query as { q: string; limit?: string }
    return await handlers.directory(q, directoryLimit(limit))
  })
  app.get('/v1/whois/:name', async (request) => {
    const { name } = request.params as { name: string }
    if (!isValidName(name)) throw new ParleyError('INVALID_NAME', `${name} is not a user name`)
    return await handlers.whois(name)
  })
  app.get(
    '/v1/events',
    {
      websocket: true,
      preValidation: async (request) => {
        if (!request.ws) throw new ParleyError('INVALID_REQUEST', '/v1/events is a WebSocket: send an upgrade request')
        sinceOf(request)
        if (app.websocketServer.clients.size >= LIMITS.api.eventClients)
          throw new ParleyError('UNAVAILABLE', `already ${LIMITS.api.eventClients} event-stream clients: close one`)
      }
    },
    (socket, request) => {
      void streamEvents(socket, hub, sinceOf(request)).catch(() => {
        socket.terminate()
      })
    }
  )

  for (const register of options.routes ?? []) register(app)
  serveWebClient(app, options.webRoot ?? defaultWebRoot(), {
    isToken,
    cookie: () => cookieName
  })

  await app.listen(listen)
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('local API has no TCP address')
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host}:${address.port}`
  allowedHosts = new Set([`${host}:${address.port}`, `localhost:${address.port}`])
  allowedOrigins = new Set([...allowedHosts].map((h) => `http://${h}`))
  cookieName = `parley-token-${address.port}`
  await writeSecretFile(join(dataDir, API_FILE), `${JSON.stringify({ url, token, pid: process.pid }, null, 2)}\n`)
  let closed: Promise<void> | undefined
  return {
    url,
    web: `${url}/?token=${token}`,
    events: hub,
    async close() {
      closed ??= (async () => {
        await app.close()
        if (options.events === undefined) hub.close()
      })()
      await closed
    }
  }
}

/** What a signed-out device answers: its session, signing up and in, who it is, the network, the event stream. */
const SIGNED_OUT_ROUTES = new Set([
  '/v1/session',
  '/v1/account/register',
  '/v1/account/login',
  '/v1/account/logout',
  '/v1/whoami',
  '/v1/net',
  '/v1/events'
])

/** One cookie's value from the request's Cookie header. */
function cookieOf(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie
  if (typeof header !== 'string') return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/** The token a WebSocket client offered as the subprotocol `parley.token.<token>`. */
function protocolToken(request: FastifyRequest): string | undefined {
  const offered = request.headers['sec-websocket-protocol']
  if (typeof offered !== 'string') return undefined
  for (const p of offered.split(',')) {
    const trimmed = p.trim()
    if (trimmed.startsWith(TOKEN_PROTOCOL_PREFIX)) return trimmed.slice(TOKEN_PROTOCOL_PREFIX.length)
  }
  return undefined
}

/** `?since=SEQ`: a non-negative integer, or absent. */
function sinceOf(request: FastifyRequest): number | undefined {
  const since = (request.query as Record<string, unknown>).since
  if (since === undefined) return undefined
  if (typeof since !== 'string' || !/^\d{1,15}$/.test(since))
    throw new ParleyError('INVALID_REQUEST', '?since= takes the seq of the last event seen (a non-negative integer)')
  return Number(since)
}

/** A frame about the stream itself (no `seq`: it is not an event and is never replayed). */
function streamFrame(type: 'stream.start' | 'stream.pong' | 'stream.error', data: object): string {
  return JSON.stringify({ type, at: new Date().toISOString(), data })
}

function send(socket: WebSocket, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.send(data, (err) => {
      if (err === undefined || err === null) resolve()
      else reject(err)
    })
  })
}

/**
 * One event-stream client: a start frame, the replay, then live events, each
 * sent only once the previous one left for the kernel, so a client that does
 * not read makes its own queue in the hub overflow and is cut off, instead of
 * the daemon buffering for it without limit.
 */
async function streamEvents(socket: WebSocket, hub: EventHub, since: number | undefined): Promise<void> {
  let subscription: ReturnType<EventHub['subscribe']>
  try {
    subscription = hub.subscribe(since === undefined ? {} : { since })
  } catch {
    socket.close(EVENTS_CLOSE.GOING_AWAY, 'the daemon is stopping')
    return
  }
  socket.once('close', () => subscription.close())
  // Replies to the client's own messages count against the same bound as events.
  let replies = 0
  socket.on('message', (data, isBinary) => {
    if (replies >= hub.queueLength) {
      subscription.fail(new SlowConsumerError(hub.queueLength))
      return
    }
    replies++
    send(socket, answer(data, isBinary)).then(
      () => replies--,
      () => socket.terminate()
    )
  })
  await send(socket, streamFrame('stream.start', { run: hub.run, seq: hub.seq, since: since ?? null, missed: subscription.missed }))
  try {
    for await (const { json } of subscription) await send(socket, json)
  } catch (err) {
    if (err instanceof SlowConsumerError)
      socket.close(EVENTS_CLOSE.SLOW_CONSUMER, `slow consumer: more than ${err.queueLength} events behind; reconnect with ?since=`)
    else if (err instanceof HubClosedError) socket.close(EVENTS_CLOSE.GOING_AWAY, 'the daemon is stopping')
    else socket.terminate()
  }
}

/**
 * The answer to a client's message. The one message a client sends is
 * `{"type":"ping","id"?}` (browsers cannot send WebSocket pings); anything
 * else gets a `stream.error` frame and the stream goes on.
 */
function answer(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): string {
  const refuse = (message: string): string => streamFrame('stream.error', { code: 'INVALID_REQUEST', message })
  if (isBinary) return refuse('the event stream takes JSON text messages')
  let message: unknown
  try {
    message = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'))
  } catch {
    return refuse('not JSON')
  }
  if (typeof message !== 'object' || message === null || (message as { type?: unknown }).type !== 'ping')
    return refuse('unknown message: a client sends only {"type":"ping","id"?}')
  const id = (message as { id?: unknown }).id
  return streamFrame('stream.pong', typeof id === 'string' && id.length <= 64 ? { id } : {})
}
