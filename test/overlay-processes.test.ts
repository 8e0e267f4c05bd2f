// Issue 3, process test 1: a login server, 3 supernodes and 10 user daemons,
// each a separate `parley` process on loopback. Every daemon finds every user
// over the overlay, and hello refuses a peer whose credential is forged,
// expired or issued for another device key.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type Credential, credentialToString, generateKeyPair, type KeyPair, keyIdOf, signCredential } from '@parley/crypto'
import { LoginClient } from '@parley/login-client'
import { KeyRing } from '@parley/login-server'
import { type HelloOutcome, ParleyNode } from '@parley/node'
import { Profile } from '@parley/node/profile'
import type { NetworkFile } from '@parley/protocol'
import { parley, type RunningRole, startRole } from '@parley/testing'

const PASSWORD = 'process test password 9'
const SUPERNODES = 3
const DAEMONS = 10
const superName = (i: number): string => `super_proc_${i + 1}`
const userName = (i: number): string => `user_proc_${String(i + 1).padStart(2, '0')}`

let dir: string
const roles: RunningRole[] = []
const peers: ParleyNode[] = []

// Whatever happens to the test process, no `parley` process outlives it.
const killAll = (): void => {
  for (const r of roles) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL')
}
process.once('exit', killAll)

async function role(args: string[]): Promise<RunningRole> {
  const r = await startRole(args)
  roles.push(r)
  return r
}

/** SIGINT, and SIGKILL for a process that has not exited 10 s later. */
async function stop(r: RunningRole): Promise<void> {
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 10_000)
  try {
    await r.stop()
  } finally {
    clearTimeout(timer)
  }
}

async function netFile(file: string, login: string, seeds: string[]): Promise<string> {
  const path = join(dir, file)
  const r = await parley(['network', 'init', '--login', login, '--out', path, ...seeds.flatMap((s) => ['--seed', s])])
  assert.equal(r.code, 0, r.stderr)
  return path
}

/**
 * Registers NAME and logs the profile's device in, as `parley account register`
 * and `parley login` do, but in this process: 13 accounts through the CLI
 * would be 26 more Node processes on a small machine.
 */
async function account(profileDir: string, name: string, network: string): Promise<void> {
  const profile = new Profile(profileDir)
  const net = await profile.network(network)
  const client = new LoginClient({ url: net.login })
  await client.register({ name, password: PASSWORD })
  await profile.saveCredential(await client.login({ name, password: PASSWORD, device: await profile.deviceKey() }))
}

