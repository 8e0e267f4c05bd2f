import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { lpStream } from '@libp2p/utils'
import { CredentialVerifier, generateKeyPair, type KeyPair, peerIdOf } from '@parley/crypto'
import { LIMITS } from '@parley/protocol'
import { type TestNetwork, testNetwork } from '@parley/testing'
import fc from 'fast-check'
import {
  decodeItem,
  decodeMailboxAnswer,
  decodeMailboxRequest,
  encodeMailboxAnswer,
  encodeMailboxRequest,
  MAILBOX_PROTOCOL,
  MAILBOX_WAITING_PROTOCOL,
  type MailboxAnswer,
  MailboxError,
  type MailboxInit,
  type MailboxItem,
  type MailboxItemFields,
  type MailboxRequest,
  MailboxStore,
  ParleyNode,
  type Role,
  signItem,
  verifyItem
} from '../src/index.ts'

const HOUR = 3_600_000

/** The refusal code of a call (or 'ok'); anything but a MailboxError fails the test. */
function code(f: () => unknown): string {
  try {
    f()
    return 'ok'
  } catch (err) {
    if (err instanceof MailboxError) return err.code
    throw err
  }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    if (err instanceof MailboxError) return err.code
    throw err
  }
}

/** A user with a device and a credential of the test network. */
interface Person {
  name: string
  device: KeyPair
  credential: string
  peerId: string
}

function person(network: TestNetwork, name: string, device = generateKeyPair()): Person {
  const credential = network.credentialFor(device, name)
  return { name, device, credential, peerId: peerIdOf(device.publicKey) }
}

function fields(from: Person, to: Person, overrides: Partial<MailboxItemFields> = {}): MailboxItemFields {
  const now = Date.now()
  return {
    id: `m${Math.random().toString(36).slice(2, 14)}`,
    to: to.name,
    device: to.peerId,
    credential: from.credential,
    createdAt: now,
    expiresAt: now + HOUR,
    sealed: crypto.getRandomValues(new Uint8Array(200)),
    ...overrides
  }
}

