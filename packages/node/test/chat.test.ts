import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { generateKeyPair, type KeyPair } from '@parley/crypto'
import { directConversation, encodeEnvelope, signEnvelope } from '@parley/messaging'
import { LIMITS } from '@parley/protocol'
import { testNetwork } from '@parley/testing'
import fc from 'fast-check'
import { CHAT_PROTOCOL, ChatService, ChatStore, type ParleyNode, PresenceService } from '../src/index.ts'
import { befriend, startLoopbackNode } from './support.ts'

const network = testNetwork()

interface Peer {
  name: string
  device: KeyPair
  node: ParleyNode
  store: ChatStore
  chat: ChatService
  presence: PresenceService
  events: Array<{ type: string; data: Record<string, unknown> }>
  stop(): Promise<void>
}

const peers: Peer[] = []
let seed: ParleyNode

async function startPeer(name: string, device: KeyPair = generateKeyPair(), store = new ChatStore(':memory:')): Promise<Peer> {
  const node = await startLoopbackNode(network, name, { seed, device })
  const events: Peer['events'] = []
  const emit = (type: string, data: object): void => {
    events.push({ type, data: data as Record<string, unknown> })
  }
  const chat = new ChatService({ node, store, device, me: () => name, emit })
  const presence = new PresenceService({ node, store, chat, me: () => name, emit })
  await chat.start()
  await presence.start()
  const peer: Peer = {
    name,
    device,
    node,
    store,
    chat,
    presence,
    events,
    async stop() {
      await presence.stop()
      await chat.stop()
      await node.stop()
    }
  }
  peers.push(peer)
  return peer
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<number> {
  const started = performance.now()
  while (!check()) {
    if (performance.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return performance.now() - started
}

before(async () => {
  seed = await startLoopbackNode(network, 'chat_supernode')
})

after(async () => {
  for (const p of peers) await p.stop().catch(() => {})
  await seed.stop()
})

describe('contacts, presence and direct messages between two online devices', () => {
  let alice: Peer
  let bob: Peer

  before(async () => {
    alice = await startPeer('alice_chat')
    bob = await startPeer('bob_chat')
  })

  it('asks, and becomes a contact on both sides when accepted', async () => {
    await alice.chat.addContact('bob_chat', 'hello from alice')
    await until('bob sees the request', () => bob.chat.contacts().some((c) => c.name === 'alice_chat' && c.state === 'incoming'))
    assert.equal(bob.chat.contacts()[0]?.message, 'hello from alice')
    assert.equal(alice.chat.contacts()[0]?.state, 'requested')
    await bob.chat.acceptContact('alice_chat')
    await until('alice sees the acceptance', () => alice.chat.isContact('bob_chat'))
    assert.equal(bob.chat.isContact('alice_chat'), true)
  })

  it('delivers a message directly, acknowledged, with shortcodes turned into emoji', async () => {
    const sent = await alice.chat.message('bob_chat', 'hi bob :)')
    assert.equal(sent.state, 'delivered')
    const [line] = bob.chat.history('alice_chat', 10)
    assert.equal(line?.id, sent.id)
    assert.equal(line?.text, 'hi bob 🙂')
    assert.equal(line?.from, 'alice_chat')
    assert.equal(alice.chat.history('bob_chat', 10)[0]?.state, 'delivered')
    assert.ok(bob.events.some((e) => e.type === 'message.received' && e.data.id === sent.id))
  })

  it('keeps one order on both sides, applies edits and deletes, and finds lines by full-text search', async () => {
    const one = await alice.chat.message('bob_chat', 'first of three')
    await bob.chat.message('alice_chat', 'second, from bob')
    const three = await alice.chat.message('bob_chat', 'third and typo')
    await alice.chat.edit('bob_chat', three.id, 'third, fixed')
    await alice.chat.delete('bob_chat', one.id)
    await until('bob has the edit', () => bob.chat.history('alice_chat', 10).some((m) => m.id === three.id && m.edited))
    const texts = (p: Peer, other: string) => p.chat.history(other, 10).map((m) => (m.deleted ? '(deleted)' : m.text))
    assert.deepEqual(texts(alice, 'bob_chat'), texts(bob, 'alice_chat'))
    assert.deepEqual(texts(bob, 'alice_chat').slice(-3), ['(deleted)', 'second, from bob', 'third, fixed'])
    assert.deepEqual(
      bob.chat.search('fixed', 10).map((m) => m.id),
      [three.id]
    )
    assert.deepEqual(bob.chat.search('typo', 10), [])
    await assert.rejects(bob.chat.edit('alice_chat', three.id, 'not mine'), /only your own messages/)
  })

  it('pushes presence and mood to the contact within a second', async () => {
    await alice.presence.set('away', 'at lunch')
    const ms = await until('bob sees alice away', () => bob.presence.of('alice_chat').presence === 'away', 1_000)
    assert.equal(bob.presence.of('alice_chat').mood, 'at lunch')
    await alice.presence.set('invisible')
    await until('invisible looks offline', () => bob.presence.of('alice_chat').presence === 'offline', 1_000)
    // Invisible still receives.
    const sent = await bob.chat.message('alice_chat', 'are you there?')
    assert.equal(sent.state, 'delivered')
    await alice.presence.set('online')
    await until('bob sees alice online', () => bob.presence.of('alice_chat').presence === 'online', 1_000)
    assert.ok(ms < 1_000)
  })

  it('tells the sender when a line was read, and shows typing without keeping it', async () => {
    const sent = await alice.chat.message('bob_chat', 'read me')
    assert.equal(await bob.chat.markRead('alice_chat', [sent.id]), 1)
    await until('alice sees it read', () => alice.chat.history('bob_chat', 50).find((m) => m.id === sent.id)?.state === 'read')
    const lines = alice.chat.history('bob_chat', 50).length
    await bob.chat.typing('alice_chat', true)
    await until('alice sees bob typing', () =>
      alice.events.some((e) => e.type === 'message.typing' && e.data.from === 'bob_chat' && e.data.active === true)
    )
    assert.equal(alice.chat.history('bob_chat', 50).length, lines)
  })

  it('refuses oversized and empty messages with a clear error', async () => {
    await assert.rejects(alice.chat.message('bob_chat', 'x'.repeat(70_000)), /at most 65536 bytes/)
    await assert.rejects(alice.chat.message('bob_chat', '   '), /empty/)
  })
})

describe('a message to a device that is offline arrives exactly once, and the sender learns it was delivered', () => {
  it('survives the recipient being away, and is delivered once it is back', async () => {
    const carol = await startPeer('carol_chat')
    const daveDevice = generateKeyPair()
    const daveStore = new ChatStore(':memory:')
    let dave = await startPeer('dave_chat', daveDevice, daveStore)
    await carol.chat.addContact('dave_chat')
    await until('dave sees the request', () => dave.chat.contacts().length === 1)
    await dave.chat.acceptContact('carol_chat')
    await dave.stop()
    peers.splice(peers.indexOf(dave), 1)
    const sent = await carol.chat.message('dave_chat', 'while you were out')
    assert.notEqual(sent.state, 'delivered')
    assert.equal(sent.state, 'stored')
    dave = await startPeer('dave_chat', daveDevice, daveStore)
    // What a daemon does when it starts: look in its mailboxes; the sender's outbox may try again meanwhile.
    await Promise.all([dave.chat.collect(), carol.chat.drain()])
    await until('dave has it', () => dave.chat.history('carol_chat', 10).some((m) => m.id === sent.id), 10_000)
    await carol.chat.drain()
    assert.equal(await dave.chat.collect(), 0)
    assert.equal(dave.chat.history('carol_chat', 10).filter((m) => m.id === sent.id).length, 1)
    await until('carol sees delivered', () => carol.chat.history('dave_chat', 10).find((m) => m.id === sent.id)?.state === 'delivered')
    assert.equal(carol.store.outboxSize(), 0)
  })
})

describe('offline delivery through the mailboxes', () => {
  it('stores a message sealed for a recipient that is offline, and the recipient gets it when back, with the sender gone', async () => {
    const frank = await startPeer('frank_chat')
    const ginaDevice = generateKeyPair()
    const ginaStore = new ChatStore(':memory:')
    let gina = await startPeer('gina_chat', ginaDevice, ginaStore)
    await frank.chat.addContact('gina_chat')
    await until('gina sees the request', () => gina.chat.contacts().length === 1)
    await gina.chat.acceptContact('frank_chat')
    await until('frank sees the acceptance', () => frank.chat.isContact('gina_chat'))
    await gina.stop()
    peers.splice(peers.indexOf(gina), 1)

    const sent = await frank.chat.message('gina_chat', 'left in your mailbox')
    assert.equal(sent.state, 'stored')
    // The supernode holds it sealed: the text appears nowhere in what it keeps.
    const page = seed.mailbox.store?.fetch(gina.node.peerId, 0)
    assert.equal(page?.items.length, 1)
    assert.ok(
      !Buffer.from(page?.items[0] ?? [])
        .toString('latin1')
        .includes('left in your mailbox')
    )
    assert.equal(frank.store.outboxSize(), 0)
    // The sender goes away; the recipient comes back and fetches.
    await frank.stop()
    peers.splice(peers.indexOf(frank), 1)
    gina = await startPeer('gina_chat', ginaDevice, ginaStore)
    const started = performance.now()
    assert.equal(await gina.chat.collect(), 1)
    const fetchedMs = performance.now() - started
    const [line] = gina.chat.history('frank_chat', 10)
    assert.equal(line?.id, sent.id)
    assert.equal(line?.text, 'left in your mailbox')
    assert.ok(fetchedMs < 2_000, `fetched in ${fetchedMs} ms`)
    // Fetched copies are deleted: nothing more comes.
    assert.equal(await gina.chat.collect(), 0)
  })
})

describe('a line that cannot go directly to a device that is online', () => {
  it('reaches it through its mailbox at once: the supernode says that something waits', async () => {
    const hank = await startPeer('hank_chat')
    const ida = await startPeer('ida_chat')
    await befriend(hank, ida)
    // Ida's device is online and linked to the supernode, but takes no chat stream: the direct delivery fails.
    await ida.node.libp2p.unhandle(CHAT_PROTOCOL)
    const sent = await hank.chat.message('ida_chat', 'through the mailbox')
    assert.equal(sent.state, 'stored')
    // Without the word it would wait for Ida's next round (LIMITS.chat.collectEveryMs, 30 s).
    const ms = await until('ida has the line', () => ida.chat.history('hank_chat', 10).some((m) => m.id === sent.id), 5_000)
    process.stderr.write(`chat: a line left in the mailbox of an online device arrived in ${Math.round(ms)} ms\n`)
    assert.ok(ms < LIMITS.chat.collectEveryMs / 3)
    await until(
      'hank learns it was delivered',
      () => hank.chat.history('ida_chat', 10).find((m) => m.id === sent.id)?.state === 'delivered'
    )
    assert.equal(seed.mailbox.store?.fetch(ida.node.peerId, 0).items.length, 0, 'collected and removed')
  })
})

describe('blocking and privacy', () => {
  it('drops a blocked user’s messages without telling them, and refuses strangers when set to contacts only', async () => {
    const erin = await startPeer('erin_chat')
    const mallory = await startPeer('mallory_chat')
    const stranger = await startPeer('stranger_chat')
    await mallory.chat.addContact('erin_chat', 'let me in')
    await until('erin sees the request', () => erin.chat.contacts().length === 1)
    erin.chat.block('mallory_chat')
    const sent = await mallory.chat.message('erin_chat', 'you cannot block me')
    assert.equal(sent.state, 'delivered', 'the blocked sender is not told')
    assert.deepEqual(erin.chat.history('mallory_chat', 10), [])
    await mallory.presence.set('online')
    assert.equal(erin.presence.of('mallory_chat').presence, 'offline')
    erin.chat.privacy = 'contacts'
    const refused = await stranger.chat.message('erin_chat', 'hello?')
    assert.equal(refused.state, 'refused')
    assert.deepEqual(erin.chat.history('stranger_chat', 10), [])
  })
})

describe('abuse', () => {
  it('refuses a flood of contact requests from a stranger with RATE_LIMITED, and the connection and the peer carry on', async () => {
    const target = await startPeer('quiet_chat')
    const spammer = await startPeer('spam_chat')
    const connection = await spammer.node.libp2p.dial(peerIdFromString(target.node.peerId))
    assert.equal((await spammer.node.hello.greet(connection)).ok, true)
    const stream = await connection.newStream(CHAT_PROTOCOL)
    const lp = lpStream(stream)
    const conv = directConversation('spam_chat', 'quiet_chat')
    const answers: Array<{ ok?: boolean; refused?: { code: string } }> = []
    for (let i = 0; i < LIMITS.chat.requestBurst + 5; i++) {
      const envelope = signEnvelope(
        { conv, kind: 'contact', from: 'spam_chat', lamport: i + 1, body: { action: 'request', message: `please ${i}` } },
        spammer.device
      )
      await lp.write(encodeEnvelope(envelope))
      answers.push(JSON.parse(new TextDecoder().decode((await lp.read()).subarray())))
    }
    assert.equal(answers.filter((a) => a.ok === true).length, LIMITS.chat.requestBurst)
    assert.deepEqual(
      answers.slice(LIMITS.chat.requestBurst).map((a) => a.refused?.code),
      Array(5).fill('RATE_LIMITED')
    )
    await stream.close()
    assert.equal(target.chat.contacts().filter((c) => c.name === 'spam_chat').length, 1)
    // A contact's messages are not held back by the request limit.
    await target.chat.acceptContact('spam_chat')
    assert.equal((await spammer.chat.message('quiet_chat', 'thanks')).state, 'delivered')
    assert.equal(target.chat.history('spam_chat', 10).at(-1)?.text, 'thanks')
  })
})

describe('one user on two devices', () => {
  it('keeps the contact list and the history the same on both devices', async () => {
    const phone = await startPeer('hana_chat')
    const laptop = await startPeer('hana_chat')
    const ivan = await startPeer('ivan_chat')
    await phone.chat.addContact('ivan_chat', 'hana here')
    await until('the laptop knows of the request', () =>
      laptop.chat.contacts().some((c) => c.name === 'ivan_chat' && c.state === 'requested')
    )
    await until('ivan sees one request', () => ivan.chat.contacts().length === 1)
    await ivan.chat.acceptContact('hana_chat')
    await until('both devices have ivan as a contact', () => phone.chat.isContact('ivan_chat') && laptop.chat.isContact('ivan_chat'))
    const fromPhone = await phone.chat.message('ivan_chat', 'sent from my phone')
    const fromIvan = await ivan.chat.message('hana_chat', 'to both your devices')
    assert.equal(fromIvan.state, 'delivered')
    await until('the laptop has both lines', () => laptop.chat.history('ivan_chat', 10).length === 2)
    await until('the phone has both lines', () => phone.chat.history('ivan_chat', 10).length === 2)
    const ids = (p: Peer, other = 'ivan_chat') => p.chat.history(other, 10).map((m) => m.id)
    assert.deepEqual(ids(laptop), ids(phone))
    assert.deepEqual(ids(ivan, 'hana_chat'), ids(phone))
    assert.ok(ids(phone).includes(fromPhone.id))
    // A device logged in later catches up from the others: the same history and contacts.
    const tablet = await startPeer('hana_chat')
    assert.ok((await tablet.chat.catchUp()) >= 2)
    assert.deepEqual(ids(tablet), ids(phone))
    assert.equal(tablet.chat.isContact('ivan_chat'), true)
    laptop.chat.block('ivan_chat')
    await until('the block reaches the phone and the tablet', () => phone.chat.isBlocked('ivan_chat') && tablet.chat.isBlocked('ivan_chat'))
  })

  it('ends with the same contact states on every device, whatever order the changes arrive in', () => {
    const states = ['requested', 'accepted', 'declined', 'blocked', 'removed'] as const
    fc.assert(
      fc.property(
        // A version names one change: (Lamport time, device) is unique.
        fc.uniqueArray(fc.record({ state: fc.constantFrom(...states), lamport: fc.nat(50), device: fc.constantFrom('a', 'b', 'c') }), {
          minLength: 1,
          maxLength: 12,
          selector: (c) => `${c.lamport}/${c.device}`
        }),
        fc.integer(),
        (changes, seed) => {
          const inOrder = new ChatStore(':memory:')
          const shuffled = new ChatStore(':memory:')
          try {
            for (const c of changes) inOrder.setContact('zed', c.state, null, c)
            const order = [...changes].sort((x, y) => (hash(x, seed) < hash(y, seed) ? -1 : 1))
            for (const c of order) shuffled.setContact('zed', c.state, null, c)
            assert.equal(shuffled.contact('zed')?.state, inOrder.contact('zed')?.state)
            assert.deepEqual(shuffled.contactVersion('zed'), inOrder.contactVersion('zed'))
          } finally {
            inOrder.close()
            shuffled.close()
          }
        }
      ),
      { numRuns: 300 }
    )
  })
})

function hash(change: { state: string; lamport: number; device: string }, seed: number): number {
  let h = seed | 0
  for (const ch of `${change.state}${change.lamport}${change.device}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619)
  return h
}

describe('group chats', () => {
  it('a group of five with two members offline: everyone ends with the same history; invite, topic, leave', async () => {
    const names = ['grp_owner', 'grp_two', 'grp_three', 'grp_four', 'grp_five']
    const devices = names.map(() => generateKeyPair())
    const stores = names.map(() => new ChatStore(':memory:'))
    const members = await Promise.all(names.map((n, i) => startPeer(n, devices[i], stores[i])))
    const [owner, two, three, four, five] = members as [Peer, Peer, Peer, Peer, Peer]
    const group = await owner.chat.createGroup('five of us', names.slice(1))
    assert.deepEqual([...group.members].sort(), [...names].sort())
    await until('everyone has the group', () => members.every((m) => m.chat.groups().length === 1))
    // Two go offline.
    for (const p of [four, five]) {
      await p.stop()
      peers.splice(peers.indexOf(p), 1)
    }
    const first = await owner.chat.groupMessage(group.conv, 'hello group')
    const second = await two.chat.groupMessage(group.conv, 'hi all')
    await three.chat.setTopic(group.conv, 'weekend plans')
    assert.equal(first.state, 'delivered')
    assert.equal(second.state, 'delivered')
    // They come back and fetch from their mailboxes.
    const back = await Promise.all([3, 4].map((i) => startPeer(names[i] as string, devices[i], stores[i])))
    for (const p of back) await p.chat.collect()
    const everyone = [owner, two, three, ...back]
    const ids = (p: Peer) => p.chat.groupHistory(group.conv, 50).map((m) => m.id)
    await until('every member has both lines', () => everyone.every((p) => ids(p).length === 2))
    for (const p of everyone) assert.deepEqual(ids(p), ids(owner))
    for (const p of everyone) assert.equal(p.chat.group(group.conv).topic, 'weekend plans')

    // A sixth member is invited: they learn the group from the inviter, and can write to it.
    const six = await startPeer('grp_six')
    await two.chat.invite(group.conv, ['grp_six'])
    await until('the new member has the group', () => six.chat.groups().length === 1)
    assert.equal(six.chat.group(group.conv).members.length, 6)
    await until('the others see six members', () => everyone.every((p) => p.chat.group(group.conv).members.length === 6))
    const hello = await six.chat.groupMessage(group.conv, 'thanks for having me')
    await until('everyone reads the newcomer', () => everyone.every((p) => ids(p).includes(hello.id)))
    // Leaving: the others stop sending to them, and a line from a non-member is refused.
    await three.chat.leave(group.conv)
    await until('three is gone everywhere', () => [owner, six].every((p) => p.chat.group(group.conv).members.length === 5))
    await assert.rejects(three.chat.groupMessage(group.conv, 'still here?'), /not a member/)
  })
})

describe('a contact that vanishes', () => {
  it('shows offline within 30 s when its device goes away without a word', async () => {
    const jack = await startPeer('jack_chat')
    const kate = await startPeer('kate_chat')
    await jack.chat.addContact('kate_chat')
    await until('kate sees the request', () => kate.chat.contacts().length === 1)
    await kate.chat.acceptContact('jack_chat')
    await until('jack sees the acceptance', () => jack.chat.isContact('kate_chat'))
    await kate.presence.set('online')
    await until('jack sees kate online', () => jack.presence.of('kate_chat').presence === 'online')
    // No logout, no last word: the node just stops.
    await kate.node.stop()
    const ms = await until('jack sees kate offline', () => jack.presence.of('kate_chat').presence === 'offline', 30_000)
    assert.ok(ms < 30_000)
  })
})
