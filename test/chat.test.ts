// Contacts, presence and chat through the real `parley` program: a login
// server, a supernode, and user daemons (one user on two devices) as separate
// processes on loopback, driven by the command line as a user would.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parley } from '@parley/testing'
import { cliIn, type SmallNetwork, startSmallNetwork, until } from './support.ts'

const PASSWORD = 'chat test password 5'
let dir: string
let network: SmallNetwork
const cli = cliIn(() => dir)

type Line = { id: string; from: string; text: string; state: string }
const history = async (profile: string, other: string): Promise<Line[]> => (await cli(profile, ['history', other])).messages as Line[]
const contacts = async (profile: string): Promise<Array<{ name: string; state: string; presence?: string; mood?: string }>> =>
  (await cli(profile, ['contacts', 'list'])).contacts as Array<{ name: string; state: string; presence?: string; mood?: string }>

describe('two users chat from the command line: contacts, presence, offline messages, two devices', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-chat-'))
    network = await startSmallNetwork(dir, {
      password: PASSWORD,
      supernodes: [['sn', 'chat_super']],
      users: [
        ['alice', 'alice_cli'],
        ['bob', 'bob_cli']
      ],
      devices: [['alice2', 'alice_cli']]
    })
    for (const profile of ['alice', 'alice2', 'bob']) await network.daemon(profile)
  })
  after(async () => {
    await network.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('adds each other as contacts', async () => {
    const asked = await cli('alice', ['contacts', 'add', 'bob_cli', '--message', 'it is alice'])
    assert.deepEqual(asked.contacts, [
      {
        name: 'bob_cli',
        state: 'requested',
        message: 'it is alice',
        updatedAt: (asked.contacts as Array<{ updatedAt: number }>)[0]?.updatedAt
      }
    ])
    await until(
      'bob sees the request',
      () => contacts('bob'),
      (c) => c[0]?.state === 'incoming'
    )
    await cli('bob', ['contacts', 'accept', 'alice_cli'])
    await until(
      'alice sees bob accepted',
      () => contacts('alice'),
      (c) => c[0]?.state === 'accepted'
    )
    await until(
      'alice’s second device too',
      () => contacts('alice2'),
      (c) => c[0]?.state === 'accepted'
    )
  })

  it('sees each other’s presence and mood', async () => {
    const set = await cli('alice', ['status', 'dnd', '--mood', 'writing tests'])
    assert.equal(set.presence, 'dnd')
    const seen = await until(
      'bob sees alice busy',
      () => contacts('bob'),
      // Pushed within a second (packages/node/test/chat.test.ts measures it); each poll here starts a process.
      (c) => c[0]?.presence === 'dnd',
      10_000
    )
    assert.equal(seen[0]?.mood, 'writing tests')
    await cli('alice', ['status', 'online'])
  })

  it('chats while both are online, on every device', async () => {
    const sent = await cli('alice', ['msg', 'bob_cli', 'hello bob :)'])
    assert.equal(sent.state, 'delivered')
    const reply = await cli('bob', ['msg', 'alice_cli', 'hi alice'])
    assert.equal(reply.state, 'delivered')
    const bobs = await until(
      'bob has both lines',
      () => history('bob', 'alice_cli'),
      (h) => h.length === 2
    )
    assert.deepEqual(
      bobs.map((m) => [m.from, m.text]),
      [
        ['alice_cli', 'hello bob 🙂'],
        ['bob_cli', 'hi alice']
      ]
    )
    const ids = bobs.map((m) => m.id)
    await until(
      'alice’s devices have the same history',
      () => history('alice2', 'bob_cli'),
      (h) => h.map((m) => m.id).join() === ids.join()
    )
    assert.deepEqual(
      (await history('alice', 'bob_cli')).map((m) => m.id),
      ids
    )
  })

  it('chats with one offline: stored, then delivered when back; a killed sender loses and doubles nothing', async () => {
    await network.daemons.get('bob')?.stop()
    const stored = await cli('alice', ['msg', 'bob_cli', 'while you were away'])
    assert.equal(stored.state, 'stored')
    // The sender is killed right after the command returned, and comes back.
    await network.daemons.get('alice')?.stop('SIGKILL')
    await network.daemon('alice')
    await network.daemon('bob')
    const lines = await until(
      'bob gets it once back',
      () => history('bob', 'alice_cli'),
      (h) => h.some((m) => m.id === stored.id)
    )
    assert.equal(lines.filter((m) => m.id === stored.id).length, 1)
    await until(
      'alice learns it was delivered',
      () => history('alice', 'bob_cli'),
      (h) => h.find((m) => m.id === stored.id)?.state === 'delivered'
    )
    await until(
      'alice’s second device has it too',
      () => history('alice2', 'bob_cli'),
      (h) => h.some((m) => m.id === stored.id)
    )
  })

  it('talks in a group: create, message, the same history on every device, topic, leave', async () => {
    const created = (await cli('alice', ['group', 'create', 'team', '--members', 'bob_cli'])) as {
      group: { conv: string; members: string[] }
    }
    assert.deepEqual([...created.group.members].sort(), ['alice_cli', 'bob_cli'])
    await until(
      'bob has the group',
      () => cli('bob', ['group', 'list']),
      (r) => (r.groups as Array<{ conv: string }>).some((g) => g.conv === created.group.conv)
    )
    const sent = await cli('alice', ['group', 'msg', 'team', 'hello team'])
    assert.equal(sent.state, 'delivered')
    await cli('bob', ['group', 'msg', created.group.conv, 'hello alice'])
    const texts = (r: Record<string, unknown>) => (r.messages as Array<{ text: string }>).map((m) => m.text).join('|')
    for (const profile of ['alice', 'alice2', 'bob'])
      await until(
        `${profile} has both group lines`,
        () => cli(profile, ['group', 'history', 'team']),
        (r) => texts(r) === 'hello team|hello alice'
      )
    const topic = (await cli('bob', ['group', 'topic', 'team', 'plans for friday'])) as { group: { topic: string } }
    assert.equal(topic.group.topic, 'plans for friday')
    await until(
      'alice sees the topic',
      () => cli('alice', ['group', 'list']),
      (r) => (r.groups as Array<{ topic: string }>)[0]?.topic === 'plans for friday'
    )
    await cli('bob', ['group', 'leave', 'team'])
    await until(
      'alice sees bob leave',
      () => cli('alice', ['group', 'list']),
      (r) => (r.groups as Array<{ members: string[] }>)[0]?.members.join() === 'alice_cli'
    )
    const unknown = await parley(['group', 'msg', 'nosuchgroup', 'x', '--data', join(dir, 'alice')])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /no group “nosuchgroup” here/)
  })

  it('refuses what the command line gets wrong, clearly', async () => {
    const r = await parley(['msg', 'bob_cli', 'x'.repeat(70_000), '--data', join(dir, 'alice')])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /at most 65536 bytes/)
    const bad = await parley(['contacts', 'befriend', 'bob_cli', '--data', join(dir, 'alice')])
    assert.equal(bad.code, 2)
  })
})