describe('mailbox items: canonical encoding, signature, refusals', () => {
  const network = testNetwork()
  const verifier = new CredentialVerifier(network.trustedKeys)
  const alice = person(network, 'alice_mail')
  const bob = person(network, 'bob_mail')

  it('round-trips, reads the sender from the credential and accepts exactly one encoding', () => {
    const item = signItem(fields(alice, bob), alice.device)
    const again = decodeItem(item.bytes)
    assert.equal(again.from, alice.name)
    assert.equal(again.fromDevice, alice.peerId)
    assert.equal(again.device, bob.peerId)
    assert.deepEqual(again.sealed, item.sealed)
    assert.equal(
      code(() => verifyItem(again, verifier, { recipient: { name: 'BOB_MAIL', device: bob.peerId } })),
      'ok'
    )
    const trailing = new Uint8Array(item.bytes.length + 1)
    trailing.set(item.bytes)
    assert.equal(
      code(() => decodeItem(trailing)),
      'MALFORMED'
    )
    assert.equal(
      code(() => decodeItem(item.bytes.subarray(0, item.bytes.length - 1))),
      'MALFORMED'
    )
    const version = item.bytes.slice()
    version[0] = 2
    assert.equal(
      code(() => decodeItem(version)),
      'MALFORMED'
    )
    assert.equal(
      code(() => decodeItem('not bytes')),
      'MALFORMED'
    )
  })

  it('refuses forged, expired, too long-lived, future, misaddressed and oversized items with their codes', () => {
    const now = Date.now()
    const check = (item: MailboxItem): string =>
      code(() => verifyItem(item, verifier, { recipient: { name: bob.name, device: bob.peerId } }))
    assert.equal(check(signItem(fields(alice, bob), generateKeyPair())), 'BAD_SIGNATURE', 'signed by another key')
    const stranger = testNetwork()
    assert.equal(
      check(signItem(fields(alice, bob, { credential: stranger.credentialFor(alice.device, alice.name) }), alice.device)),
      'BAD_CREDENTIAL'
    )
    const old = network.credentialFor(alice.device, alice.name, { issuedAt: now - 3 * HOUR, expiresAt: now + HOUR })
    assert.equal(
      check(signItem(fields(alice, bob, { credential: old, createdAt: now - 2 * HOUR, expiresAt: now - HOUR }), alice.device)),
      'EXPIRED'
    )
    // Created before its credential was issued: the credential did not vouch for it then.
    assert.equal(check(signItem(fields(alice, bob, { createdAt: now - 2 * HOUR }), alice.device)), 'BAD_CREDENTIAL')
    assert.equal(
      check(signItem(fields(alice, bob, { expiresAt: now + LIMITS.mailbox.itemMaxTtlMs + HOUR }), alice.device)),
      'TOO_LONG_LIVED'
    )
    assert.equal(check(signItem(fields(alice, bob, { createdAt: now + HOUR, expiresAt: now + 2 * HOUR }), alice.device)), 'NOT_YET_VALID')
    const carol = person(network, 'carol_mail')
    assert.equal(check(signItem(fields(alice, carol), alice.device)), 'WRONG_RECIPIENT', 'another device and user')
    assert.equal(check(signItem(fields(alice, bob, { to: carol.name }), alice.device)), 'WRONG_RECIPIENT', 'right device, other user')
    assert.equal(
      code(() => signItem(fields(alice, bob, { sealed: new Uint8Array(LIMITS.mailbox.sealedMaxBytes + 1) }), alice.device)),
      'TOO_LARGE'
    )
    assert.equal(
      code(() => decodeItem(new Uint8Array(LIMITS.mailbox.itemMaxBytes + 1))),
      'TOO_LARGE'
    )
    assert.equal(
      code(() => signItem(fields(alice, bob, { id: 'has:colon' }), alice.device)),
      'MALFORMED'
    )
    assert.equal(
      code(() => signItem(fields(alice, bob, { id: 'x'.repeat(65) }), alice.device)),
      'MALFORMED'
    )
    assert.equal(
      code(() => signItem(fields(alice, bob, { device: 'QmNotAnEd25519Key' }), alice.device)),
      'MALFORMED'
    )
    assert.equal(
      code(() => signItem(fields(alice, bob, { expiresAt: 5, createdAt: 5 }), alice.device)),
      'MALFORMED'
    )
  })

  it('has room for a sealed envelope at its limit, and a page for the largest item', () => {
    const sealOverhead = 1 + 32 + 16
    assert.ok(LIMITS.mailbox.sealedMaxBytes >= LIMITS.messaging.envelopeMaxBytes + sealOverhead)
    const largest = signItem(fields(alice, bob, { sealed: new Uint8Array(LIMITS.mailbox.sealedMaxBytes) }), alice.device)
    assert.ok(largest.bytes.length <= LIMITS.mailbox.itemMaxBytes, `${largest.bytes.length} bytes`)
    assert.ok(LIMITS.mailbox.fetchPageBytes >= LIMITS.mailbox.itemMaxBytes)
    const page = encodeMailboxAnswer({ ok: true, op: 'fetch', items: [largest.bytes, largest.bytes, largest.bytes], next: 9, more: true })
    assert.ok(page.length <= LIMITS.mailbox.messageMaxBytes)
    assert.ok(LIMITS.mailbox.messageMaxBytes >= LIMITS.mailbox.fetchPageBytes + LIMITS.mailbox.fetchPageItems * 4 + 16)
  })

  it('fuzz: 120,000 random and mutated frames — the decoders throw MailboxError and nothing else', () => {
    const started = performance.now()
    const valid = signItem(fields(alice, bob, { sealed: crypto.getRandomValues(new Uint8Array(40)) }), alice.device).bytes
    const tally = { decoded: 0, refused: 0 }
    const attempt = (decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): void => {
      try {
        const value = decode(bytes)
        tally.decoded++
        // What decodes is checked as a supernode would check it: again, only MailboxError.
        if (decode === decodeItem) code(() => verifyItem(value as MailboxItem, verifier))
      } catch (err) {
        if (!(err instanceof MailboxError)) throw new Error(`${decode.name} threw ${String(err)}`, { cause: err })
        tally.refused++
      }
    }
    // Flipped, changed, cut and inserted bytes.
    const mutation = fc.array(
      fc.oneof(
        fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
        fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
        fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.uint8Array({ minLength: 1, maxLength: 8 }) })
      ),
      { minLength: 1, maxLength: 4 }
    )
    const mutate = (
      original: Uint8Array,
      ops: Array<{ kind: string; at: number; value?: number | Uint8Array; bit?: number }>
    ): Uint8Array => {
      let bytes = original.slice()
      for (const op of ops) {
        const at = op.at % (bytes.length + 1)
        if (op.kind === 'set' && at < bytes.length) bytes[at] = op.value as number
        else if (op.kind === 'flip' && at < bytes.length) bytes[at] = (bytes[at] as number) ^ (1 << (op.bit as number))
        else if (op.kind === 'cut') bytes = bytes.slice(0, at)
        else if (op.kind === 'insert') {
          const inserted = op.value as Uint8Array
          const out = new Uint8Array(bytes.length + inserted.length)
          out.set(bytes.subarray(0, at))
          out.set(inserted, at)
          out.set(bytes.subarray(at), at + inserted.length)
          bytes = out
        }
      }
      return bytes
    }
    // 1. Random frames, to every decoder.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), (bytes) => {
        for (const decode of [decodeItem, decodeMailboxRequest, decodeMailboxAnswer]) attempt(decode, bytes)
      }),
      { numRuns: 40_000, seed: 4 }
    )
    // 2. A valid item, mutated.
    fc.assert(
      fc.property(mutation, (ops) => attempt(decodeItem, mutate(valid, ops))),
      { numRuns: 60_000, seed: 5 }
    )
    // 3. Valid requests and answers of every kind, mutated.
    const requests = [
      encodeMailboxRequest({ op: 'put', item: valid }),
      encodeMailboxRequest({ op: 'fetch', after: 77 }),
      encodeMailboxRequest({ op: 'delete', items: [{ fromDevice: alice.peerId, id: 'abc', expiresAt: 99 }] }),
      encodeMailboxRequest({ op: 'places', name: bob.name })
    ]
    const answers = [
      encodeMailboxAnswer({ ok: true, op: 'put', outcome: 'stored' }),
      encodeMailboxAnswer({ ok: true, op: 'fetch', items: [valid, valid.subarray(0, 9)], next: 5, more: true }),
      encodeMailboxAnswer({ ok: true, op: 'delete', deleted: 3 }),
      encodeMailboxAnswer({ ok: true, op: 'places', supernodes: [{ peerId: bob.peerId, addrs: ['/memory/a', '/memory/b'] }] }),
      encodeMailboxAnswer({ ok: false, code: 'QUOTA', message: 'full', retryAfterMs: 0 })
    ]
    fc.assert(
      fc.property(fc.nat(), mutation, (pick, ops) => {
        attempt(decodeMailboxRequest, mutate(requests[pick % requests.length] as Uint8Array, ops))
        attempt(decodeMailboxAnswer, mutate(answers[pick % answers.length] as Uint8Array, ops))
      }),
      { numRuns: 20_000, seed: 6 }
    )
    process.stderr.write(
      `mailbox fuzz: 120000 frames (100000 to the item decoder), ${tally.decoded} decoded, ${tally.refused} refused, in ${Math.round(performance.now() - started)} ms\n`
    )
  })

  it('encodes and decodes every request and answer', () => {
    const requests = [
      { op: 'put', item: new Uint8Array([1, 2, 3]) },
      { op: 'fetch', after: 12345 },
      { op: 'delete', items: [{ fromDevice: alice.peerId, id: 'abc', expiresAt: 99 }] },
      { op: 'places', name: bob.name }
    ] satisfies MailboxRequest[]
    for (const r of requests) assert.deepEqual(decodeMailboxRequest(encodeMailboxRequest(r)), r)
    const answers: MailboxAnswer[] = [
      { ok: true, op: 'put', outcome: 'unchanged' },
      { ok: true, op: 'fetch', items: [new Uint8Array([7])], next: 3, more: false },
      { ok: true, op: 'delete', deleted: 2 },
      { ok: true, op: 'places', supernodes: [{ peerId: bob.peerId, addrs: ['/memory/x'] }] },
      { ok: false, code: 'RATE_LIMITED', message: 'wait ✓', retryAfterMs: 1500 }
    ]
    for (const a of answers) assert.deepEqual(decodeMailboxAnswer(encodeMailboxAnswer(a)), a)
    assert.equal(
      code(() => decodeMailboxRequest(Uint8Array.of(0x03, 0, 0))),
      'MALFORMED',
      'a delete of nothing'
    )
    assert.equal(
      code(() => decodeMailboxRequest(Uint8Array.of(0x09))),
      'MALFORMED',
      'unknown op'
    )
    assert.equal(
      code(() => decodeMailboxAnswer(Uint8Array.of(0xff, 3, 0x46, 0x4f, 0x4f, 0, 0, 0, 0, 0, 0))),
      'MALFORMED',
      'unknown code'
    )
  })
})

