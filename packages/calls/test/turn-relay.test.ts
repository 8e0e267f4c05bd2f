import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { type RunningCoturn, startCoturn } from '@parley/testing'
import wrtc from '@roamhq/wrtc'
import { type TurnCredentials, turnCredentials, turnUrls } from '../src/turn.ts'

/**
 * A real TURN relay: coturn with the REST API shared secret, and two
 * libwebrtc peer connections in this process that may only use relayed
 * candidates. What passes here is what a supernode's coturn does for calls.
 */

const secret = randomBytes(24).toString('hex')
const user = 'alice.turn'
let coturn: RunningCoturn

before(async () => {
  coturn = await startCoturn({ secret })
})

after(async () => {
  await coturn?.stop()
})

function relayOnly(c: Pick<TurnCredentials, 'username' | 'credential'>, urls: string = coturn.url): RTCConfiguration {
  return { iceServers: [{ urls, username: c.username, credential: c.credential }], iceTransportPolicy: 'relay' }
}

async function until(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

type Report = Record<string, unknown>

/**
 * The candidate pair ICE selected, once its checks succeeded and data went
 * both ways over it. Polled: under load the stats (cached by libwebrtc for
 * a moment) may still show the pair as checking right after the echo.
 */
async function selectedPair(pc: RTCPeerConnection): Promise<{ stats: RTCStatsReport; pair: Report }> {
  let last: Report | undefined
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    const stats = await pc.getStats()
    const reports = [...stats.values()] as Report[]
    const transport = reports.find((r) => r.type === 'transport' && typeof r.selectedCandidatePairId === 'string')
    const pair = (transport === undefined ? undefined : stats.get(transport.selectedCandidatePairId as string)) as Report | undefined
    // The echo already proved data goes both ways; on a busy machine the pair libwebrtc names last may not count it yet.
    if (pair?.state === 'succeeded' && (pair.bytesSent as number) > 0) return { stats, pair }
    last = pair
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`no selected candidate pair that succeeded and carried data; last: ${JSON.stringify(last)}`)
}

interface Gathered {
  candidates: RTCIceCandidate[]
  /** TURN error codes libwebrtc reported (401: the server refused the credential). */
  errors: number[]
  /** How each local candidate reached the TURN server ('udp' or 'tcp'), from getStats(). */
  relayProtocols: string[]
}

/** Gathers the candidates of a fresh relay-only connection offering one data channel. */
async function gather(c: Pick<TurnCredentials, 'username' | 'credential'>, urls?: string): Promise<Gathered> {
  const pc = new wrtc.RTCPeerConnection(relayOnly(c, urls))
  const gathered: Gathered = { candidates: [], errors: [], relayProtocols: [] }
  pc.addEventListener('icecandidate', (e) => {
    if (e.candidate !== null && e.candidate.candidate !== '') gathered.candidates.push(e.candidate)
  })
  pc.addEventListener('icecandidateerror', (e) => {
    gathered.errors.push((e as RTCPeerConnectionIceErrorEvent).errorCode)
  })
  try {
    pc.createDataChannel('probe')
    await pc.setLocalDescription(await pc.createOffer())
    await until('ICE gathering to complete', () => pc.iceGatheringState === 'complete')
    for (const report of (await pc.getStats()).values() as Iterable<Record<string, unknown>>) {
      if (report.type === 'local-candidate') gathered.relayProtocols.push(String(report.relayProtocol))
    }
  } finally {
    pc.close()
  }
  return gathered
}

