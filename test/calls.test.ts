// A voice call through the real `parley` program: a login server, a
// supernode and two user daemons as processes on loopback; `parley answer`
// and `parley call` as a user would type them. The caller plays speech made by
// espeak-ng; the callee's recording is compared with it (aligned by
// cross-correlation, then a similarity and level threshold that silence or
// garbled audio fails).
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { compareAudio, readWavForCall } from '@parley/calls'
import { parley, speechFile } from '@parley/testing'
import { befriend, cliIn, type SmallNetwork, startSmallNetwork, until } from './support.ts'

const PASSWORD = 'calls test password 3'
let dir: string
let network: SmallNetwork
const cli = cliIn(() => dir)

describe('two users call each other from the command line', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-calls-'))
    network = await startSmallNetwork(dir, {
      password: PASSWORD,
      supernodes: [['sn', 'calls_super']],
      users: [
        ['alice', 'alice_tel'],
        ['bob', 'bob_tel']
      ]
    })
    for (const profile of ['alice', 'bob']) await network.daemon(profile)
    await befriend(() => dir, ['alice', 'alice_tel'], ['bob', 'bob_tel'])
    await speechFile(join(dir, 'speech.wav'))
  })
  after(async () => {
    await network.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('bob answers, alice speaks, and bob’s recording is alice’s speech', async () => {
    const spoken = readWavForCall(await readFile(join(dir, 'speech.wav')))
    const seconds = Math.ceil(spoken.length / 48_000) + 2
    const answering = parley([
      'answer',
      '--from',
      'alice_tel',
      '--record',
      join(dir, 'heard.wav'),
      '--timeout',
      '30',
      '--json',
      '--data',
      join(dir, 'bob')
    ])
    // `answer` is waiting before the call is placed (the daemon holds the request).
    await new Promise((r) => setTimeout(r, 500))
    const called = await cli('alice', ['call', 'bob_tel', '--play', join(dir, 'speech.wav'), '--seconds', String(seconds)])
    assert.equal(called.state, 'completed')
    // The caller hears silence from bob (he plays nothing), so its setup time is that of his silence: a number, or null.
    assert.ok(called.setupMs === null || (typeof called.setupMs === 'number' && called.setupMs > 0))
    assert.ok(typeof (called.quality as { mos?: unknown } | null)?.mos === 'number', `a MOS: ${JSON.stringify(called.quality)}`)
    assert.ok((called.seconds as number) >= seconds - 0.5, `connected ${called.seconds} s`)
    const answered = await answering
    assert.equal(answered.code, 0, answered.stderr)
    const result = JSON.parse(answered.stdout) as { state: string; from: string }
    assert.equal(result.state, 'completed')
    assert.equal(result.from, 'alice_tel')
    const heard = readWavForCall(await readFile(join(dir, 'heard.wav')))
    const comparison = compareAudio(spoken, heard)
    assert.ok(comparison.pass, `bob heard alice: ${JSON.stringify(comparison)}`)
    // Silence is not a pass: the same check on a recording of nothing fails.
    assert.equal(compareAudio(spoken, new Int16Array(heard.length)).pass, false)
  })

  it('keeps the call in both call histories, and says clearly when a call does not connect', async () => {
    assert.equal((await fetchHistory('alice'))[0]?.outcome, 'completed')
    assert.equal((await fetchHistory('bob'))[0]?.direction, 'incoming')
    // A user with no device anywhere: the call cannot connect, and the command says why (exit 1).
    const unknown = await parley(['call', 'nobody_here', '--data', join(dir, 'alice')])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /did not connect: no device of theirs could be reached/)
  })

  it('alice leaves bob a voicemail; bob lists it and saves it, and it is alice’s speech', async () => {
    const left = await cli('alice', ['voicemail', 'leave', 'bob_tel', '--play', join(dir, 'speech.wav')])
    assert.ok(left.state === 'delivered' || left.state === 'stored', String(left.state))
    const listed = await until(
      'bob has it whole',
      () => cli('bob', ['voicemail', 'list']),
      (r) => (r.voicemail as Array<{ complete: boolean }>)[0]?.complete === true
    )
    const [entry] = listed.voicemail as Array<{ call: string; from: string }>
    assert.equal(entry?.from, 'alice_tel')
    await cli('bob', ['voicemail', 'get', entry?.call as string, '--out', join(dir, 'voicemail.wav')])
    const spoken = readWavForCall(await readFile(join(dir, 'speech.wav')))
    const comparison = compareAudio(spoken, readWavForCall(await readFile(join(dir, 'voicemail.wav'))))
    assert.ok(comparison.pass, JSON.stringify(comparison))
  })
})

async function fetchHistory(profile: string): Promise<Array<{ outcome: string; direction: string }>> {
  const api = JSON.parse(await readFile(join(dir, profile, 'api.json'), 'utf8')) as { url: string; token: string }
  const response = await fetch(`${api.url}/v1/calls`, { headers: { authorization: `Bearer ${api.token}` } })
  return ((await response.json()) as { history: Array<{ outcome: string; direction: string }> }).history
}