describe('the mailbox store (node:sqlite)', () => {
  const network = testNetwork()
  const alice = person(network, 'alice_store')
  const bob = person(network, 'bob_store')
  const carol = person(network, 'carol_store')
  let dir = ''
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-mailbox-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('stores, refuses replays, deletes with tombstones, and keeps all of it across a restart', async () => {
    const path = join(dir, 'mailbox.sqlite')
    let store = new MailboxStore(path)
    const first = signItem(fields(alice, bob, { id: 'first' }), alice.device)
    const second = signItem(fields(alice, bob, { id: 'second' }), alice.device)
    assert.equal(await store.put(first), 'stored')
    assert.equal(await store.put(first), 'unchanged', 'the very same item again: a retry, not a replay')
    assert.equal(await codeOf(store.put(signItem(fields(alice, bob, { id: 'first' }), alice.device))), 'REPLAYED', 'same id, other bytes')
    assert.equal(await store.put(second), 'stored')
    assert.equal(store.fetch(carol.peerId, 0).items.length, 0, 'another device sees nothing')
    await store.close()
    await store.close()
    store = new MailboxStore(path)
    assert.equal(store.size, 2, 'acknowledged items survive a restart')
    const page = store.fetch(bob.peerId, 0)
    assert.deepEqual(
      page.items.map((b) => decodeItem(b).id),
      ['first', 'second']
    )
    assert.equal(store.delete(bob.peerId, [{ fromDevice: alice.peerId, id: 'first', expiresAt: first.expiresAt }]), 1)
    // A tombstone for an item this supernode never held: a late deposit of it is refused too.
    const late = signItem(fields(alice, bob, { id: 'late' }), alice.device)
    assert.equal(store.delete(bob.peerId, [{ fromDevice: alice.peerId, id: 'late', expiresAt: late.expiresAt }]), 0)
    await store.close()
    store = new MailboxStore(path)
    assert.equal(await codeOf(store.put(first)), 'REPLAYED', 'deleted, then deposited again')
    assert.equal(await codeOf(store.put(late)), 'REPLAYED')
    assert.deepEqual(
      store.fetch(bob.peerId, 0).items.map((b) => decodeItem(b).id),
      ['second']
    )
    // Tombstones go when the item would have expired.
    assert.deepEqual(store.sweep(Date.now() + 2 * HOUR), { items: 1, tombstones: 2 })
    assert.equal(store.size, 0)
    await store.close()
  })

  it('group-commits concurrent puts and applies quotas in order within a batch', async () => {
    const store = new MailboxStore(':memory:', { perRecipientItems: 5, perSenderItems: 8, supernodeItems: 12 })
    const toBob = await Promise.allSettled(
      Array.from({ length: 10 }, async (_, i) => await store.put(signItem(fields(alice, bob, { id: `b${i}` }), alice.device)))
    )
    assert.deepEqual(
      toBob.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as MailboxError).code)),
      [...Array(5).fill('stored'), ...Array(5).fill('QUOTA')]
    )
    const toCarol = await Promise.allSettled(
      Array.from({ length: 4 }, async (_, i) => await store.put(signItem(fields(alice, carol, { id: `c${i}` }), alice.device)))
    )
    assert.deepEqual(
      toCarol.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as MailboxError).code)),
      ['stored', 'stored', 'stored', 'QUOTA'],
      'the sender quota in all (8)'
    )
    for (let i = 0; i < 4; i++) assert.equal(await store.put(signItem(fields(bob, carol, { id: `x${i}` }), bob.device)), 'stored')
    assert.equal(await codeOf(store.put(signItem(fields(bob, alice, { id: 'full' }), bob.device))), 'FULL')
    // Expired items make room.
    assert.equal(await store.put(signItem(fields(bob, alice, { id: 'full' }), bob.device), Date.now() + 2 * HOUR), 'stored')
    assert.equal(store.size, 1)
    await store.close()
    assert.equal(await codeOf(store.put(signItem(fields(bob, alice), bob.device))), 'UNAVAILABLE')
  })

  it('pages by items and bytes, and always moves on', async () => {
    const store = new MailboxStore(':memory:', { fetchPageItems: 4, fetchPageBytes: 100_000 })
    for (let i = 0; i < 10; i++)
      await store.put(signItem(fields(alice, bob, { id: `p${i}`, sealed: new Uint8Array(i === 5 ? 150_000 : 100) }), alice.device))
    const pages: string[][] = []
    let after = 0
    for (;;) {
      const page = store.fetch(bob.peerId, after)
      pages.push(page.items.map((b) => decodeItem(b).id))
      if (!page.more) break
      after = page.next
    }
    assert.deepEqual(pages, [['p0', 'p1', 'p2', 'p3'], ['p4'], ['p5'], ['p6', 'p7', 'p8', 'p9']])
    await store.close()
  })
})

