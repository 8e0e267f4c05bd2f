import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { after, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { generateKeyPair } from '@parley/crypto'
import { testNetwork } from '@parley/testing'
import { NAT_PROTOCOL, ParleyNode, PublicRanges, RECORDS_PROTOCOL, type Role } from '../src/index.ts'
import { bindingRequest, bindingSuccess, checkBindingRequest, parseBindingSuccess, StunServer, stunBinding } from '../src/nat/stun.ts'

const { trustedKeys, credentialFor } = testNetwork()
const nodes: ParleyNode[] = []
let counter = 0

/** A node on loopback TCP; `listen: []` makes one nobody can dial (as behind a firewall). */
async function tcpNode(role: Role, init: { listen?: string[]; ranges?: PublicRanges } = {}): Promise<ParleyNode> {
  const device = generateKeyPair()
  const credential = credentialFor(device, `nat_user_${++counter}`)
  const node = await ParleyNode.create({
    role,
    deviceSeed: device.seed,
    trustedKeys,
    credential: () => credential,
    privateAddresses: true,
    ...(init.ranges === undefined ? {} : { publicRanges: init.ranges }),
    ...(init.listen === undefined ? {} : { listen: init.listen })
  })
  await node.start()
  nodes.push(node)
  return node
}

after(async () => {
  await Promise.all(nodes.map(async (n) => await n.stop()))
})

describe('public ranges', () => {
  it('treats everything but the reserved ranges as the internet', () => {
    const internet = PublicRanges.internet()
    for (const ip of ['8.8.8.8', '1.1.1.1', '2a00:1450::1']) assert.equal(internet.isPublic(ip), true, ip)
    for (const ip of [
      '127.0.0.1',
      '10.1.2.3',
      '172.20.0.1',
      '192.168.1.1',
      '100.64.0.1',
      '198.18.0.1',
      '203.0.113.9',
      '::1',
      'fd00::1',
      'nonsense'
    ])
      assert.equal(internet.isPublic(ip), false, ip)
  })
  it('takes a deployment’s own ranges, and refuses malformed ones', () => {
    const ranges = PublicRanges.of(['10.99.0.0/16'])
    assert.equal(ranges.isPublic('10.99.3.4'), true)
    assert.equal(ranges.isPublic('10.98.3.4'), false)
    assert.equal(ranges.isPublic('8.8.8.8'), false)
    assert.equal(ranges.describe(), '10.99.0.0/16')
    assert.throws(() => PublicRanges.of(['10.99.0.0']), /not an address range/)
    assert.throws(() => PublicRanges.of(['10.99.0.0/33']), /not an address range/)
  })
})

describe('STUN (RFC 5389 Binding)', () => {
  it('encodes and decodes XOR-MAPPED-ADDRESS for IPv4 and IPv6', () => {
    const request = bindingRequest()
    assert.equal(checkBindingRequest(request), undefined)
    const id = request.subarray(8, 20)
    for (const mapped of [
      { address: '10.99.0.7', port: 51234 },
      { address: '2001:db8:0:0:0:0:0:5', port: 3478 }
    ]) {
      const answer = bindingSuccess(request, mapped)
      const parsed = parseBindingSuccess(answer, id)
      assert.equal(parsed?.port, mapped.port)
      assert.equal(parsed?.address.replace(/(^|:)0(?=:|$)/g, '$10'), mapped.address)
    }
    assert.equal(parseBindingSuccess(bindingSuccess(request, { address: '1.2.3.4', port: 1 }), new Uint8Array(12)), undefined)
  })

  it('refuses what is not a Binding request, and never answers it', async () => {
    const request = bindingRequest()
    assert.equal(checkBindingRequest(request.subarray(0, 10)), 'TOO_SHORT')
    assert.equal(checkBindingRequest(new Uint8Array(600)), 'TOO_LONG')
    const badCookie = Uint8Array.from(request)
    badCookie[5] = 0
    assert.equal(checkBindingRequest(badCookie), 'NOT_STUN')
    const badLength = Uint8Array.from(request)
    badLength[3] = 8
    assert.equal(checkBindingRequest(badLength), 'BAD_LENGTH')
    const indication = Uint8Array.from(request)
    indication[1] = 0x11
    assert.equal(checkBindingRequest(indication), 'NOT_A_BINDING_REQUEST')

    const server = new StunServer()
    await server.start('127.0.0.1')
    const socket = createSocket('udp4')
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
    try {
      const [a, b] = server.ports as [number, number]
      const first = await stunBinding(socket, { address: '127.0.0.1', port: a })
      const second = await stunBinding(socket, { address: '127.0.0.1', port: b })
      assert.deepEqual(first, { address: '127.0.0.1', port: socket.address().port })
      assert.deepEqual(second, first)
      socket.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'), a, '127.0.0.1')
      socket.send(badCookie, a, '127.0.0.1')
      await new Promise((r) => setTimeout(r, 100))
      assert.equal(server.stats.answered, 2)
      assert.deepEqual(server.stats.refused, { TOO_SHORT: 1, NOT_STUN: 1 })
    } finally {
      socket.close()
      await server.stop()
    }
  })
})

describe('NAT and firewall determination, relays and direct upgrade (loopback TCP)', () => {
  it('finds a node reachable at a public address public, and the same node private with the internet’s ranges', async () => {
    const supernode = await tcpNode('supernode')
    const open = await tcpNode('client', { ranges: PublicRanges.of(['127.0.0.0/8']) })
    assert.equal((await open.connect(supernode.addresses[0] as string)).ok, true)
    const verdict = await open.nat.determine([peerIdFromString(supernode.peerId)])
    assert.equal(verdict.reachability, 'public')
    assert.equal(verdict.natClass, 'none')
    assert.equal(verdict.answered, 1)
    assert.match(verdict.observed[0] as string, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)
    assert.equal(verdict.mapped.length, 2)

    const lan = await tcpNode('client')
    await lan.connect(supernode.addresses[0] as string)
    assert.equal((await lan.nat.determine([peerIdFromString(supernode.peerId)])).reachability, 'private')
  })

  it('finds a node nobody can dial firewalled; unknown when no supernode answers', async () => {
    const supernode = await tcpNode('supernode')
    const closed = await tcpNode('client', { listen: [], ranges: PublicRanges.of(['127.0.0.0/8']) })
    assert.equal((await closed.nat.determine([])).reachability, 'unknown')
    await closed.connect(supernode.addresses[0] as string)
    const verdict = await closed.nat.determine([peerIdFromString(supernode.peerId)])
    assert.equal(verdict.reachability, 'firewalled')
    assert.deepEqual(verdict.dialable, [])
  })

  it('refuses probes from peers without a credential, malformed probes and too many probes', async () => {
    const supernode = await tcpNode('supernode')
    const client = await tcpNode('client')
    await client.connect(supernode.addresses[0] as string)
    const sn = peerIdFromString(supernode.peerId)
    const ask = async (from: ParleyNode, body: Uint8Array): Promise<string> => {
      const connection = await from.libp2p.dial(multiaddr(supernode.addresses[0] as string))
      const stream = await connection.newStream(NAT_PROTOCOL)
      const lp = lpStream(stream)
      await lp.write(body)
      const answer = JSON.parse(new TextDecoder().decode((await lp.read()).subarray())) as { refused?: { code: string } }
      return answer.refused?.code ?? 'answered'
    }
    const device = generateKeyPair()
    const anonymous = await ParleyNode.create({ role: 'client', deviceSeed: device.seed, trustedKeys, credential: () => undefined })
    await anonymous.start()
    nodes.push(anonymous)
    assert.equal(await ask(anonymous, new TextEncoder().encode('{"addrs":[]}')), 'NO_CREDENTIAL')
    assert.equal(await ask(client, new TextEncoder().encode('{"addrs":"everywhere"}')), 'MALFORMED')
    assert.equal(await ask(client, new TextEncoder().encode('not json')), 'MALFORMED')
    for (let i = 0; i < 4; i++) assert.equal((await client.nat.determine([sn])).answered, 1)
    // The seventh probe in a minute (two malformed ones counted) is refused (RATE_LIMITED): no answer counts.
    assert.equal((await client.nat.determine([sn])).answered, 0)
  })

  it('reaches a firewalled node through its relay reservation, then goes direct by connection reversal', async () => {
    const supernode = await tcpNode('supernode')
    const hidden = await tcpNode('client', { listen: [] })
    await hidden.connect(supernode.addresses[0] as string)
    const manager = (hidden.libp2p as unknown as { components: { transportManager: { listen(a: unknown[]): Promise<void> } } }).components
      .transportManager
    await manager.listen([multiaddr(`${supernode.addresses[0]}/p2p-circuit`)])
    const relayAddr = hidden.addresses.find((a) => a.includes('/p2p-circuit')) as string
    assert.match(relayAddr, /\/p2p\/12D3KooW\w+\/p2p-circuit\/p2p\/12D3KooW/)

    // A peer that cannot listen either: the path stays relayed, and Parley protocols run on it.
    const alsoHidden = await tcpNode('client', { listen: [] })
    const outcome = await alsoHidden.connect(relayAddr)
    assert.equal(outcome.ok, true)
    assert.equal(alsoHidden.pathTo(hidden.peerId), 'relayed')
    assert.equal(await alsoHidden.direct.upgrade(peerIdFromString(hidden.peerId)), 'relayed')

    // A peer that listens: the hidden node dials it back directly, and the relayed connection is closed.
    const reachable = await tcpNode('client')
    assert.equal((await reachable.connect(relayAddr)).ok, true)
    assert.equal(await reachable.direct.upgrade(peerIdFromString(hidden.peerId)), 'direct')
    assert.equal(reachable.pathTo(hidden.peerId), 'direct')
    assert.ok(reachable.direct.stats.direct >= 1)
  })

  it('changes role while running: a promoted node serves the directory and the relay, and stops when it steps back', async () => {
    const node = await tcpNode('client')
    const client = await tcpNode('client')
    await client.connect(node.addresses[0] as string)
    assert.equal(node.libp2p.services.dht.getMode(), 'client')
    await node.setRole('supernode')
    assert.equal(node.role, 'supernode')
    assert.equal(node.libp2p.services.dht.getMode(), 'server')
    const protocols = node.libp2p.getProtocols()
    assert.ok(protocols.includes(RECORDS_PROTOCOL))
    assert.ok(protocols.includes('/libp2p/circuit/relay/0.2.0/hop'))
    assert.ok(protocols.includes('/parley/nat/1.0.0'))
    assert.equal((await client.nat.determine([peerIdFromString(node.peerId)])).answered, 1)
    await node.setRole('client')
    const after = node.libp2p.getProtocols()
    assert.ok(
      !after.includes(RECORDS_PROTOCOL) && !after.includes('/libp2p/circuit/relay/0.2.0/hop') && !after.includes('/parley/nat/1.0.0')
    )
  })
})
