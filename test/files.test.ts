// File transfer through the real `parley` program: a login server, a
// supernode and two user daemons as processes on loopback, driven by
// `parley send-file` and `parley files` as a user would; the receiving daemon
// is killed (SIGKILL) in the middle of a transfer and started again; with the machine's policy naming a clamd,
// the EICAR test file is quarantined and both users' `parley files list` say so; a folder and a file go in one offer.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parley } from '@parley/testing'
import { EICAR, EICAR_SIGNATURE, startClamd } from '../packages/node/test/clamd.ts'
import { befriend, cliIn, type SmallNetwork, startSmallNetwork, until } from './support.ts'

const PASSWORD = 'files test password 8'
let dir: string
let network: SmallNetwork
const cli = cliIn(() => dir)

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(path) as AsyncIterable<Buffer>) hash.update(piece)
  return hash.digest('hex')
}

type Transfer = {
  id: string
  direction: string
  state: string
  bytes: number
  total: number
  reason: string | null
  infected: Array<{ path: string; signature: string }>
}
const transfers = async (profile: string): Promise<Transfer[]> => (await cli(profile, ['files', 'list'])).transfers as Transfer[]

describe('two users send each other files from the command line', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-files-cli-'))
    // The machine's policy, read by the daemons at each offer and before files are moved into place: none yet.
    process.env.PARLEY_POLICY = join(dir, 'policy.json')
    network = await startSmallNetwork(dir, {
      password: PASSWORD,
      supernodes: [['sn', 'files_super']],
      users: [
        ['alice', 'alice_fx'],
        ['bob', 'bob_fx']
      ]
    })
    for (const profile of ['alice', 'bob']) await network.daemon(profile)
    await befriend(() => dir, ['alice', 'alice_fx'], ['bob', 'bob_fx'])
  })
  after(async () => {
    await network.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('sends a file: offered, accepted into a folder, there whole; and resumes after the receiver is killed mid-transfer', async () => {
    const file = join(dir, 'video.bin')
    // 128 MiB, written in pieces (the test's own memory stays small too): long enough to be killed in the middle.
    for (let i = 0; i < 128; i++) await writeFile(file, randomBytes(1024 * 1024), { flag: 'a' })
    const sent = await cli('alice', ['send-file', 'bob_fx', file])
    assert.equal(sent.state, 'offered')
    assert.equal(sent.bytes, 128 * 1024 * 1024)
    const [offer] = await until(
      'bob has the offer',
      () => transfers('bob'),
      (t) => t.some((x) => x.id === sent.id && x.state === 'offered')
    )
    assert.equal(offer?.direction, 'incoming')
    const target = join(dir, 'downloads')
    await mkdir(target)
    await cli('bob', ['files', 'accept', String(sent.id), '--to', target])
    // Killed as soon as part of the file is on bob's disk.
    const partial = join(target, '.parley-incoming', String(sent.id), '0')
    await until(
      'part of the file arrives',
      async () => (await stat(partial).catch(() => undefined))?.size ?? 0,
      (size) => size > 0,
      20_000
    )
    await network.daemons.get('bob')?.stop('SIGKILL')
    const kept = (await stat(partial)).size
    assert.ok(kept > 0 && kept < 128 * 1024 * 1024, `killed mid-transfer with ${kept} bytes on disk`)
    await network.daemon('bob')
    await until(
      'done after the restart',
      () => transfers('bob'),
      (t) => t.some((x) => x.id === sent.id && x.state === 'done'),
      120_000
    )
    assert.equal(await sha256(join(target, 'video.bin')), await sha256(file))
    assert.deepEqual(await readdir(target), ['video.bin'], 'nothing left behind')
    await until(
      'alice sees it done',
      () => transfers('alice'),
      (t) => t.some((x) => x.id === sent.id && x.state === 'done')
    )
  })

  it('resumes after the sender is killed mid-transfer and started again, from the last verified byte', async () => {
    const file = join(dir, 'video.bin')
    const total = (await stat(file)).size
    const sent = await cli('alice', ['send-file', 'bob_fx', file])
    await until(
      'bob has the offer',
      () => transfers('bob'),
      (t) => t.some((x) => x.id === sent.id && x.state === 'offered')
    )
    const target = join(dir, 'downloads-again')
    await cli('bob', ['files', 'accept', String(sent.id), '--to', target])
    const partial = join(target, '.parley-incoming', String(sent.id), '0')
    const size = async (): Promise<number> => (await stat(partial).catch(() => undefined))?.size ?? -1
    await until('part of the file arrives', size, (n) => n > 0, 20_000)
    await network.daemons.get('alice')?.stop('SIGKILL')
    const atKill = await size()
    assert.ok(atKill > 0 && atKill < total, `the sender killed mid-transfer, ${atKill} bytes at the recipient`)
    // What the recipient has (every byte verified on arrival) is never fetched again: its partial file only grows.
    const sizes: number[] = []
    const watch = setInterval(() => {
      void size().then((n) => sizes.push(n))
    }, 50)
    try {
      // The sender's offer, with where its file is read from, is on its disk (files.sqlite): the restarted daemon serves it.
      await network.daemon('alice')
      await until(
        'done after the sender restarts',
        () => transfers('bob'),
        (t) => t.some((x) => x.id === sent.id && x.state === 'done'),
        120_000
      )
    } finally {
      clearInterval(watch)
    }
    const seen = sizes.filter((n) => n >= 0)
    assert.ok(seen.length > 0 && Math.min(...seen) >= atKill, `resumed from ${Math.min(...seen)}, not below ${atKill}`)
    assert.equal(await sha256(join(target, 'video.bin')), await sha256(file))
    assert.deepEqual(await readdir(target), ['video.bin'], 'nothing left behind')
    await until(
      'alice sees it done',
      () => transfers('alice'),
      (t) => t.some((x) => x.id === sent.id && x.state === 'done')
    )
  })

  it('the policy names a clamd: the EICAR test file is quarantined in the profile, and both sides list it so', async () => {
    const clamd = await startClamd()
    try {
      await writeFile(join(dir, 'policy.json'), JSON.stringify({ files: { clamd: clamd.socket } }))
      const file = join(dir, 'eicar.com')
      await writeFile(file, EICAR)
      const sent = await cli('alice', ['send-file', 'bob_fx', file])
      await until(
        'bob has the offer',
        () => transfers('bob'),
        (t) => t.some((x) => x.id === sent.id && x.state === 'offered')
      )
      const target = join(dir, 'scanned')
      await cli('bob', ['files', 'accept', String(sent.id), '--to', target])
      const signature = `${EICAR_SIGNATURE}.UNOFFICIAL`
      for (const profile of ['bob', 'alice']) {
        const [t] = (
          await until(
            `${profile} lists it quarantined`,
            () => transfers(profile),
            (list) => list.some((x) => x.id === sent.id && x.state === 'quarantined')
          )
        ).filter((x) => x.id === sent.id)
        assert.deepEqual(t?.infected, [{ path: 'eicar.com', signature }], profile)
      }
      const human = await parley(['files', 'list', '--data', join(dir, 'bob')])
      assert.match(human.stdout, new RegExp(`${String(sent.id)}  quarantined .*${signature.replaceAll('.', '\\.')}`))
      assert.deepEqual(await readdir(target), [])
      assert.deepEqual(await readFile(join(dir, 'bob', 'quarantine', String(sent.id), 'eicar.com')), EICAR)
    } finally {
      await rm(join(dir, 'policy.json'), { force: true })
      await clamd.stop()
    }
  })

  it('a folder and a file in one offer from the command line: the folder arrives as it was', async () => {
    const folder = join(dir, 'project')
    await mkdir(join(folder, 'src', 'lib'), { recursive: true })
    await writeFile(join(folder, 'README'), 'read me\n')
    await writeFile(join(folder, 'src', 'main.c'), randomBytes(3 * 1024 * 1024 + 1))
    await writeFile(join(folder, 'src', 'lib', 'util.c'), randomBytes(4096))
    const extra = join(dir, 'notes.txt')
    await writeFile(extra, 'and a note\n')
    const sent = await cli('alice', ['send-file', 'bob_fx', folder, extra])
    assert.equal(sent.state, 'offered')
    await until(
      'bob has the offer',
      () => transfers('bob'),
      (t) => t.some((x) => x.id === sent.id && x.state === 'offered')
    )
    const target = join(dir, 'received-project')
    await cli('bob', ['files', 'accept', String(sent.id), '--to', target])
    await until(
      'done',
      () => transfers('bob'),
      (t) => t.some((x) => x.id === sent.id && x.state === 'done')
    )
    for (const name of ['project/README', 'project/src/main.c', 'project/src/lib/util.c', 'notes.txt'])
      assert.equal(await sha256(join(target, name)), await sha256(join(dir, name)), name)
    const human = await parley(['files', 'list', '--data', join(dir, 'bob')])
    assert.match(human.stdout, new RegExp(`${String(sent.id)}  done  from alice_fx  4 files`))
  })

  it('the web client uploads a file to offer: streamed to the profile, offered, and gone from there once delivered', async () => {
    const api = JSON.parse(await readFile(join(dir, 'alice', 'api.json'), 'utf8')) as { url: string; token: string }
    const upload = (query: string, body: Buffer, type = 'application/octet-stream'): Promise<Response> =>
      fetch(`${api.url}/v1/files/upload?${query}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${api.token}`, 'content-type': type },
        body: new Uint8Array(body)
      })
    const photo = randomBytes(3 * 1024 * 1024 + 17)
    const response = await upload('to=bob_fx&name=holiday%20photo.jpg', photo)
    assert.equal(response.status, 200, await response.clone().text())
    const { transfer } = (await response.json()) as { transfer: { id: string; total: number; files: Array<{ path: string }> } }
    assert.equal(transfer.total, photo.length)
    assert.deepEqual(
      transfer.files.map((f) => f.path),
      ['holiday photo.jpg']
    )
    const target = join(dir, 'from-browser')
    await mkdir(target)
    await until(
      'bob has the offer',
      () => transfers('bob'),
      (t) => t.some((x) => x.id === transfer.id && x.state === 'offered')
    )
    await cli('bob', ['files', 'accept', transfer.id, '--to', target])
    await until(
      'done on both sides',
      async () => [...(await transfers('bob')), ...(await transfers('alice'))].filter((x) => x.id === transfer.id),
      (t) => t.length === 2 && t.every((x) => x.state === 'done'),
      30_000
    )
    assert.deepEqual(await readFile(join(target, 'holiday photo.jpg')), photo)
    // A name that is a path, an empty body type or another type: refused with a reason.
    for (const [query, type] of [
      ['to=bob_fx&name=..%2Fescape', 'application/octet-stream'],
      ['to=bob_fx&name=%2Fetc%2Fpasswd', 'application/octet-stream'],
      ['to=bob_fx&name=note.txt', 'text/plain']
    ] as const) {
      const refused = await upload(query, Buffer.from([1, 2, 3]), type)
      assert.ok(refused.status === 400 || refused.status === 415, `${query} ${type}: ${refused.status}`)
    }
    // The next upload sweeps the folders of transfers that have ended: only the new one is left.
    const again = await upload('to=bob_fx&name=second.bin', randomBytes(1024))
    assert.equal(again.status, 200)
    await until(
      "the delivered upload is gone from alice's profile",
      async () => await readdir(join(dir, 'alice', 'uploads')),
      (entries) => entries.length === 1
    )
  })

  it('says clearly when an offer cannot be made', async () => {
    const missing = await parley(['send-file', 'bob_fx', join(dir, 'no-such-file'), '--data', join(dir, 'alice')])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /does not exist/)
    const stranger = await parley(['send-file', 'nobody_here', join(dir, 'video.bin'), '--data', join(dir, 'alice')])
    assert.equal(stranger.code, 1)
    assert.match(stranger.stderr, /did not take the offer/)
  })
})
