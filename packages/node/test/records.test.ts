import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { CredentialVerifier, generateKeyPair, type KeyPair } from '@parley/crypto'
import { testNetwork } from '@parley/testing'
import { checkRecord, ParleyNode, RECORDS_PROTOCOL, RecordError, type Role, signRecord, type UserRecord } from '../src/index.ts'
import { startMemoryNode } from './support.ts'

const network = testNetwork()
const { trustedKeys, credentialFor } = network
const verifier = new CredentialVerifier(trustedKeys)

interface Member {
  node: ParleyNode
  device: KeyPair
  name: string
}

const all: ParleyNode[] = []
async function member(role: Role, name: string, device = generateKeyPair()): Promise<Member> {
  const node = await startMemoryNode(network, role, name, device)
  all.push(node)
  return { node, device, name }
}

describe('the directory on the overlay (memory transport)', () => {
  const supernodes: Member[] = []
  const clients: Member[] = []

  before(async () => {
    for (let i = 0; i < 6; i++) supernodes.push(await member('supernode', `super_${i}_node`))
    // Supernodes know each other (as seed supernodes would after bootstrap).
    for (const a of supernodes) for (const b of supernodes) if (a !== b) await a.node.connect(b.node.addresses[0] as string)
    for (let i = 0; i < 24; i++) {
      const c = await member('client', `user_${i}_name`)
      // Each client hangs off 3 supernodes.
      for (let k = 0; k < 3; k++) await c.node.connect(supernodes[(i + k) % supernodes.length]?.node.addresses[0] as string)
      clients.push(c)
    }
    // Let the DHT routing tables settle (identify runs after each connection).
    await new Promise((resolve) => setTimeout(resolve, 500))
  })
  after(async () => {
    await Promise.all(all.map(async (n) => await n.stop()))
  })

  it('publishes every client to the supernodes closest to its name', async () => {
    for (const c of clients) {
      const result = await c.node.records.publish({ addrs: c.node.addresses, presence: 'online' })
      assert.equal(result.stored, 3, `${c.name} stored on ${result.stored}`)
    }
    const total = supernodes.reduce((sum, s) => sum + s.node.records.store.size, 0)
    assert.equal(total, clients.length * 3, 'three replicas each, no more')
  })

  it('finds every user from any node, with the device that is online', async () => {
    let lookups = 0
    for (const asker of [...clients.slice(0, 6), ...supernodes.slice(0, 2)]) {
      for (const target of clients) {
        const found = await asker.node.records.whois(target.name.toUpperCase())
        assert.equal(found.name, target.name)
        assert.deepEqual(
          found.devices.map((d) => [d.peerId, d.presence]),
          [[target.node.peerId, 'online']]
        )
        assert.ok(found.answered >= 1)
        lookups++
      }
    }
    assert.equal(lookups, 8 * 24)
    assert.deepEqual((await clients[0]!.node.records.whois('nobody_at_all')).devices, [])
  })

  it('keeps the newest record per device and lists every device of a user', async () => {
    const alice = clients[1]!
    await alice.node.records.publish({ addrs: alice.node.addresses, presence: 'away' })
    const second = await member('client', alice.name)
    await second.node.connect(supernodes[0]!.node.addresses[0] as string)
    await second.node.records.publish({ addrs: second.node.addresses, presence: 'dnd' })
    const found = await clients[5]!.node.records.whois(alice.name)
    assert.deepEqual(
      found.devices.map((d) => [d.peerId, d.presence]).sort(),
      [
        [alice.node.peerId, 'away'],
        [second.node.peerId, 'dnd']
      ].sort()
    )
  })

  it('refuses forged, replayed, expired, oversized and misnamed records', () => {
    const device = generateKeyPair()
    const credential = credentialFor(device, 'victim_user')
    const now = Date.now()
    const good: UserRecord = { v: 1, credential, addrs: [], presence: 'online', seq: 5, expiresAt: now + 60_000 }
    const code = (f: () => unknown): string => {
      try {
        f()
        return 'ok'
      } catch (err) {
        return err instanceof RecordError ? err.code : `thrown: ${String(err)}`
      }
    }
    assert.equal(
      code(() => checkRecord(signRecord(good, device), verifier, { name: 'VICTIM_USER' })),
      'ok'
    )
    assert.equal(
      code(() => checkRecord(signRecord(good, generateKeyPair()), verifier)),
      'BAD_SIGNATURE',
      'signed by someone else'
    )
    assert.equal(
      code(() => checkRecord(signRecord(good, device), verifier, { name: 'other_user' })),
      'WRONG_NAME'
    )
    assert.equal(
      code(() => checkRecord(signRecord({ ...good, expiresAt: now - 1 }, device), verifier)),
      'EXPIRED'
    )
    assert.equal(
      code(() => checkRecord(signRecord({ ...good, expiresAt: now + 86_400_000 }, device), verifier)),
      'TOO_LONG_LIVED'
    )
    assert.equal(
      code(() => checkRecord(signRecord({ ...good, addrs: Array(16).fill('x'.repeat(256)) }, device), verifier)),
      'TOO_LARGE'
    )
    const expiredCredential = credentialFor(device, 'victim_user', { issuedAt: now - 7_200_000, expiresAt: now - 3_600_000 })
    assert.equal(
      code(() => checkRecord(signRecord({ ...good, credential: expiredCredential }, device), verifier)),
      'BAD_CREDENTIAL'
    )
    const signed = signRecord(good, device)
    assert.equal(
      code(() => checkRecord({ ...signed, record: `${signed.record}A` }, verifier)),
      'MALFORMED'
    )
    assert.equal(
      code(() => checkRecord({ record: 1, sig: 2 }, verifier)),
      'MALFORMED'
    )
    assert.equal(
      code(() => checkRecord(null, verifier)),
      'MALFORMED'
    )
  })

  it('refuses an older record of the same device (a replay) at the supernode', async () => {
    const bob = clients[2]!
    const store = supernodes[0]!.node.records.store
    const credential = credentialFor(bob.device, bob.name)
    const now = Date.now()
    const newer = checkRecord(
      signRecord({ v: 1, credential, addrs: [], presence: 'online', seq: now + 10, expiresAt: now + 60_000 }, bob.device),
      verifier
    )
    const older = checkRecord(
      signRecord({ v: 1, credential, addrs: [], presence: 'away', seq: now + 5, expiresAt: now + 60_000 }, bob.device),
      verifier
    )
    assert.equal(store.put(newer), 'stored')
    assert.equal(store.put(newer), 'unchanged')
    assert.equal(store.put(older), 'REPLAYED')
    assert.equal(store.get(bob.name).find((r) => r.peerId === bob.node.peerId)?.record.presence, 'online')
  })

  it('withdraws a device that signs out: lookups leave it out, and its older record replayed is refused', async () => {
    const carol = clients[3]!
    const asker = clients[7]!
    assert.equal((await asker.node.records.whois(carol.name)).devices.length, 1)
    const online = (await supernodes[0]!.node.records.whois(carol.name)).devices[0]!
    const withdrawn = await carol.node.records.withdraw()
    assert.equal(withdrawn.stored, 3, 'the withdrawal replaces the record on every replica')
    assert.deepEqual((await asker.node.records.whois(carol.name)).devices, [], 'from a client')
    assert.deepEqual((await supernodes[4]!.node.records.whois(carol.name)).devices, [], 'from a supernode')
    // The online record it replaced, put again by someone who kept it, is older: refused everywhere.
    const replicas = supernodes.filter((s) => s.node.records.store.get(carol.name).length > 0)
    assert.equal(replicas.length, 3)
    for (const s of replicas) {
      const kept = s.node.records.store.get(carol.name)
      assert.deepEqual(
        kept.map((r) => [r.record.presence, r.record.addrs.length]),
        [['offline', 0]]
      )
      assert.ok(kept[0]!.record.seq > online.seq)
    }
    const credential = credentialFor(carol.device, carol.name)
    const replay = checkRecord(
      signRecord({ v: 1, credential, addrs: online.addrs, presence: 'online', seq: online.seq, expiresAt: online.expiresAt }, carol.device),
      verifier
    )
    for (const s of replicas) assert.equal(s.node.records.store.put(replay), 'REPLAYED')
    // A withdrawal carries no addresses: one that does is malformed.
    assert.throws(
      () =>
        checkRecord(
          signRecord(
            { v: 1, credential, addrs: ['/ip4/10.0.0.1/tcp/1'], presence: 'offline', seq: Date.now(), expiresAt: Date.now() + 60_000 },
            carol.device
          ),
          verifier
        ),
      (err: unknown) => err instanceof RecordError && err.code === 'MALFORMED'
    )
    // Back online: found again.
    await carol.node.records.publish({ addrs: carol.node.addresses, presence: 'online' })
    assert.deepEqual(
      (await asker.node.records.whois(carol.name)).devices.map((d) => d.peerId),
      [carol.node.peerId]
    )
  })

  it('answers only peers that said hello with a valid credential', async () => {
    const stranger = await ParleyNode.create({
      role: 'client',
      deviceSeed: generateKeyPair().seed,
      trustedKeys,
      credential: () => undefined,
      transport: 'memory',
      privateAddresses: true
    })
    await stranger.start()
    all.push(stranger)
    const outcome = await stranger.connect(supernodes[0]!.node.addresses[0] as string)
    assert.equal(outcome.ok ? 'ok' : outcome.reason, 'NO_CREDENTIAL')
    const found = await stranger.records.whois(clients[0]!.name)
    assert.equal(found.answered, 0, 'no supernode answers a peer without a credential')
    assert.deepEqual(found.devices, [])
    // And asked directly, bypassing the client's own check, the supernode refuses with a reason code.
    const stream = await stranger.libp2p.dialProtocol(multiaddr(supernodes[0]!.node.addresses[0] as string), RECORDS_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(new TextEncoder().encode(JSON.stringify({ op: 'get', name: clients[0]!.name })))
    const answer = JSON.parse(new TextDecoder().decode((await lp.read()).subarray())) as { refused?: { code: string }; records?: unknown }
    assert.equal(answer.refused?.code, 'NO_CREDENTIAL')
    assert.equal(answer.records, undefined)
  })
})