// The overlay: memory-transport nodes, as in records.test.ts.

const running: ParleyNode[] = []

async function startNode(network: TestNetwork, role: Role, p: Person, mailbox?: Omit<MailboxInit, 'serve'>): Promise<ParleyNode> {
  const node = await ParleyNode.create({
    role,
    deviceSeed: p.device.seed,
    trustedKeys: network.trustedKeys,
    credential: () => p.credential,
    transport: 'memory',
    privateAddresses: true,
    ...(mailbox === undefined ? {} : { mailbox })
  })
  await node.start()
  running.push(node)
  return node
}

async function link(a: ParleyNode, b: ParleyNode): Promise<void> {
  const outcome = await a.connect(b.addresses[0] as string)
  assert.ok(outcome.ok, 'hello')
}

/** One request on a new stream, as a (possibly misbehaving) peer would send it. */
async function raw(from: ParleyNode, to: ParleyNode, frame: Uint8Array): Promise<MailboxAnswer> {
  const connection = await from.libp2p.dial(to.libp2p.peerId)
  await from.hello.greet(connection)
  const stream = await connection.newStream(MAILBOX_PROTOCOL)
  const lp = lpStream(stream, { maxDataLength: LIMITS.mailbox.messageMaxBytes })
  void lp.write(frame).catch(() => {})
  const answer = decodeMailboxAnswer((await lp.read({ signal: AbortSignal.timeout(5_000) })).subarray())
  await stream.close().catch(() => {})
  return answer
}

after(async () => {
  await Promise.all(running.map(async (n) => await n.stop()))
})

