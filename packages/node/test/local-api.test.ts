import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { LIMITS } from '@parley/protocol'
import WebSocket from 'ws'
import {
  API_FILE,
  type ApiEvent,
  type ApiHandlers,
  EVENTS_CLOSE,
  EVENTS_PROTOCOL,
  EventHub,
  HubClosedError,
  type LocalApi,
  SlowConsumerError,
  startLocalApi,
  TOKEN_PROTOCOL_PREFIX
} from '../src/api/local-api.ts'

interface Frame {
  seq?: number
  type: string
  at: string
  data: Record<string, unknown>
}

/** A WebSocket client that keeps every frame it receives, to take them one by one. */
class Client {
  readonly ws: WebSocket
  readonly #frames: Frame[] = []
  readonly #waiting: Array<(f: Frame) => void> = []
  readonly opened: Promise<void>
  readonly closed: Promise<{ code: number; reason: string }>

  constructor(url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}) {
    this.ws = new WebSocket(url, options.protocols ?? [], options)
    this.ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame
      const waiter = this.#waiting.shift()
      if (waiter === undefined) this.#frames.push(frame)
      else waiter(frame)
    })
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
    })
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))
    })
  }

  async next(timeoutMs = 5_000): Promise<Frame> {
    const frame = this.#frames.shift()
    if (frame !== undefined) return frame
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no frame in time')), timeoutMs)
      this.#waiting.push((f) => {
        clearTimeout(timer)
        resolve(f)
      })
    })
  }

  async take(n: number): Promise<Frame[]> {
    const out: Frame[] = []
    for (let i = 0; i < n; i++) out.push(await this.next())
    return out
  }

  close(): void {
    this.ws.terminate()
  }
}

/** The HTTP status with which the server refuses a WebSocket upgrade (or 101 when it accepts). */
async function upgradeStatus(url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<number> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.protocols ?? [], options)
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0)
      res.resume()
      ws.terminate()
    })
    ws.once('open', () => {
      resolve(101)
      ws.terminate()
    })
    ws.once('error', reject)
  })
}

