// The acceptance, through the real `parley` program: a login server
// process, the network file, and the user commands, on both database modes.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CredentialVerifier } from '@parley/crypto'
import { type NetworkFile, toBase64Url } from '@parley/protocol'
import { freshDatabase, parley, type RunningRole, startRole, type TestPostgres, tempDir, testPostgres } from '@parley/testing'

const PASSWORD = 'a long enough secret 42'

function cliSuite(mode: string, dbArgs: () => Promise<string[]>): void {
  describe(`parley CLI with the login server on ${mode}`, () => {
    let dir: string
    let server: RunningRole
    let networkFile: string
    const serverArgs = async (): Promise<string[]> => [
      'login-server',
      '--data',
      join(dir, 'server'),
      '--listen',
      '127.0.0.1:0',
      ...(await dbArgs())
    ]
    const user = (profile: string, ...args: string[]): string[] => [...args, '--data', join(dir, profile)]

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'parley-cli-'))
      server = await startRole(await serverArgs())
    })
    after(async () => {
      await server?.stop()
      await rm(dir, { recursive: true, force: true })
    })

    it('prints a ready line with its URL and signing keys', () => {
      assert.match(String(server.ready.url), /^http:\/\/127\.0\.0\.1:\d+$/)
      const keys = server.ready.keys as Array<{ id: string; publicKey: string }>
      assert.equal(keys.length, 1)
      assert.match(keys[0]?.id ?? '', /^[A-Za-z0-9_-]{12}$/)
    })

    it('writes a network file with the login URL and trusted keys', async () => {
      networkFile = join(dir, 'network.json')
      const r = await parley([
        'network',
        'init',
        '--login',
        String(server.ready.url),
        '--out',
        networkFile,
        '--seed',
        '/ip4/127.0.0.1/tcp/4001',
        '--json'
      ])
      assert.equal(r.code, 0, r.stderr)
      const network = JSON.parse(await readFile(networkFile, 'utf8')) as NetworkFile
      assert.equal(network.login, server.ready.url)
      assert.deepEqual(
        network.keys,
        (server.ready.keys as Array<{ id: string; publicKey: string }>).map((k) => ({ id: k.id, publicKey: k.publicKey }))
      )
      assert.deepEqual(network.seeds, ['/ip4/127.0.0.1/tcp/4001'])
    })

    it('registers, logs in and tells who I am', async () => {
      const reg = await parley(
        [
          ...user('alice', 'account', 'register', 'alice_cli', '--email', 'a@example.org'),
          '--network',
          networkFile,
          '--password-stdin',
          '--json'
        ],
        {
          input: `${PASSWORD}\n`
        }
      )
      assert.equal(reg.code, 0, reg.stderr)
      assert.equal(JSON.parse(reg.stdout).name, 'alice_cli')

      const login = await parley([...user('alice', 'login', 'alice_cli'), '--password-stdin', '--json'], { input: `${PASSWORD}\n` })
      assert.equal(login.code, 0, login.stderr)
      const loggedIn = JSON.parse(login.stdout) as { name: string; expiresAt: string }
      assert.equal(loggedIn.name, 'alice_cli')
      assert.ok(Date.parse(loggedIn.expiresAt) > Date.now() + 23 * 3600_000)

      const who = await parley([...user('alice', 'whoami'), '--json'])
      assert.equal(who.code, 0, who.stderr)
      const me = JSON.parse(who.stdout) as { name: string; peerId: string; online: boolean; expiresAt: string }
      assert.equal(me.name, 'alice_cli')
      assert.equal(me.online, true)
      assert.match(me.peerId, /^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/)
      assert.equal(me.expiresAt, loggedIn.expiresAt)

      const flagsFirst = await parley(['--data', join(dir, 'alice'), '--json', 'whoami'])
      assert.equal(flagsFirst.code, 0, flagsFirst.stderr)
      assert.equal(JSON.parse(flagsFirst.stdout).name, 'alice_cli', 'flags may come before the command')

      const human = await parley(user('alice', 'whoami'))
      assert.equal(human.code, 0)
      assert.match(human.stdout, /alice_cli/)
    })

    it('keeps keys and credentials readable by the user only', async () => {
      for (const file of ['device-key.json', 'credential.json']) {
        assert.equal((await stat(join(dir, 'alice', file))).mode & 0o077, 0, file)
      }
      assert.equal((await stat(join(dir, 'alice'))).mode & 0o077, 0)
      assert.equal((await stat(join(dir, 'server', 'login-keys.json'))).mode & 0o077, 0)
    })

    it('issues a credential that verifies offline with the network file, and fails when tampered with', async () => {
      const network = JSON.parse(await readFile(networkFile, 'utf8')) as NetworkFile
      const grant = JSON.parse(await readFile(join(dir, 'alice', 'credential.json'), 'utf8')) as { credential: string }
      const device = JSON.parse(await readFile(join(dir, 'alice', 'device-key.json'), 'utf8')) as { publicKey: string }
      const verifier = new CredentialVerifier(network.keys)
      const verdict = verifier.verify(grant.credential, { deviceKey: Buffer.from(device.publicKey, 'base64url') })
      assert.ok(verdict.ok, verdict.ok ? '' : verdict.message)
      const bytes = Buffer.from(grant.credential, 'base64url')
      for (let i = 0; i < bytes.length; i++) {
        const tampered = Uint8Array.from(bytes)
        tampered[i] = (tampered[i] as number) ^ 0x20
        assert.equal(verifier.verify(toBase64Url(tampered)).ok, false, `byte ${i}`)
      }
      assert.equal(verifier.verify(grant.credential, { now: verdict.credential.expiresAt }).ok, false, 'expired')
    })

    it('fails with exit 1 and a clear message for a duplicate name, a weak password and a wrong password', async () => {
      const dup = await parley([...user('bob', 'account', 'register', 'ALICE_CLI'), '--network', networkFile, '--password-stdin'], {
        input: PASSWORD
      })
      assert.equal(dup.code, 1)
      assert.match(dup.stderr, /^parley: the name ALICE_CLI is taken \(NAME_TAKEN\)\n$/)

      const weak = await parley([...user('bob', 'account', 'register', 'bob_the_user'), '--password-stdin'], { input: 'secret' })
      assert.equal(weak.code, 1)
      assert.match(weak.stderr, /password too weak: .*\(WEAK_PASSWORD\)/)

      const wrong = await parley([...user('bob', 'login', 'alice_cli'), '--password-stdin'], { input: 'not the password' })
      assert.equal(wrong.code, 1)
      assert.match(wrong.stderr, /^parley: wrong name or password \(INVALID_CREDENTIALS\)\n$/)
      assert.equal(wrong.stdout, '')
    })

    it('refuses the next try as throttled after 10 wrong passwords', async () => {
      const reg = await parley([...user('carol', 'account', 'register', 'carol_target'), '--network', networkFile, '--password-stdin'], {
        input: PASSWORD
      })
      assert.equal(reg.code, 0, reg.stderr)
      for (let i = 0; i < 10; i++) {
        const r = await parley([...user('mallory', 'login', 'carol_target'), '--network', networkFile, '--password-stdin'], {
          input: `guess ${i}`
        })
        assert.equal(r.code, 1)
        assert.match(r.stderr, /INVALID_CREDENTIALS/, `try ${i + 1}`)
      }
      const eleventh = await parley([...user('mallory', 'login', 'carol_target'), '--password-stdin', '--json'], { input: PASSWORD })
      assert.equal(eleventh.code, 1)
      assert.match(eleventh.stderr, /too many failed logins: try again in \d+ s \(THROTTLED\)/)
      assert.equal(eleventh.stdout, '', '--json prints nothing on stdout on failure')
    })

    it('searches the directory, renews and logs out', async () => {
      const found = await parley([...user('alice', 'search', 'alice'), '--json'])
      assert.equal(found.code, 0, found.stderr)
      assert.deepEqual(JSON.parse(found.stdout).results, [{ name: 'alice_cli', displayName: 'alice_cli' }])
      const renewed = await parley([...user('alice', 'renew'), '--json'])
      assert.equal(renewed.code, 0, renewed.stderr)
      const out = await parley([...user('alice', 'logout'), '--json'])
      assert.equal(out.code, 0, out.stderr)
      const who = JSON.parse((await parley([...user('alice', 'whoami'), '--json'])).stdout) as { online: boolean; name: string | null }
      assert.deepEqual([who.online, who.name], [false, null])
      const search = await parley(user('alice', 'search', 'alice'))
      assert.equal(search.code, 1)
      assert.match(search.stderr, /not logged in/)
    })

    it('keeps the accounts across a restart', async () => {
      assert.equal(await server.stop('SIGINT'), 0, 'clean exit on SIGINT')
      assert.equal(await server.stop('SIGTERM'), 0, 'stopping twice is harmless')
      server = await startRole(await serverArgs())
      // The server came back on another port: point the profile at it with a fresh network file.
      const r = await parley(['network', 'init', '--login', String(server.ready.url), '--out', networkFile])
      assert.equal(r.code, 0, r.stderr)
      const login = await parley([...user('alice', 'login', 'alice_cli'), '--network', networkFile, '--password-stdin', '--json'], {
        input: PASSWORD
      })
      assert.equal(login.code, 0, login.stderr)
      const dup = await parley([...user('dave', 'account', 'register', 'alice_cli'), '--network', networkFile, '--password-stdin'], {
        input: PASSWORD
      })
      assert.match(dup.stderr, /NAME_TAKEN/)
    })

    it('keeps acknowledged accounts after a crash (kill -9)', async () => {
      const reg = await parley([...user('erin', 'account', 'register', 'erin_crash'), '--network', networkFile, '--password-stdin'], {
        input: PASSWORD
      })
      assert.equal(reg.code, 0, reg.stderr)
      await server.stop('SIGKILL')
      server = await startRole(await serverArgs())
      assert.equal((await parley(['network', 'init', '--login', String(server.ready.url), '--out', networkFile])).code, 0)
      const login = await parley([...user('erin', 'login', 'erin_crash'), '--network', networkFile, '--password-stdin'], {
        input: PASSWORD
      })
      assert.equal(login.code, 0, login.stderr)
    })
  })
}