describe('the mailbox on the overlay (memory transport)', () => {
  const network = testNetwork()
  const supernodes: ParleyNode[] = []
  const people = {
    alice: person(network, 'alice_overlay'),
    bob: person(network, 'bob_overlay'),
    bob2: undefined as unknown as Person,
    carol: person(network, 'carol_overlay'),
    mallory: person(network, 'mallory_overlay')
  }
  people.bob2 = person(network, 'bob_overlay')
  const nodes = {} as Record<keyof typeof people, ParleyNode>

  before(async () => {
    for (let i = 0; i < 6; i++) supernodes.push(await startNode(network, 'supernode', person(network, `super_${i}_mail`)))
    for (const a of supernodes) for (const b of supernodes) if (a !== b) await link(a, b)
    // Each client hangs off 3 of the 6 supernodes, not the same ones.
    let i = 0
    for (const key of Object.keys(people) as Array<keyof typeof people>) {
      nodes[key] = await startNode(network, 'client', people[key])
      for (let k = 0; k < 3; k++) await link(nodes[key], supernodes[(i + k) % supernodes.length] as ParleyNode)
      i += 2
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  })

  /** The three supernodes closest to a user, by the records' own metric over all six. */
  const replicasOf = (name: string): string[] =>
    (supernodes[0] as ParleyNode).records
      .nearestSupernodes(
        name,
        supernodes.map((s) => s.libp2p.peerId)
      )
      .map((p) => p.toString())
      .sort()
  const held = (id: string): string[] =>
    supernodes
      .filter((s) => s.mailbox.store?.fetch(people.bob.peerId, 0).items.some((b) => decodeItem(b).id === id) === true)
      .map((s) => s.peerId)
      .sort()

  let first: MailboxItem

  it('deposits an item on the 3 supernodes closest to the recipient', async () => {
    const started = performance.now()
    first = nodes.alice.mailbox.item({ id: 'hello-1', to: people.bob.name, device: people.bob.peerId, sealed: new Uint8Array([1, 2, 3]) })
    const result = await nodes.alice.mailbox.deposit(first)
    assert.equal(result.stored, 3, JSON.stringify(result.refused))
    assert.deepEqual(result.supernodes.sort(), replicasOf(people.bob.name))
    assert.deepEqual(held('hello-1'), replicasOf(people.bob.name))
    process.stderr.write(`mailbox: deposit on 3 replicas in ${Math.round(performance.now() - started)} ms\n`)
    // A retry of the very same item is harmless.
    assert.equal((await nodes.alice.mailbox.deposit(first)).stored, 3)
  })

  it('collects each item once although three supernodes hold it', async () => {
    const started = performance.now()
    const second = nodes.carol.mailbox.item({ id: 'hello-2', to: people.bob.name, device: people.bob.peerId, sealed: new Uint8Array([4]) })
    assert.equal((await nodes.carol.mailbox.deposit(second)).stored, 3)
    const collected = await nodes.bob.mailbox.collect(people.bob.name)
    assert.equal(collected.answered, 3)
    assert.deepEqual(collected.dropped, [])
    assert.deepEqual(
      collected.items.map((i) => [i.id, i.from, i.fromDevice, [...i.sealed]]),
      [
        ['hello-1', people.alice.name, people.alice.peerId, [1, 2, 3]],
        ['hello-2', people.carol.name, people.carol.peerId, [4]]
      ]
    )
    process.stderr.write(`mailbox: collect from 3 replicas in ${Math.round(performance.now() - started)} ms\n`)
  })

  it('tells the recipient device, when it is connected to a replica, at once that an item waits; a burst in few words', async () => {
    const replicas = supernodes.filter((s) => replicasOf(people.bob.name).includes(s.peerId))
    for (const s of replicas) await link(nodes.bob, s)
    const listen = (node: ParleyNode): { from: string[]; off: () => void } => {
      const from: string[] = []
      const on = (e: Event): void => {
        from.push((e as CustomEvent<string>).detail)
      }
      node.mailbox.addEventListener('waiting', on)
      return { from, off: () => node.mailbox.removeEventListener('waiting', on) }
    }
    const bob = listen(nodes.bob)
    const bob2 = listen(nodes.bob2)
    const item = (id: string) =>
      nodes.alice.mailbox.item({ id, to: people.bob.name, device: people.bob.peerId, sealed: new Uint8Array([7]) })
    const started = performance.now()
    assert.equal((await nodes.alice.mailbox.deposit(item('word-1'))).stored, 3)
    while (bob.from.length < 3 && performance.now() - started < 5_000) await new Promise((r) => setTimeout(r, 10))
    const ms = Math.round(performance.now() - started)
    assert.deepEqual([...bob.from].sort(), replicasOf(people.bob.name), 'one word from each replica')
    process.stderr.write(`mailbox: the recipient told by every replica ${ms} ms after the deposit began\n`)
    // Eight more at once: at most one more word per replica at the end of its gap, not one per item.
    for (let i = 0; i < 8; i++) assert.equal((await nodes.alice.mailbox.deposit(item(`word-burst-${i}`))).stored, 3)
    await new Promise((r) => setTimeout(r, 2 * LIMITS.mailbox.waitingGapMs + 500))
    for (const id of replicasOf(people.bob.name)) {
      const words = bob.from.filter((f) => f === id).length
      assert.ok(words >= 2 && words <= 3, `${words} words from one replica for 9 items`)
    }
    assert.deepEqual(bob2.from, [], "bob's other device is not told of items for this one")
    // A malformed word is refused on its stream, and nobody is told.
    const before = bob.from.length
    const connection = await nodes.mallory.libp2p.dial(nodes.bob.libp2p.peerId)
    await nodes.mallory.hello.greet(connection)
    const stream = await connection.newStream(MAILBOX_WAITING_PROTOCOL)
    await lpStream(stream, { maxDataLength: LIMITS.mailbox.waitingMaxBytes })
      .write(new TextEncoder().encode('{"op":"collect-everything"}'))
      .catch(() => {})
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(bob.from.length, before)
    bob.off()
    bob2.off()
    // Collected and removed, so that the next tests find only their own items.
    const collected = await nodes.bob.mailbox.collect(people.bob.name)
    assert.equal(collected.items.filter((i) => i.id.startsWith('word-')).length, 9)
    await nodes.bob.mailbox.remove(collected.items.filter((i) => i.id.startsWith('word-')))
  })

  it('gives nothing to a device that is not the recipient', async () => {
    assert.deepEqual((await nodes.bob2.mailbox.collect(people.bob.name)).items, [], "bob's other device")
    const mallory = await nodes.mallory.mailbox.collect(people.bob.name)
    assert.deepEqual(mallory.items, [])
    assert.equal(mallory.answered, 3)
    const replica = supernodes.find((s) => s.peerId === replicasOf(people.bob.name)[0]) as ParleyNode
    const answer = await raw(nodes.mallory, replica, encodeMailboxRequest({ op: 'fetch', after: 0 }))
    assert.deepEqual(answer, { ok: true, op: 'fetch', items: [], next: 0, more: false })
  })

  it('refuses forged, misdeposited, expired and oversized items with their codes', async () => {
    const { alice, bob } = people
    const codes = async (node: ParleyNode, item: MailboxItem): Promise<string[]> =>
      (await node.mailbox.deposit(item)).refused.map((r) => r.code)
    assert.deepEqual(await codes(nodes.alice, signItem(fields(alice, bob), generateKeyPair())), [
      'BAD_SIGNATURE',
      'BAD_SIGNATURE',
      'BAD_SIGNATURE'
    ])
    // Mallory re-deposits an item of Alice's: only its sender device may.
    assert.deepEqual(await codes(nodes.mallory, signItem(fields(alice, bob), alice.device)), ['NOT_SENDER', 'NOT_SENDER', 'NOT_SENDER'])
    const now = Date.now()
    const old = network.credentialFor(alice.device, alice.name, { issuedAt: now - 3 * HOUR, expiresAt: now + HOUR })
    const expired = signItem(fields(alice, bob, { credential: old, createdAt: now - 2 * HOUR, expiresAt: now - HOUR }), alice.device)
    assert.deepEqual(await codes(nodes.alice, expired), ['EXPIRED', 'EXPIRED', 'EXPIRED'])
    const replica = supernodes.find((s) => s.peerId === replicasOf(bob.name)[0]) as ParleyNode
    const huge = new Uint8Array(LIMITS.mailbox.itemMaxBytes + 1)
    huge[0] = 1
    const tooLarge = await raw(nodes.alice, replica, encodeMailboxRequest({ op: 'put', item: huge }))
    assert.equal(tooLarge.ok ? 'ok' : tooLarge.code, 'TOO_LARGE')
    const overFrame = await raw(nodes.alice, replica, new Uint8Array(LIMITS.mailbox.messageMaxBytes + 10))
    assert.equal(overFrame.ok ? 'ok' : overFrame.code, 'TOO_LARGE')
  })

  it('drops an item a supernode hands over for another user, and never trusts the supernode', async () => {
    const { alice, bob, carol } = people
    const replica = supernodes.find((s) => s.peerId === replicasOf(bob.name)[0]) as ParleyNode
    // For Carol by name but for Bob's device: a supernode takes it (it cannot tell), Bob's device refuses it.
    const misaddressed = signItem(fields(alice, bob, { id: 'misaddressed', to: carol.name }), alice.device)
    const put = await raw(nodes.alice, replica, encodeMailboxRequest({ op: 'put', item: misaddressed.bytes }))
    assert.deepEqual(put, { ok: true, op: 'put', outcome: 'stored' })
    const collected = await nodes.bob.mailbox.collect(bob.name)
    assert.deepEqual(
      collected.dropped.map((d) => [d.supernode, d.code]),
      [[replica.peerId, 'WRONG_RECIPIENT']]
    )
    assert.ok(!collected.items.some((i) => i.id === 'misaddressed'))
    assert.equal((await nodes.bob.mailbox.remove([misaddressed])).deleted, 1)
  })

  it('answers malformed frames with a refusal and goes on serving on the same connection', async () => {
    const replica = supernodes[1] as ParleyNode
    await raw(nodes.mallory, replica, encodeMailboxRequest({ op: 'fetch', after: 0 }))
    const connection = nodes.mallory.libp2p.getConnections(replica.libp2p.peerId)[0]
    const seen = new Set<string>()
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        const answer = await raw(nodes.mallory, replica, bytes)
        seen.add(answer.ok ? `ok:${answer.op}` : answer.code)
      }),
      { numRuns: 300, seed: 6 }
    )
    assert.ok(seen.has('MALFORMED'), [...seen].join())
    assert.equal(nodes.mallory.libp2p.getConnections(replica.libp2p.peerId)[0], connection, 'the same connection')
    assert.equal(connection?.status, 'open')
    const fetched = await raw(nodes.mallory, replica, encodeMailboxRequest({ op: 'fetch', after: 0 }))
    assert.equal(fetched.ok && fetched.op, 'fetch')
  })

  it('answers only peers that said hello', async () => {
    const stranger = await ParleyNode.create({
      role: 'client',
      deviceSeed: generateKeyPair().seed,
      trustedKeys: network.trustedKeys,
      credential: () => undefined,
      transport: 'memory',
      privateAddresses: true
    })
    await stranger.start()
    running.push(stranger)
    const replica = supernodes[0] as ParleyNode
    const stream = await stranger.libp2p.dialProtocol(replica.libp2p.getMultiaddrs()[0]!, MAILBOX_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(encodeMailboxRequest({ op: 'fetch', after: 0 }))
    const answer = decodeMailboxAnswer((await lp.read()).subarray())
    assert.equal(answer.ok ? 'ok' : answer.code, 'NO_CREDENTIAL')
  })

  it('removes items everywhere, and a deposit of the same item again is refused as a replay', async () => {
    const before = await nodes.bob.mailbox.collect(people.bob.name)
    assert.equal(before.items.length, 2)
    const removed = await nodes.bob.mailbox.remove(before.items)
    assert.equal(removed.deleted, 6, 'two items on three supernodes')
    assert.deepEqual(removed.failed, [])
    assert.deepEqual(held('hello-1'), [])
    assert.deepEqual((await nodes.bob.mailbox.collect(people.bob.name)).items, [])
    const again = await nodes.alice.mailbox.deposit(first)
    assert.equal(again.stored, 0)
    assert.deepEqual(
      again.refused.map((r) => r.code),
      ['REPLAYED', 'REPLAYED', 'REPLAYED']
    )
  })

  it('serves the mailbox in the supernode role only, switching at runtime', async () => {
    const node = nodes.carol
    assert.equal(node.mailbox.serving, false)
    await node.setRole('supernode')
    assert.equal(node.mailbox.serving, true)
    assert.ok(node.libp2p.getProtocols().includes(MAILBOX_PROTOCOL))
    await node.setRole('client')
    assert.equal(node.mailbox.serving, false)
    assert.ok(!node.libp2p.getProtocols().includes(MAILBOX_PROTOCOL))
  })

  it('collects everything while one of the three replicas is down', async () => {
    const item = nodes.alice.mailbox.item({ id: 'while-down', to: people.bob.name, device: people.bob.peerId, sealed: new Uint8Array([9]) })
    assert.equal((await nodes.alice.mailbox.deposit(item)).stored, 3)
    const replicas = replicasOf(people.bob.name)
    const down = supernodes.find((s) => s.peerId === replicas[0]) as ParleyNode
    await down.stop()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const started = performance.now()
    const collected = await nodes.bob.mailbox.collect(people.bob.name)
    assert.deepEqual(
      collected.items.map((i) => i.id),
      ['while-down']
    )
    assert.ok(collected.answered >= 2)
    process.stderr.write(
      `mailbox: collect with a replica down in ${Math.round(performance.now() - started)} ms (asked ${collected.asked}, answered ${collected.answered})\n`
    )
  })
})

