// The overlay through the real `parley` program: a login server, two supernodes
// and three user daemons as separate processes on loopback.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parley, type RunningRole, startRole } from '@parley/testing'

const PASSWORD = 'overlay test password 7'
let dir: string
const roles: RunningRole[] = []

async function netFile(file: string, login: string, seeds: string[]): Promise<string> {
  const path = join(dir, file)
  const r = await parley(['network', 'init', '--login', login, '--out', path, ...seeds.flatMap((s) => ['--seed', s])])
  assert.equal(r.code, 0, r.stderr)
  return path
}

async function account(profile: string, name: string, network: string): Promise<void> {
  const data = join(dir, profile)
  const reg = await parley(['account', 'register', name, '--data', data, '--network', network, '--password-stdin'], { input: PASSWORD })
  assert.equal(reg.code, 0, reg.stderr)
  const login = await parley(['login', name, '--data', data, '--password-stdin'], { input: PASSWORD })
  assert.equal(login.code, 0, login.stderr)
}

async function role(args: string[]): Promise<RunningRole> {
  const r = await startRole(args)
  roles.push(r)
  return r
}

describe('the overlay on loopback: supernodes, daemons, whois and net from the command line', () => {
  let loginServer: RunningRole
  let net0: string
  let net: string
  const daemons = new Map<string, RunningRole>()

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-overlay-'))
    loginServer = await role(['login-server', '--data', join(dir, 'login'), '--listen', '127.0.0.1:0'])
    const login = String(loginServer.ready.url)
    net0 = await netFile('net0.json', login, [])
    for (const [profile, name] of [
      ['s1', 'super_one'],
      ['s2', 'super_two'],
      ['alice', 'alice_overlay'],
      ['bob', 'bob_overlay'],
      ['carol', 'carol_overlay']
    ]) {
      await account(profile as string, name as string, net0)
    }
    const s1 = await role(['supernode', '--data', join(dir, 's1'), '--network', net0])
    assert.equal(s1.ready.role, 'supernode')
    const s1addr = (s1.ready.addrs as string[])[0] as string
    const s2 = await role(['supernode', '--data', join(dir, 's2'), '--network', await netFile('net1.json', login, [s1addr])])
    net = await netFile('net.json', login, [s1addr, (s2.ready.addrs as string[])[0] as string])
    for (const user of ['alice', 'bob', 'carol']) {
      daemons.set(user, await role(['daemon', '--data', join(dir, user), '--network', net]))
    }
  })
  after(async () => {
    for (const r of roles.reverse()) await r.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('prints ready lines with the peer id, addresses and the local API', () => {
    const alice = daemons.get('alice')?.ready
    assert.match(String(alice?.peerId), /^12D3KooW/)
    assert.match(String(alice?.api), /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.match(((alice?.addrs as string[]) ?? [])[0] ?? '', /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)
  })

  it('every daemon finds every user over the overlay', async () => {
    for (const asker of ['alice', 'bob', 'carol']) {
      for (const target of ['alice', 'bob', 'carol']) {
        const r = await parley(['whois', `${target}_overlay`, '--data', join(dir, asker), '--json'])
        assert.equal(r.code, 0, r.stderr)
        const found = JSON.parse(r.stdout) as { name: string; devices: Array<{ peerId: string; presence: string }>; ms: number }
        assert.equal(found.name, `${target}_overlay`)
        assert.deepEqual(
          found.devices.map((d) => d.peerId),
          [daemons.get(target)?.ready.peerId]
        )
        assert.equal(typeof found.ms, 'number')
      }
    }
    const nobody = JSON.parse((await parley(['whois', 'nobody_here', '--data', join(dir, 'alice'), '--json'])).stdout) as {
      devices: unknown[]
    }
    assert.deepEqual(nobody.devices, [])
  })

  it('shows the node view: role, supernodes, host cache', async () => {
    const r = await parley(['net', '--data', join(dir, 'alice'), '--json'])
    assert.equal(r.code, 0, r.stderr)
    const view = JSON.parse(r.stdout) as { role: string; supernodes: Array<{ peerId: string }>; hostCache: number; reachability: string }
    assert.equal(view.role, 'client')
    assert.equal(view.supernodes.length, 2, 'both supernodes there are')
    assert.ok(view.hostCache >= 2)
    const human = await parley(['net', '--data', join(dir, 'alice')])
    assert.match(human.stdout, /role: client/)
  })

  it('restarts from its host cache, without seeds', async () => {
    await daemons.get('carol')?.stop()
    // The profile now remembers a network file without seeds: only the host cache knows the supernodes.
    const carol = await role(['daemon', '--data', join(dir, 'carol'), '--network', net0])
    daemons.set('carol', carol)
    const view = JSON.parse((await parley(['net', '--data', join(dir, 'carol'), '--json'])).stdout) as { supernodes: unknown[] }
    assert.equal(view.supernodes.length, 2)
    const found = JSON.parse((await parley(['whois', 'alice_overlay', '--data', join(dir, 'carol'), '--json'])).stdout) as {
      devices: unknown[]
    }
    assert.equal(found.devices.length, 1)
  })

  it('keeps finding users with the login server stopped', async () => {
    assert.equal(await loginServer.stop(), 0)
    const r = await parley(['whois', 'bob_overlay', '--data', join(dir, 'alice'), '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal((JSON.parse(r.stdout) as { devices: unknown[] }).devices.length, 1)
  })

  it('tells a user whose daemon is not running what to do', async () => {
    const r = await parley(['whois', 'bob_overlay', '--data', join(dir, 'nobody')])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /no daemon runs for .*: start one with "parley daemon/)
  })
})