describe('the local API event stream: GET /v1/events', () => {
  let dir: string
  let hub: EventHub
  let api: LocalApi
  let token: string
  let eventsUrl: string
  const clients: Client[] = []
  const auth = (): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${token}` } })
  const client = async (query = '', options: WebSocket.ClientOptions & { protocols?: string[] } = auth()): Promise<Client> => {
    const c = new Client(`${eventsUrl}${query}`, options)
    clients.push(c)
    await c.opened
    return c
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-local-api-'))
    hub = new EventHub({ ringLength: 16, queueLength: 4 })
    api = await startLocalApi(
      dir,
      { host: '127.0.0.1', port: 0 },
      {
        ...signedInAs('api_tester'),
        whoami: async () => ({ name: 'api_tester' }),
        net: async () => ({ role: 'client' }),
        whois: async (name) => ({ name, devices: [] }),
        directory: async (query, limit) => ({ results: [], query, limit }),
        peer: async (name) => ({ name, devices: [] })
      },
      { events: hub }
    )
    token = (JSON.parse(await readFile(join(dir, API_FILE), 'utf8')) as { token: string }).token
    eventsUrl = `${api.url.replace(/^http/, 'ws')}/v1/events`
  })
  after(async () => {
    for (const c of clients) c.close()
    await api.close()
    hub.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('keeps the token in a file only its user can read, and serves the HTTP routes with it', async () => {
    assert.equal((await stat(join(dir, API_FILE))).mode & 0o777, 0o600)
    const ok = await fetch(`${api.url}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(ok.status, 200)
    assert.deepEqual(await ok.json(), { name: 'api_tester' })
    // The subprotocol form of the token is for the WebSocket upgrade only.
    const viaProtocol = await fetch(`${api.url}/v1/whoami`, { headers: { 'sec-websocket-protocol': `${TOKEN_PROTOCOL_PREFIX}${token}` } })
    assert.equal(viaProtocol.status, 401)
  })

  it('answers bad requests with their reason codes, never as internal errors', async () => {
    const post = async (body: string, type = 'application/json'): Promise<[number, string]> => {
      const response = await fetch(`${api.url}/v1/account/login`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': type },
        body
      })
      return [response.status, ((await response.json()) as { error?: { code: string } }).error?.code ?? 'none']
    }
    assert.deepEqual(await post('{"name":"api_tester"}'), [400, 'INVALID_REQUEST'], 'no password: the schema says no')
    assert.deepEqual(await post('{"name":"api_tester","password":{"a":1}}'), [400, 'INVALID_REQUEST'], 'a password of the wrong type')
    assert.deepEqual(await post('{"name":'), [400, 'INVALID_REQUEST'], 'not JSON')
    assert.deepEqual(await post('name=x', 'application/x-www-form-urlencoded'), [415, 'UNSUPPORTED_MEDIA_TYPE'])
    assert.deepEqual(await post(JSON.stringify({ name: 'x'.repeat(LIMITS.httpBodyBytes) })), [413, 'PAYLOAD_TOO_LARGE'])
    const directory = async (query: string): Promise<[number, unknown]> => {
      const response = await fetch(`${api.url}/v1/directory?${query}`, { headers: { authorization: `Bearer ${token}` } })
      const body = (await response.json()) as { limit?: number; error?: { code: string } }
      return [response.status, body.limit ?? body.error?.code]
    }
    assert.deepEqual(await directory('q='), [400, 'INVALID_REQUEST'], 'an empty search')
    assert.deepEqual(await directory('q=bob&limit=ten'), [400, 'INVALID_REQUEST'], 'a limit that is not a number')
    assert.deepEqual(await directory('q=bob&limit=5'), [200, 5])
    assert.deepEqual(await directory('q=bob'), [200, LIMITS.search.defaultLimit])
    assert.deepEqual(await directory('q=bob&limit=999'), [200, LIMITS.search.maxLimit], 'as the login server: at most its maximum')
    // The same schema, compiled on first use, lets a good request through.
    assert.deepEqual(await post('{"name":"api_tester","password":"secret"}'), [200, 'none'])
  })

  it('sends an authenticated subscriber a start frame, then every event in order', async () => {
    const c = await client()
    const start = await c.next()
    assert.equal(start.type, 'stream.start')
    assert.equal(start.seq, undefined)
    assert.deepEqual(start.data, { run: hub.run, seq: hub.seq, since: null, missed: false })
    const first = hub.seq + 1
    const published: ApiEvent[] = []
    for (let i = 0; i < 3; i++) published.push(hub.publish('test.counted', { i }))
    const got = await c.take(3)
    assert.deepEqual(got, published)
    assert.deepEqual(
      got.map((f) => f.seq),
      [first, first + 1, first + 2]
    )
    assert.ok(!Number.isNaN(Date.parse(got[0]?.at ?? '')))
  })

  it('takes the token as a subprotocol too (browsers cannot set headers), and answers with parley.events.v1', async () => {
    const c = await client('', { protocols: [EVENTS_PROTOCOL, `${TOKEN_PROTOCOL_PREFIX}${token}`] })
    assert.equal(c.ws.protocol, EVENTS_PROTOCOL)
    assert.equal((await c.next()).type, 'stream.start')
    const event = hub.publish('test.protocol-auth', { ok: true })
    assert.deepEqual(await c.next(), event)
    // Offering only the token still connects: the server must pick one of the offered protocols.
    const only = await client('', { protocols: [`${TOKEN_PROTOCOL_PREFIX}${token}`] })
    assert.equal((await only.next()).type, 'stream.start')
  })

  it('refuses a missing or wrong token, a foreign Host and a foreign Origin before upgrading', async () => {
    const subscribed = hub.subscribers
    const wrong = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`
    assert.equal(await upgradeStatus(eventsUrl), 401, 'no token')
    assert.equal(await upgradeStatus(eventsUrl, { headers: { authorization: `Bearer ${wrong}` } }), 401, 'wrong token')
    assert.equal(await upgradeStatus(eventsUrl, { headers: { authorization: token } }), 401, 'not a bearer header')
    assert.equal(await upgradeStatus(eventsUrl, { protocols: [`${TOKEN_PROTOCOL_PREFIX}${wrong}`] }), 401, 'wrong token as protocol')
    const port = new URL(api.url).port
    assert.equal(await upgradeStatus(eventsUrl, { headers: { ...auth().headers, host: `evil.example:${port}` } }), 401, 'DNS rebinding')
    assert.equal(await upgradeStatus(eventsUrl, { ...auth(), origin: 'http://evil.example' }), 401, 'foreign page')
    assert.equal(await upgradeStatus(eventsUrl, { ...auth(), origin: `http://127.0.0.1:${Number(port) + 1}` }), 401, 'other port')
    assert.equal(await upgradeStatus(eventsUrl, { ...auth(), origin: 'null' }), 401, 'opaque origin')
    assert.equal(hub.subscribers, subscribed, 'no refused client ever subscribed')
    assert.equal(await upgradeStatus(eventsUrl, { ...auth(), origin: api.url }), 101, 'its own page')
    assert.equal(await upgradeStatus(eventsUrl, { ...auth(), origin: `http://localhost:${port}` }), 101, 'its own page, by name')
    const plain = await fetch(`${api.url}/v1/whoami`, { headers: { authorization: `Bearer ${token}`, origin: 'http://evil.example' } })
    assert.equal(plain.status, 401, 'the Origin check holds for the HTTP routes too')
  })

  it('refuses a plain GET and a bad ?since= with INVALID_REQUEST', async () => {
    const plain = await fetch(`${api.url}/v1/events`, auth())
    assert.equal(plain.status, 400)
    assert.equal(((await plain.json()) as { error: { code: string } }).error.code, 'INVALID_REQUEST')
    for (const since of ['abc', '-1', '1.5', '99999999999999999999'])
      assert.equal(await upgradeStatus(`${eventsUrl}?since=${since}`, auth()), 400, since)
  })

  it('replays what a reconnecting client missed after ?since=, then goes on live', async () => {
    const before = hub.seq
    const missed = [hub.publish('test.replay', { n: 1 }), hub.publish('test.replay', { n: 2 }), hub.publish('test.replay', { n: 3 })]
    const c = await client(`?since=${before + 1}`)
    assert.deepEqual((await c.next()).data, { run: hub.run, seq: before + 3, since: before + 1, missed: false })
    assert.deepEqual(await c.take(2), missed.slice(1))
    const live = hub.publish('test.replay', { n: 4 })
    assert.deepEqual(await c.next(), live)
    // Caught up: nothing to replay.
    const current = await client(`?since=${hub.seq}`)
    assert.equal((await current.next()).data.missed, false)
    const next = hub.publish('test.replay', { n: 5 })
    assert.deepEqual(await current.next(), next)
  })

  it('tells a client whose events are gone (ring overrun, or a seq from another run) that it missed some', async () => {
    const before = hub.seq
    for (let i = 0; i < hub.ringLength + 3; i++) hub.publish('test.overrun', { i })
    const c = await client(`?since=${before}`)
    const start = await c.next()
    assert.equal(start.data.missed, true)
    const replayed = await c.take(hub.ringLength)
    assert.equal(replayed[0]?.seq, hub.oldest)
    assert.equal(replayed.at(-1)?.seq, hub.seq)
    const future = await client(`?since=${hub.seq + 100}`)
    assert.equal((await future.next()).data.missed, true)
  })

  it('cuts off a consumer that stops reading, with close code 4008, while the others go on', async () => {
    const steady = await client()
    await steady.next()
    const slow = await client()
    await slow.next()
    const subscribed = hub.subscribers
    slow.ws.pause()
    // Large events fill the kernel's socket buffers quickly; then the hub queue (4 events here) overflows.
    const big = 'x'.repeat(256 * 1024)
    let published = 0
    while (hub.subscribers === subscribed && published < 2_000) {
      hub.publish('test.flood', { big, n: published++ })
      await steady.next()
      await sleep(1)
    }
    assert.equal(hub.subscribers, subscribed - 1, `the slow consumer was cut off (after ${published} events)`)
    slow.ws.resume()
    const closed = await slow.closed
    assert.equal(closed.code, EVENTS_CLOSE.SLOW_CONSUMER)
    assert.match(closed.reason, /slow consumer/)
    const after = hub.publish('test.after-flood', {})
    assert.deepEqual(await steady.next(), after, 'the others are not affected')
  })

  it('answers pings, refuses other client messages with a reason, and keeps streaming', async () => {
    const c = await client()
    await c.next()
    // In two bursts: replies waiting to be sent count against the same small queue as events (4 here).
    c.ws.send('not json')
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true })
    c.ws.send(JSON.stringify({ type: 'subscribe', topics: ['everything'] }))
    const answers = await c.take(3)
    c.ws.send(JSON.stringify([1, 2]))
    c.ws.send('null')
    c.ws.send(JSON.stringify({ type: 'ping', id: 'p1' }))
    answers.push(...(await c.take(3)))
    assert.deepEqual(
      answers.map((f) => f.type),
      ['stream.error', 'stream.error', 'stream.error', 'stream.error', 'stream.error', 'stream.pong']
    )
    for (const a of answers.slice(0, 5)) {
      assert.equal(a.data.code, 'INVALID_REQUEST')
      assert.equal(typeof a.data.message, 'string')
      assert.equal(a.seq, undefined)
    }
    assert.deepEqual(answers[5]?.data, { id: 'p1' })
    const event = hub.publish('test.after-garbage', { still: 'here' })
    assert.deepEqual(await c.next(), event)
  })

  it('closes a client that sends an oversized message (1009), and keeps serving others', async () => {
    const c = await client()
    await c.next()
    c.ws.send('y'.repeat(64 * 1024))
    assert.equal((await c.closed).code, 1009)
    const d = await client()
    assert.equal((await d.next()).type, 'stream.start')
  })
})