function tcpAddr(ready: Record<string, unknown>): string {
  const addr = (ready.addrs as string[]).find((a) => /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//.test(a))
  assert.ok(addr !== undefined, `no loopback TCP address in ${JSON.stringify(ready.addrs)}`)
  return addr
}

interface WhoisAnswer {
  name: string
  devices: Array<{ peerId: string; presence: string }>
  ms: number
}

describe('overlay processes: a login server, 3 supernodes and 10 daemons on loopback', { timeout: 180_000 }, () => {
  let network: NetworkFile
  let loginDir: string
  const supernodes: RunningRole[] = []
  const daemons: RunningRole[] = []

  before(
    async () => {
      dir = await mkdtemp(join(tmpdir(), 'parley-processes-'))
      loginDir = join(dir, 'login')
      const loginServer = await role(['login-server', '--data', loginDir, '--listen', '127.0.0.1:0'])
      const login = String(loginServer.ready.url)
      const net0 = await netFile('net0.json', login, [])
      await Promise.all([
        ...Array.from({ length: SUPERNODES }, (_, i) => account(join(dir, `s${i + 1}`), superName(i), net0)),
        ...Array.from({ length: DAEMONS }, (_, i) => account(join(dir, `d${i + 1}`), userName(i), net0))
      ])
      // The first supernode starts alone; the others join it; the daemons know all three.
      supernodes.push(await role(['supernode', '--data', join(dir, 's1'), '--network', net0]))
      const net1 = await netFile('net1.json', login, [tcpAddr(supernodes[0]!.ready)])
      supernodes.push(
        ...(await Promise.all(
          Array.from({ length: SUPERNODES - 1 }, (_, i) => role(['supernode', '--data', join(dir, `s${i + 2}`), '--network', net1]))
        ))
      )
      const net = await netFile(
        'net.json',
        login,
        supernodes.map((s) => tcpAddr(s.ready))
      )
      network = JSON.parse(await readFile(net, 'utf8')) as NetworkFile
      daemons.push(
        ...(await Promise.all(
          Array.from({ length: DAEMONS }, (_, i) => role(['daemon', '--data', join(dir, `d${i + 1}`), '--network', net]))
        ))
      )
    },
    { timeout: 120_000 }
  )

  after(async () => {
    await Promise.all(peers.map(async (p) => await p.stop().catch(() => {})))
    await Promise.all(roles.map(stop))
    await rm(dir, { recursive: true, force: true })
  })

  it('runs every role as its own process, each with its own peer id', () => {
    assert.equal(supernodes.length, SUPERNODES)
    assert.equal(daemons.length, DAEMONS)
    for (const s of supernodes) assert.equal(s.ready.role, 'supernode')
    for (const d of daemons) assert.equal(d.ready.role, 'client')
    const ids = new Set([...supernodes, ...daemons].map((r) => r.ready.peerId))
    assert.equal(ids.size, SUPERNODES + DAEMONS)
    const pids = new Set(roles.map((r) => r.child.pid))
    assert.equal(pids.size, 1 + SUPERNODES + DAEMONS)
  })

  it('every daemon finds every user: one whois each through the CLI, the whole 10 x 10 matrix through the local API', async () => {
    const expected = (target: number): string[] => [String(daemons[target]?.ready.peerId)]
    // The CLI: each daemon asks for the next user.
    await Promise.all(
      daemons.map(async (_, i) => {
        const target = (i + 1) % DAEMONS
        const r = await parley(['whois', userName(target), '--data', join(dir, `d${i + 1}`), '--json'])
        assert.equal(r.code, 0, r.stderr)
        const found = JSON.parse(r.stdout) as WhoisAnswer
        assert.equal(found.name, userName(target))
        assert.deepEqual(
          found.devices.map((d) => d.peerId),
          expected(target),
          `${userName(i)} finds ${userName(target)}`
        )
      })
    )
    // The local API: every daemon, every user.
    const failures: string[] = []
    await Promise.all(
      daemons.map(async (_, i) => {
        const { url, token } = JSON.parse(await readFile(join(dir, `d${i + 1}`, 'api.json'), 'utf8')) as { url: string; token: string }
        for (let target = 0; target < DAEMONS; target++) {
          const response = await fetch(`${url}/v1/whois/${userName(target)}`, { headers: { authorization: `Bearer ${token}` } })
          const found = (await response.json()) as WhoisAnswer
          const got = response.ok ? found.devices.map((d) => d.peerId) : [`HTTP ${response.status}`]
          if (JSON.stringify(got) !== JSON.stringify(expected(target)))
            failures.push(`${userName(i)} -> ${userName(target)}: ${got.join(',')}`)
        }
      })
    )
    assert.deepEqual(failures, [], 'whois answers that miss or differ')
  })

  describe('hello refuses a peer with a bad credential, on a supernode process and on a daemon process', () => {
    let loginKey: { id: string; pair: KeyPair }
    let targets: Array<{ what: string; addr: string }>

    before(async () => {
      // The login server's own signing key, from its data folder: only to make an expired credential it really signed.
      const ring = await KeyRing.open(loginDir)
      loginKey = { id: ring.active.id, pair: ring.active.pair }
      assert.ok(
        network.keys.some((k) => k.id === loginKey.id),
        'the network trusts this key'
      )
      targets = [
        { what: 'supernode', addr: tcpAddr(supernodes[1]!.ready) },
        { what: 'daemon', addr: tcpAddr(daemons[3]!.ready) }
      ]
    })

    /** A credential for `device`, signed by `signer` under `keyId`. */
    function credential(device: KeyPair, name: string, signer: KeyPair, keyId: string, times: Partial<Credential> = {}): string {
      const now = Date.now()
      return credentialToString(
        signCredential(
          { version: 1, name, deviceKey: device.publicKey, issuedAt: now - 1_000, expiresAt: now + 3_600_000, serial: 1n, keyId, ...times },
          signer.handle
        )
      )
    }

    /** A peer of our own, in this process, presenting `presented` with the device key `device`, dials `addr`. */
    async function helloFrom(device: KeyPair, presented: string, addr: string): Promise<HelloOutcome> {
      const peer = await ParleyNode.create({
        role: 'client',
        deviceSeed: device.seed,
        trustedKeys: network.keys,
        credential: () => presented,
        privateAddresses: true
      })
      peers.push(peer)
      await peer.start()
      return await peer.connect(addr, { signal: AbortSignal.timeout(15_000) })
    }

    /** The code with which the other side's HelloService refused us. */
    function refusal(outcome: HelloOutcome): string {
      if (outcome.ok) return `accepted as ${outcome.peer.name}`
      assert.equal(outcome.reason, 'REFUSED_BY_PEER', outcome.message)
      return /^refused by the peer: ([A-Z_]+) /.exec(outcome.message)?.[1] ?? outcome.message
    }

    it('accepts a credential the login server issued for the device that presents it (the control)', async () => {
      const device = generateKeyPair()
      const client = new LoginClient({ url: network.login })
      await client.register({ name: 'hello_probe', password: PASSWORD })
      const issued = (await client.login({ name: 'hello_probe', password: PASSWORD, device })).credential
      for (const { what, addr } of targets) {
        const outcome = await helloFrom(device, issued, addr)
        assert.equal(outcome.ok, true, `${what}: ${outcome.ok ? '' : outcome.message}`)
      }
    })

    it('refuses a forged credential: signed by a key the network does not trust (BAD_SIGNATURE, UNKNOWN_KEY_ID)', async () => {
      const rogue = generateKeyPair()
      for (const { what, addr } of targets) {
        const underRealId = generateKeyPair()
        assert.equal(
          refusal(await helloFrom(underRealId, credential(underRealId, 'forger_one', rogue, loginKey.id), addr)),
          'BAD_SIGNATURE',
          what
        )
        const underOwnId = generateKeyPair()
        assert.equal(
          refusal(await helloFrom(underOwnId, credential(underOwnId, 'forger_two', rogue, keyIdOf(rogue.publicKey)), addr)),
          'UNKNOWN_KEY_ID',
          what
        )
      }
    })

    it("refuses an expired credential, although the network's login key signed it (EXPIRED)", async () => {
      for (const { what, addr } of targets) {
        const device = generateKeyPair()
        const expired = credential(device, userName(0), loginKey.pair, loginKey.id, {
          issuedAt: Date.now() - 2 * 3_600_000,
          expiresAt: Date.now() - 3_600_000
        })
        assert.equal(refusal(await helloFrom(device, expired, addr)), 'EXPIRED', what)
      }
    })

    it('refuses a valid credential presented with another device key: a stolen one (DEVICE_KEY_MISMATCH)', async () => {
      // The credential the login server issued to user_proc_01's daemon, straight from its profile.
      const stolen = (await new Profile(join(dir, 'd1')).credential())?.credential
      assert.ok(stolen !== undefined)
      for (const { what, addr } of targets) {
        assert.equal(refusal(await helloFrom(generateKeyPair(), stolen, addr)), 'DEVICE_KEY_MISMATCH', what)
      }
    })
  })
})