cliSuite('the embedded database (PGlite)', async () => [])

let pg: TestPostgres
before(async () => {
  pg = await testPostgres()
})
after(async () => {
  await pg?.stop()
})
let pgUrl: string | undefined
cliSuite('PostgreSQL (--db)', async () => {
  pgUrl ??= (await freshDatabase(pg.url)).url
  return ['--db', pgUrl]
})

// The same acceptance through a partitioned cluster: `parley db cluster up`, then the login server with --db
// pointing at its pgBouncer, unchanged.
let cluster: RunningRole | undefined
let clusterDir: string | undefined
after(async () => {
  assert.equal(await cluster?.stop(), 0, 'the cluster shuts down cleanly')
  if (clusterDir !== undefined) await rm(clusterDir, { recursive: true, force: true })
})
cliSuite('the PL/Proxy cluster through pgBouncer (--db)', async () => {
  if (cluster === undefined) {
    clusterDir = await tempDir('parley-cli-cluster-')
    cluster = await startRole(['db', 'cluster', 'up', '--data', join(clusterDir, 'cluster'), '--partitions', '2'], { timeoutMs: 120_000 })
    assert.match(String(cluster.ready.url), /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/parley$/)
    assert.equal((cluster.ready.partitions as string[]).length, 2)
  }
  return ['--db', String(cluster.ready.url)]
})