describe('TURN through coturn (turnserver, REST API shared secret)', () => {
  test('a data channel between two relay-only peers goes through coturn, on relay candidates', async () => {
    const a = new wrtc.RTCPeerConnection(relayOnly(turnCredentials({ secret, user, ttlSeconds: 600 })))
    const b = new wrtc.RTCPeerConnection(relayOnly(turnCredentials({ secret, user: 'bob.turn', ttlSeconds: 600 })))
    const types: string[] = []
    try {
      for (const [from, to] of [
        [a, b],
        [b, a]
      ] as const) {
        from.addEventListener('icecandidate', (e) => {
          if (e.candidate === null || e.candidate.candidate === '') return
          types.push(e.candidate.type ?? 'unknown')
          void to.addIceCandidate(e.candidate).catch(() => {})
        })
      }
      // Keep the remote channel referenced, or it is collected.
      let remote: RTCDataChannel | undefined
      const received: string[] = []
      b.addEventListener('datachannel', (e) => {
        remote = e.channel
        remote.addEventListener('message', (m) => {
          received.push(String(m.data))
          remote?.send(`echo ${String(m.data)}`)
        })
      })
      const channel = a.createDataChannel('chat')
      const echoed: string[] = []
      channel.addEventListener('message', (m) => {
        echoed.push(String(m.data))
      })

      await a.setLocalDescription(await a.createOffer())
      await b.setRemoteDescription(a.localDescription!)
      await b.setLocalDescription(await b.createAnswer())
      await a.setRemoteDescription(b.localDescription!)

      await until('the data channel to open', () => channel.readyState === 'open')
      channel.send('hello through TURN')
      await until('the echo', () => echoed.length > 0)
      assert.deepEqual(received, ['hello through TURN'])
      assert.deepEqual(echoed, ['echo hello through TURN'])
      assert.ok(types.length > 0)
      assert.ok(
        types.every((t) => t === 'relay'),
        `only relay candidates, got ${types.join(', ')}`
      )

      // The pair ICE chose: both ends relayed by this coturn (its address, a port of its relay range).
      const { stats, pair } = await selectedPair(a)
      for (const id of [pair.localCandidateId, pair.remoteCandidateId]) {
        const candidate = stats.get(id as string) as Report | undefined
        assert.ok(candidate !== undefined, `candidate ${String(id)} in the stats`)
        assert.equal(candidate.candidateType, 'relay')
        if (candidate.type === 'local-candidate') {
          assert.equal(candidate.url, coturn.url)
          assert.equal(candidate.relayProtocol, 'udp')
        }
        assert.equal(candidate.address ?? candidate.ip, coturn.host)
        const port = candidate.port as number
        assert.ok(port >= coturn.minPort && port <= coturn.maxPort, `port ${port} in coturn's relay range`)
      }
    } finally {
      a.close()
      b.close()
    }
  })

  test('coturn refuses a credential whose HMAC is not made with its secret (no relay candidate, 401)', async () => {
    const good = turnCredentials({ secret, user, ttlSeconds: 600 })
    const otherSecret = turnCredentials({ secret: randomBytes(24).toString('hex'), user, ttlSeconds: 600 })
    assert.equal(otherSecret.username, good.username)
    const gathered = await gather(otherSecret)
    assert.deepEqual(gathered.candidates, [])
    assert.ok(gathered.errors.includes(401), `a 401 from coturn, got ${gathered.errors.join(', ')}`)
  })

  test('coturn refuses an expired credential even with the right HMAC (no relay candidate, 401)', async () => {
    const expired = turnCredentials({ secret, user, ttlSeconds: 600, now: Date.now() - 3_600_000 })
    assert.ok(expired.expiresAt < Date.now())
    const gathered = await gather(expired)
    assert.deepEqual(gathered.candidates, [])
    assert.ok(gathered.errors.includes(401), `a 401 from coturn, got ${gathered.errors.join(', ')}`)
  })

  test('the same fresh credential is accepted (the refusals above are not a broken setup)', async () => {
    const gathered = await gather(turnCredentials({ secret, user, ttlSeconds: 600 }))
    assert.ok(gathered.candidates.length > 0)
    assert.ok(gathered.candidates.every((c) => c.type === 'relay'))
    assert.ok(!gathered.errors.includes(401))
  })
  test('TURN over TCP, the second URL turnUrls advertises, allocates too', async () => {
    const [udp, tcp] = turnUrls(coturn.host, coturn.port)
    assert.equal(udp, coturn.url)
    const gathered = await gather(turnCredentials({ secret, user, ttlSeconds: 600 }), tcp)
    assert.ok(gathered.candidates.length > 0)
    assert.ok(gathered.candidates.every((c) => c.type === 'relay'))
    assert.ok(gathered.relayProtocols.length > 0)
    assert.deepEqual(new Set(gathered.relayProtocols), new Set(['tcp']))
  })
})
