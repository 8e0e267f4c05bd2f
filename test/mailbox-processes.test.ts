// Offline messages through real processes: a login server, three supernodes
// (the three mailbox replicas of a small network) and user daemons on
// loopback. One of the three supernodes is killed (SIGKILL) while the
// recipient is away; the recipient still gets the message, once, when it comes
// back. A user the recipient blocked reaches nothing: no line, no presence.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { befriend, cliIn, type SmallNetwork, startSmallNetwork, until } from './support.ts'

const PASSWORD = 'mailbox test password 7'
let dir: string
let network: SmallNetwork
const cli = cliIn(() => dir)

type Line = { id: string; from: string; text: string; state: string }
const history = async (profile: string, other: string): Promise<Line[]> => (await cli(profile, ['history', other])).messages as Line[]
type ContactLine = { name: string; state: string; presence?: string; mood?: string }
const contacts = async (profile: string): Promise<ContactLine[]> => (await cli(profile, ['contacts', 'list'])).contacts as ContactLine[]

describe('offline messages with three mailbox supernodes, one of them killed; a blocked user reaches nothing', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-mailboxes-'))
    network = await startSmallNetwork(dir, {
      password: PASSWORD,
      supernodes: [
        ['sn1', 'mb_super_1'],
        ['sn2', 'mb_super_2'],
        ['sn3', 'mb_super_3']
      ],
      users: [
        ['carol', 'carol_mb'],
        ['dan', 'dan_mb'],
        ['eve', 'eve_mb']
      ]
    })
    for (const profile of ['carol', 'dan', 'eve']) await network.daemon(profile)
    // Every daemon links to all three supernodes (the default is 3).
    for (const profile of ['carol', 'dan', 'eve'])
      await until(
        `${profile} links to the three supernodes`,
        () => cli(profile, ['net']),
        (r) => ((r.supernodes as unknown[] | undefined) ?? []).length === 3
      )
    await befriend(() => dir, ['carol', 'carol_mb'], ['dan', 'dan_mb'])
    await befriend(() => dir, ['eve', 'eve_mb'], ['dan', 'dan_mb'])
  })
  after(async () => {
    await network.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('delivers a message stored while the recipient was away, although one of the three mailboxes was killed', async () => {
    await network.daemons.get('dan')?.stop()
    const sent = await cli('carol', ['msg', 'dan_mb', 'kept for you on three supernodes'])
    assert.equal(sent.state, 'stored')
    // One of the three replicas dies before dan is back.
    await network.supernodes[1]?.stop('SIGKILL')
    await network.daemon('dan')
    const lines = await until(
      'dan gets it from the two mailboxes left',
      () => history('dan', 'carol_mb'),
      (h) => h.some((m) => m.id === sent.id)
    )
    assert.equal(lines.filter((m) => m.id === sent.id).length, 1)
    assert.equal(lines.find((m) => m.id === sent.id)?.text, 'kept for you on three supernodes')
    await until(
      'carol learns it was delivered',
      () => history('carol', 'dan_mb'),
      (h) => h.find((m) => m.id === sent.id)?.state === 'delivered'
    )
  })

  it('a blocked user’s messages and presence go nowhere, and the blocked user is not told', async () => {
    await until(
      'dan sees eve online before',
      () => contacts('dan'),
      (c) => c.find((x) => x.name === 'eve_mb')?.presence === 'online'
    )
    await cli('dan', ['contacts', 'block', 'eve_mb'])
    const sent = await cli('eve', ['msg', 'dan_mb', 'can you hear me?'])
    assert.notEqual(sent.state, 'refused', 'the blocked user is not told')
    await cli('eve', ['status', 'away', '--mood', 'still here'])
    // Give the push and the line time to arrive if they were going to.
    await new Promise((r) => setTimeout(r, 2_000))
    assert.deepEqual(
      (await history('dan', 'eve_mb')).map((m) => m.text),
      []
    )
    const eve = (await contacts('dan')).find((x) => x.name === 'eve_mb')
    assert.equal(eve?.state, 'blocked')
    assert.notEqual(eve?.presence, 'away')
    assert.notEqual(eve?.mood, 'still here')
    // And dan's presence does not reach eve any more.
    await cli('dan', ['status', 'dnd', '--mood', 'busy'])
    await new Promise((r) => setTimeout(r, 1_500))
    const seenByEve = (await contacts('eve')).find((x) => x.name === 'dan_mb')
    assert.notEqual(seenByEve?.presence, 'dnd')
  })
})