describe('parley CLI usage', () => {
  it('exits 2 on bad usage and never takes a password as an argument', async () => {
    for (const args of [['bogus-command'], ['login'], ['login', 'alice_1', '--password', 'secret'], ['account', 'register']]) {
      const r = await parley(args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^parley: .+\n$/)
    }
  })

  it('tells a user without a network what to do', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-cli-'))
    try {
      const r = await parley(['login', 'alice_1', '--data', dir, '--password-stdin'], { input: PASSWORD })
      assert.equal(r.code, 1)
      assert.match(r.stderr, /no network yet: pass --network FILE/)
      const down = await parley(['network', 'init', '--login', 'http://127.0.0.1:1', '--out', join(dir, 'n.json')])
      assert.equal(down.code, 1)
      assert.match(down.stderr, /cannot reach the login server .*\(NETWORK\)/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses a network file whose key id does not belong to its key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-cli-'))
    try {
      const file = join(dir, 'network.json')
      const publicKey = toBase64Url(new Uint8Array(32).fill(3))
      await writeFile(
        file,
        JSON.stringify({ version: 1, login: 'http://127.0.0.1:1', keys: [{ id: 'AAAAAAAAAAAA', publicKey }], seeds: [] })
      )
      const r = await parley(['whoami', '--data', dir, '--network', file])
      assert.equal(r.code, 0, 'not logged in: whoami does not need the network')
      const login = await parley(['login', 'alice_1', '--data', dir, '--network', file, '--password-stdin'], { input: PASSWORD })
      assert.equal(login.code, 1)
      assert.match(login.stderr, /network file: trusted key id "AAAAAAAAAAAA" is not the id of its key \(BAD_CONFIG\)/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('prints help', async () => {
    const r = await parley(['--help'])
    assert.equal(r.code, 0)
    assert.match(r.stdout, /parley login-server --data DIR/)
  })
})