/** Supernodes that know each other, as seed supernodes would after bootstrap. */
async function startSupernodes(
  network: TestNetwork,
  keepers: Person[],
  mailbox: (i: number) => Omit<MailboxInit, 'serve'>
): Promise<ParleyNode[]> {
  const started: ParleyNode[] = []
  for (const [i, keeper] of keepers.entries()) started.push(await startNode(network, 'supernode', keeper, mailbox(i)))
  for (const a of started) for (const b of started) if (a !== b) await link(a, b)
  return started
}

async function stopAll(nodes: ParleyNode[]): Promise<void> {
  for (const n of nodes) {
    await n.stop()
    running.splice(running.indexOf(n), 1)
  }
}

describe('mailbox quotas and rates (three supernodes with low limits)', () => {
  const network = testNetwork()
  const alice = person(network, 'alice_quota')
  const bob = person(network, 'bob_quota')
  const carol = person(network, 'carol_quota')
  let supernodes: ParleyNode[] = []
  const nodes = {} as Record<'alice' | 'bob' | 'carol', ParleyNode>

  before(async () => {
    const limits = { perRecipientItems: 3, perSenderItems: 5, putBurst: 8, putsPerMinute: 1, requestBurst: 3, requestsPerMinute: 1 }
    supernodes = await startSupernodes(
      network,
      [0, 1, 2].map((i) => person(network, `super_quota_${i}`)),
      () => ({ limits })
    )
    for (const [key, p] of [
      ['alice', alice],
      ['bob', bob],
      ['carol', carol]
    ] as const) {
      nodes[key] = await startNode(network, 'client', p)
      for (const s of supernodes) await link(nodes[key], s)
    }
    await new Promise((resolve) => setTimeout(resolve, 300))
  })

  /** The one outcome of a deposit on all three (they apply the same limits). */
  const outcome = (result: { stored: number; refused: Array<{ code: string }> }): string =>
    result.stored === 3 ? 'stored' : [...new Set(result.refused.map((r) => r.code))].join('|')

  it('refuses past the per-recipient and per-sender quotas, then past the sender rate', async () => {
    const outcomes: string[] = []
    const send = async (to: Person): Promise<void> => {
      const item = nodes.alice.mailbox.item({ id: `q${outcomes.length}`, to: to.name, device: to.peerId, sealed: new Uint8Array(10) })
      outcomes.push(outcome(await nodes.alice.mailbox.deposit(item)))
    }
    for (let i = 0; i < 4; i++) await send(bob)
    for (let i = 0; i < 4; i++) await send(carol)
    await send(bob)
    assert.deepEqual(outcomes, ['stored', 'stored', 'stored', 'QUOTA', 'stored', 'stored', 'QUOTA', 'QUOTA', 'RATE_LIMITED'])
    const limited = await nodes.alice.mailbox.deposit(
      nodes.alice.mailbox.item({ id: 'late', to: bob.name, device: bob.peerId, sealed: new Uint8Array(1) })
    )
    assert.ok((limited.refused[0]?.retryAfterMs ?? 0) > 2_000, 'a wait of about a minute')
    // Another sender has its own share.
    const fromCarol = await nodes.carol.mailbox.deposit(
      nodes.carol.mailbox.item({ id: 'c1', to: bob.name, device: bob.peerId, sealed: new Uint8Array(1) })
    )
    assert.equal(outcome(fromCarol), 'stored')
  })

  it('rate-limits fetches per device', async () => {
    const failures: string[] = []
    for (let i = 0; i < 4; i++) {
      const collected = await nodes.bob.mailbox.collect(bob.name)
      failures.push(...collected.failed.map((f) => f.code))
      if (i === 0) assert.equal(collected.items.length, 4)
    }
    assert.ok(failures.includes('RATE_LIMITED'), failures.join())
  })
})