describe('EventHub', () => {
  it('numbers events from 1 and checks types and payloads at publish', () => {
    const hub = new EventHub({ ringLength: 3 })
    assert.equal(hub.seq, 0)
    assert.equal(hub.publish('a.b', 1).seq, 1)
    assert.equal(hub.publish('presence.changed', { name: 'x' }).seq, 2)
    assert.throws(() => hub.publish('Bad Type', {}), TypeError)
    assert.throws(() => hub.publish('x.y', { serial: 1n }), TypeError)
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    assert.throws(() => hub.publish('x.y', cyclic), TypeError)
    assert.equal(hub.seq, 2, 'a refused event takes no number')
    for (let i = 0; i < 5; i++) hub.publish('x.y', i)
    assert.equal(hub.oldest, 5, 'the ring keeps the last 3')
  })

  it('cuts off a subscriber whose live queue overflows, and never makes the publisher wait', async () => {
    const hub = new EventHub({ queueLength: 2 })
    const slow = hub.subscribe()
    const fast = hub.subscribe()
    const seen: number[] = []
    const reading = (async () => {
      for await (const { event } of fast) {
        seen.push(event.seq)
        if (seen.length === 4) break
      }
    })()
    for (let i = 0; i < 4; i++) {
      hub.publish('x.y', i)
      await sleep(0)
    }
    await reading
    assert.deepEqual(seen, [1, 2, 3, 4])
    await assert.rejects(async () => {
      for await (const _ of slow) {
        // never reached: the queue overflowed before the first read
      }
    }, SlowConsumerError)
    assert.equal(hub.subscribers, 0)
  })

  it('ends subscriptions on close, by abort signal, and refuses to publish after close', async () => {
    const hub = new EventHub()
    const controller = new AbortController()
    const aborted = hub.subscribe({ signal: controller.signal })
    const open = hub.subscribe()
    controller.abort()
    const drained: number[] = []
    for await (const { event } of aborted) drained.push(event.seq)
    assert.deepEqual(drained, [])
    hub.close()
    hub.close()
    await assert.rejects(async () => {
      for await (const _ of open) {
        // nothing
      }
    }, HubClosedError)
    assert.throws(() => hub.publish('x.y', 1), HubClosedError)
    assert.throws(() => hub.subscribe(), HubClosedError)
  })
})

