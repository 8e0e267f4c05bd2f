import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { generateKeyPair, type KeyPair, keyIdOf, peerIdOf } from '@parley/crypto'
import { testNetwork } from '@parley/testing'
import { HELLO_PROTOCOL, type HelloOutcome, ParleyNode, type Role } from '../src/index.ts'

const { trustedKeys, credentialFor } = testNetwork()

const nodes: ParleyNode[] = []
async function node(role: Role, credential: (device: KeyPair) => string | undefined): Promise<{ node: ParleyNode; device: KeyPair }> {
  const device = generateKeyPair()
  const cred = credential(device)
  const n = await ParleyNode.create({ role, deviceSeed: device.seed, trustedKeys, credential: () => cred, privateAddresses: true })
  await n.start()
  nodes.push(n)
  return { node: n, device }
}

function reason(outcome: HelloOutcome): string {
  return outcome.ok ? `ok:${outcome.peer.name}` : outcome.reason
}

describe('hello: peers prove who they are with their credentials, checked offline', () => {
  let supernode: ParleyNode
  let address: string

  before(async () => {
    supernode = (await node('supernode', (d) => credentialFor(d, 'super_node_1'))).node
    address = supernode.addresses[0] as string
    assert.match(address, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)
  })
  after(async () => {
    await Promise.all(nodes.map(async (n) => await n.stop()))
  })

  it('uses the device key as the libp2p identity', async () => {
    const { node: n, device } = await node('client', (d) => credentialFor(d, 'identity_1'))
    assert.equal(n.peerId, peerIdOf(device.publicKey))
  })

  it('verifies both sides of a connection between valid peers', async () => {
    const { node: alice } = await node('client', (d) => credentialFor(d, 'alice_one'))
    const verifiedOnSupernode = new Promise<string>((resolve) => {
      supernode.hello.addEventListener('peer:verified', (e) => {
        const peer = (e as CustomEvent<{ name: string; peerId: string }>).detail
        if (peer.peerId === alice.peerId) resolve(peer.name)
      })
    })
    const outcome = await alice.connect(address)
    assert.equal(reason(outcome), 'ok:super_node_1')
    assert.equal(await verifiedOnSupernode, 'alice_one')
    assert.equal(supernode.hello.require(alice.peerId).name, 'alice_one')
    assert.equal(alice.hello.verified(supernode.peerId)?.name, 'super_node_1')
    // A second greeting on the same connection reuses the first.
    assert.equal(reason(await alice.connect(address)), 'ok:super_node_1')
  })

  it('refuses a credential for another device key (a stolen credential)', async () => {
    const other = generateKeyPair()
    const { node: thief } = await node('client', () => credentialFor(other, 'victim_one'))
    const refused = waitRefusal(supernode, thief.peerId)
    assert.equal(reason(await thief.connect(address)), 'REFUSED_BY_PEER')
    assert.equal(await refused, 'DEVICE_KEY_MISMATCH')
    assert.equal(supernode.hello.verified(thief.peerId), undefined)
    assert.throws(() => supernode.hello.require(thief.peerId), { name: 'HelloRefusedError', code: 'NO_CREDENTIAL' })
  })

  it('refuses an expired credential, a forged one and one signed by an unknown key', async () => {
    const cases: Array<[string, (d: KeyPair) => string]> = [
      ['EXPIRED', (d) => credentialFor(d, 'late_user', { issuedAt: Date.now() - 7_200_000, expiresAt: Date.now() - 3_600_000 })],
      ['BAD_SIGNATURE', (d) => credentialFor(d, 'forger_one', {}, generateKeyPair())],
      [
        'UNKNOWN_KEY_ID',
        (d) => {
          const rogue = generateKeyPair()
          return credentialFor(d, 'rogue_user', { keyId: keyIdOf(rogue.publicKey) }, rogue)
        }
      ],
      ['MALFORMED', () => 'AAAA']
    ]
    for (const [code, make] of cases) {
      const { node: bad } = await node('client', make)
      const refused = waitRefusal(supernode, bad.peerId)
      assert.equal(reason(await bad.connect(address)), 'REFUSED_BY_PEER', code)
      assert.equal(await refused, code)
    }
  })

  it('checks the listener too: a client refuses a supernode with a bad credential', async () => {
    const { node: fake } = await node('supernode', (d) =>
      credentialFor(d, 'fake_super', { expiresAt: Date.now() - 1, issuedAt: Date.now() - 10_000 })
    )
    const { node: carol } = await node('client', (d) => credentialFor(d, 'carol_one'))
    assert.equal(reason(await carol.connect(fake.addresses[0] as string)), 'EXPIRED')
  })

  it('answers garbage and oversized hellos with a refusal, and keeps serving', async () => {
    const { node: raw } = await node('client', (d) => credentialFor(d, 'raw_sender'))
    for (const payload of [new TextEncoder().encode('not json'), new Uint8Array(8192).fill(120)]) {
      const stream = await raw.libp2p.dialProtocol(multiaddr(address), HELLO_PROTOCOL)
      const lp = lpStream(stream)
      await lp.write(payload).catch(() => {})
      const answer = await lp.read().then(
        (d) => new TextDecoder().decode(d.subarray()),
        (e: Error) => `reset: ${e.name}`
      )
      assert.ok(answer.includes('MALFORMED') || answer.startsWith('reset'), answer)
    }
    const { node: dave } = await node('client', (d) => credentialFor(d, 'dave_after'))
    assert.equal(reason(await dave.connect(address)), 'ok:super_node_1')
  })

  it('forgets a peer when its credential expires', async () => {
    const { node: brief } = await node('client', (d) => credentialFor(d, 'brief_user', { expiresAt: Date.now() + 1500 }))
    assert.equal(reason(await brief.connect(address)), 'ok:super_node_1')
    assert.equal(supernode.hello.verified(brief.peerId)?.name, 'brief_user')
    await new Promise((resolve) => setTimeout(resolve, 1600))
    assert.equal(supernode.hello.verified(brief.peerId), undefined)
  })
})

function waitRefusal(node: ParleyNode, peerId: string): Promise<string> {
  return new Promise((resolve) => {
    node.hello.addEventListener('peer:refused', (e) => {
      const detail = (e as CustomEvent<{ peerId: string; reason: string }>).detail
      if (detail.peerId === peerId) resolve(detail.reason)
    })
  })
}