describe('supernodes restarted on the same SQLite files', () => {
  const network = testNetwork()
  const alice = person(network, 'alice_restart')
  const bob = person(network, 'bob_restart')
  const keepers = [0, 1, 2].map((i) => person(network, `super_restart_${i}`))
  let dir = ''

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-mailbox-node-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('still have every item they acknowledged, and their tombstones', async () => {
    const started = performance.now()
    const restart = async (): Promise<ParleyNode[]> =>
      await startSupernodes(network, keepers, (i) => ({ path: join(dir, `mailbox-${i}.sqlite`) }))
    let supernodes = await restart()
    const sender = await startNode(network, 'client', alice)
    for (const s of supernodes) await link(sender, s)
    const items = Array.from({ length: 5 }, (_, i) =>
      sender.mailbox.item({ id: `r${i}`, to: bob.name, device: bob.peerId, sealed: new Uint8Array([i]) })
    )
    for (const item of items) assert.equal((await sender.mailbox.deposit(item)).stored, 3)
    await stopAll(supernodes)
    supernodes = await restart()
    assert.deepEqual(
      supernodes.map((s) => s.mailbox.store?.size),
      [5, 5, 5]
    )
    const recipient = await startNode(network, 'client', bob)
    for (const s of supernodes) await link(recipient, s)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const collected = await recipient.mailbox.collect(bob.name)
    assert.equal(collected.answered, 3)
    assert.deepEqual(
      collected.items.map((i) => i.id),
      ['r0', 'r1', 'r2', 'r3', 'r4']
    )
    assert.equal((await recipient.mailbox.remove(collected.items)).deleted, 15)
    await stopAll(supernodes)
    supernodes = await restart()
    for (const s of supernodes) await link(sender, s)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const again = await sender.mailbox.deposit(items[0] as MailboxItem)
    assert.deepEqual(
      again.refused.map((r) => r.code),
      ['REPLAYED', 'REPLAYED', 'REPLAYED']
    )
    process.stderr.write(`mailbox: restart test (3 supernodes, twice) in ${Math.round(performance.now() - started)} ms\n`)
  })
})