/** Session handlers of a device signed in as `name` (these tests are about the API itself, not signing in). */
function signedInAs(name: string): Pick<ApiHandlers, 'signedIn' | 'session' | 'register' | 'login' | 'logout'> {
  const view = {
    signedIn: true,
    name,
    displayName: null,
    peerId: '12D3KooW',
    login: 'http://127.0.0.1:1',
    suggestedName: null,
    expiresAt: null
  }
  return {
    signedIn: () => true,
    session: async () => view,
    register: async () => view,
    login: async () => view,
    logout: async () => view
  }
}

describe('the local API closing', () => {
  it('closes event-stream clients with 1001 and its own hub', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-local-api-'))
    try {
      const api = await startLocalApi(
        dir,
        { host: '127.0.0.1', port: 0 },
        {
          ...signedInAs('api_tester'),
          whoami: async () => ({}),
          net: async () => ({}),
          whois: async () => ({}),
          directory: async () => ({}),
          peer: async () => ({})
        }
      )
      const { token } = JSON.parse(await readFile(join(dir, API_FILE), 'utf8')) as { token: string }
      const c = new Client(`${api.url.replace(/^http/, 'ws')}/v1/events`, { headers: { authorization: `Bearer ${token}` } })
      await c.opened
      await c.next()
      const event = api.events.publish('test.own-hub', {})
      assert.deepEqual(await c.next(), event)
      await api.close()
      await api.close()
      assert.equal((await c.closed).code, EVENTS_CLOSE.GOING_AWAY)
      assert.throws(() => api.events.publish('x.y', 1), HubClosedError)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe("the web client's front door", () => {
  let dir: string
  let api: LocalApi
  let token: string
  let signedIn = false
  const cookieName = (): string => `parley-token-${new URL(api.url).port}`

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-local-api-'))
    const web = join(dir, 'web')
    await mkdir(join(web, 'assets'), { recursive: true })
    await writeFile(join(web, 'index.html'), '<!doctype html><title>Parley</title><div id="root"></div>')
    await writeFile(join(web, 'assets', 'app-1234.js'), 'console.log(1)')
    await writeFile(join(dir, 'secret.txt'), 'not for the browser')
    const session = { ...signedInAs('web_tester') }
    api = await startLocalApi(
      dir,
      { host: '127.0.0.1', port: 0 },
      {
        ...session,
        signedIn: () => signedIn,
        session: async () => ({ ...(await session.session()), signedIn }),
        whoami: async () => ({}),
        net: async () => ({}),
        whois: async () => ({}),
        directory: async () => ({}),
        peer: async () => ({})
      },
      {
        webRoot: web,
        routes: [
          (app) => {
            app.get('/v1/things', async () => ({ things: [] }))
          }
        ]
      }
    )
    token = (JSON.parse(await readFile(join(dir, API_FILE), 'utf8')) as { token: string }).token
  })
  after(async () => {
    await api.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('serves the client without the token, with headers that keep other sites out', async () => {
    const page = await fetch(`${api.url}/`)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /<div id="root">/)
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/)
    assert.equal(page.headers.get('x-frame-options'), 'DENY')
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer')
    const asset = await fetch(`${api.url}/assets/app-1234.js`)
    assert.equal(asset.status, 200)
    assert.match(asset.headers.get('content-type') ?? '', /javascript/)
    assert.match(asset.headers.get('cache-control') ?? '', /immutable/)
    // The client's own routes get index.html; a missing asset is a 404; nothing outside the folder is served.
    assert.match(await (await fetch(`${api.url}/chats/someone`)).text(), /<div id="root">/)
    assert.equal((await fetch(`${api.url}/assets/missing.js`)).status, 404)
    assert.equal((await fetch(`${api.url}/..%2fsecret.txt`)).status, 404)
    assert.equal((await fetch(`${api.url}/%2e%2e/secret.txt`)).status, 404)
  })

  it('takes the printed address once: the token goes into an HttpOnly, SameSite=Strict cookie, and the address loses it', async () => {
    assert.equal(api.web, `${api.url}/?token=${token}`)
    const wrong = await fetch(`${api.url}/?token=not-the-token`, { redirect: 'manual' })
    assert.equal(wrong.status, 401)
    assert.equal(wrong.headers.get('set-cookie'), null)
    const right = await fetch(api.web, { redirect: 'manual' })
    assert.equal(right.status, 303)
    assert.equal(right.headers.get('location'), '/')
    const cookie = right.headers.get('set-cookie') ?? ''
    assert.match(cookie, new RegExp(`^${cookieName()}=${token};`))
    assert.match(cookie, /HttpOnly/)
    assert.match(cookie, /SameSite=Strict/)
    const withCookie = { cookie: `other=1; ${cookieName()}=${token}` }
    assert.equal((await fetch(`${api.url}/v1/session`, { headers: withCookie })).status, 200)
    assert.equal((await fetch(`${api.url}/v1/session`)).status, 401)
    assert.equal((await fetch(`${api.url}/v1/session`, { headers: { cookie: `${cookieName()}=wrong` } })).status, 401)
    // Another port's cookie is another daemon's.
    assert.equal((await fetch(`${api.url}/v1/session`, { headers: { cookie: `parley-token-1=${token}` } })).status, 401)
    // A page of another site cannot use the cookie: its Origin is refused.
    const foreign = await fetch(`${api.url}/v1/session`, { headers: { ...withCookie, origin: 'http://evil.example' } })
    assert.equal(foreign.status, 401)
    // Nor can a DNS-rebound name reach the client or the API.
    // (fetch cannot set Host: a raw request does.)
    const rebound = await new Promise<number>((resolve, reject) => {
      const url = new URL(api.url)
      request({ host: url.hostname, port: url.port, path: '/', headers: { host: `evil.example:${url.port}` } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
        .on('error', reject)
        .end()
    })
    assert.equal(rebound, 401)
  })

  it('signed out, answers only the session, account and network routes, with NOT_LOGGED_IN for the rest', async () => {
    const headers = { authorization: `Bearer ${token}` }
    signedIn = false
    const session = await fetch(`${api.url}/v1/session`, { headers })
    assert.equal(session.status, 200)
    assert.equal(((await session.json()) as { session: { signedIn: boolean } }).session.signedIn, false)
    const things = await fetch(`${api.url}/v1/things`, { headers })
    assert.equal(things.status, 401)
    assert.equal(((await things.json()) as { error: { code: string } }).error.code, 'NOT_LOGGED_IN')
    signedIn = true
    assert.equal((await fetch(`${api.url}/v1/things`, { headers })).status, 200)
    // An unknown API route is the API's 404, not the client's page.
    const unknown = await fetch(`${api.url}/v1/nothing-here`, { headers })
    assert.equal(unknown.status, 404)
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'NOT_FOUND')
  })
})
