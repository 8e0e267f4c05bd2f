import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { generateKeyPair, type KeyPair } from '@parley/crypto'
import { LIMITS } from '@parley/protocol'
import { testNetwork } from '@parley/testing'
import {
  ChatService,
  ChatStore,
  FILE_PROTOCOL,
  type FilePolicy,
  FileService,
  FileStore,
  type ParleyNode,
  pathProblem
} from '../src/index.ts'
import { EICAR, EICAR_SIGNATURE, type RunningClamd, startClamd } from './clamd.ts'
import { befriend, startLoopbackNode, until } from './support.ts'

// File transfer between in-process peers on loopback TCP: real libp2p streams, real files on disk.

const network = testNetwork()
let seed: ParleyNode
let dir: string
const peers: Peer[] = []

interface Peer {
  name: string
  node: ParleyNode
  chat: ChatService
  files: FileService
  /** A new file service for this peer, on the same node and stores (one stopped cannot start again). */
  newFiles(): FileService
  events: Array<{ type: string; data: Record<string, unknown> }>
  policy: FilePolicy
  stop(): Promise<void>
}

async function startPeer(name: string, reuse: { device?: KeyPair; chat?: ChatStore; files?: FileStore } = {}): Promise<Peer> {
  const device = reuse.device ?? generateKeyPair()
  const node = await startLoopbackNode(network, name, { seed, device })
  const events: Peer['events'] = []
  const emit = (type: string, data: object): void => {
    events.push({ type, data: data as Record<string, unknown> })
  }
  const chat = new ChatService({ node, store: reuse.chat ?? new ChatStore(':memory:'), device, me: () => name, emit })
  await chat.start()
  const peer = { name, node, chat, events, policy: { enabled: true, maxBytes: null, source: 'test' } } as Peer
  const store = reuse.files ?? new FileStore(':memory:')
  peer.newFiles = () =>
    new FileService({ node, chat, store, me: () => name, emit, policy: () => peer.policy, quarantine: join(dir, `${name}-quarantine`) })
  peer.files = peer.newFiles()
  await peer.files.start()
  peer.stop = async () => {
    await peer.files.stop()
    await chat.stop()
    await node.stop()
  }
  peers.push(peer)
  return peer
}

const sha = async (path: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex')

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-files-'))
  seed = await startLoopbackNode(network, 'files_supernode')
})

after(async () => {
  for (const p of peers) await p.stop().catch(() => {})
  await seed.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('sending files between two devices', () => {
  let sam: Peer
  let tom: Peer

  before(async () => {
    sam = await startPeer('sam_files')
    tom = await startPeer('tom_files')
    await befriend(sam, tom)
  })

  it('a folder with files: offered, accepted into a folder, each checked by SHA-256 and moved into place', async () => {
    const source = join(dir, 'holiday')
    await mkdir(join(source, 'notes'), { recursive: true })
    await writeFile(join(source, 'photo.jpg'), randomBytes(3 * 1024 * 1024 + 12_345))
    await writeFile(join(source, 'notes', 'list.txt'), 'sun, sea, sand\n')
    await writeFile(join(source, 'empty'), '')
    const offer = await sam.files.send('tom_files', [source])
    assert.equal(offer.files.length, 3)
    assert.match(offer.id, /^[0-9a-f]{36}$/, 'an id a command line takes as it is (never starting with -)')
    await until('tom has the offer', () => tom.files.get(offer.id)?.state === 'offered')
    const target = join(dir, 'tom-downloads')
    await tom.files.accept(offer.id, target)
    await until('done', () => tom.files.get(offer.id)?.state === 'done')
    for (const name of ['photo.jpg', join('notes', 'list.txt'), 'empty'])
      assert.equal(await sha(join(target, 'holiday', name)), await sha(join(source, name)), name)
    assert.deepEqual((await readdir(target)).sort(), ['holiday'], 'nothing left behind but the files')
    assert.equal(tom.files.get(offer.id)?.bytes, offer.total)
    await until('the sender sees it done', () => sam.files.get(offer.id)?.state === 'done')
    const progress = tom.events.filter((e) => e.type === 'file.progress' && e.data.id === offer.id).map((e) => e.data)
    assert.ok(progress.length > 0)
    // Bytes and rate as they are (a rate counted twice showed gigabytes a second on loopback).
    for (const p of progress) assert.ok(Number(p.bytes) <= offer.total && Number(p.rate) < 2e9, JSON.stringify(p))
  })

  it('an offer that finds the recipient unreachable for a moment is made again, and reaches it', async () => {
    const source = join(dir, 'moment.txt')
    await writeFile(source, 'made again\n')
    // Tom's device takes no file stream for about a second (as while a relayed connection is made again).
    await tom.files.stop()
    const back = new Promise<void>((resolve) =>
      setTimeout(() => {
        tom.files = tom.newFiles()
        void tom.files.start().then(resolve)
      }, LIMITS.files.offerRetryMs / 2)
    )
    const started = performance.now()
    const offer = await sam.files.send('tom_files', [source])
    await back
    assert.ok(performance.now() - started >= LIMITS.files.offerRetryMs / 2, 'made again after the first attempt failed')
    await until('tom has the offer', () => tom.files.get(offer.id)?.state === 'offered')
  })

  it('resumes after the receiver dies mid-transfer, from the last verified chunk', async () => {
    const file = join(dir, 'big.bin')
    await writeFile(file, randomBytes(24 * 1024 * 1024))
    const tomDevice = generateKeyPair()
    const stores = { chat: new ChatStore(':memory:'), files: new FileStore(':memory:') }
    let tom2 = await startPeer('tom_files', { device: tomDevice, ...stores })
    // A new device of tom's catches up from his other devices (contacts included), as a daemon does when it starts.
    await tom2.chat.catchUp()
    const offer = await sam.files.send('tom_files', [file])
    await until('the second device has the offer', () => tom2.files.get(offer.id)?.state === 'offered')
    const target = join(dir, 'tom2-downloads')
    // Killed at its first progress report: a few chunks in.
    const killed = new Promise<void>((resolve) => {
      const watch = setInterval(() => {
        if (tom2.events.some((e) => e.type === 'file.progress')) {
          clearInterval(watch)
          resolve()
        }
      }, 1)
    })
    await tom2.files.accept(offer.id, target)
    await killed
    await tom2.stop()
    peers.splice(peers.indexOf(tom2), 1)
    assert.notEqual(stores.files.get(offer.id, 'incoming')?.state, 'done')
    tom2 = await startPeer('tom_files', { device: tomDevice, ...stores })
    await tom2.chat.catchUp()
    await until('done after the restart', () => tom2.files.get(offer.id)?.state === 'done', 30_000).catch((err) => {
      console.error(JSON.stringify(tom2.events.filter((e) => e.type !== 'file.progress').slice(-4)))
      throw err
    })
    assert.equal(await sha(join(target, 'big.bin')), await sha(file))
    const offsets = sam.events.filter((e) => e.type === 'file.serving' && e.data.id === offer.id).map((e) => e.data.offset as number)
    assert.ok(offsets.length >= 2 && (offsets.at(-1) as number) > 0, `resumed from a later offset: ${JSON.stringify(offsets)}`)
    // The second device goes: the tests below speak to tom's first device alone.
    await tom2.stop()
    peers.splice(peers.indexOf(tom2), 1)
  })

  it('two transfers at once to the same recipient share the way: neither starves', async () => {
    const size = 40 * 1024 * 1024
    const files = ['first.bin', 'second.bin'].map((name) => join(dir, name))
    for (const file of files) await writeFile(file, randomBytes(size))
    const offers = []
    for (const file of files) offers.push(await sam.files.send('tom_files', [file]))
    const ids = offers.map((o) => o.id)
    await until('tom has both offers', () => ids.every((id) => tom.files.get(id)?.state === 'offered'))
    const target = join(dir, 'tom-both')
    await Promise.all(ids.map(async (id) => await tom.files.accept(id, target)))
    const partial = (id: string): string => join(target, '.parley-incoming', id, '0')
    const have = async (id: string): Promise<number> =>
      ['done', 'failed'].includes(tom.files.get(id)?.state ?? '') ? size : ((await stat(partial(id)).catch(() => undefined))?.size ?? 0)
    // Watched as they go: when all of one has arrived, how much of the other has?
    let other = -1
    while (other < 0) {
      const [a, b] = await Promise.all(ids.map(have))
      if ((a as number) >= size || (b as number) >= size) other = Math.min(a as number, b as number)
      else await new Promise((r) => setTimeout(r, 5))
    }
    assert.ok(other >= size / 3, `when one transfer finished, the other had ${other} of ${size} bytes (a third at least)`)
    await until('both done', () => ids.every((id) => tom.files.get(id)?.state === 'done'), 30_000)
    for (const [i, file] of files.entries())
      assert.equal(await sha(join(target, ['first.bin', 'second.bin'][i] as string)), await sha(file))
  })

  it('several files and folders in one offer: symbolic links inside a folder are skipped, two files under one name refused', async () => {
    const album = join(dir, 'album')
    await mkdir(join(album, 'day1'), { recursive: true })
    await writeFile(join(album, 'day1', 'a.jpg'), randomBytes(70_000))
    await writeFile(join(album, 'cover.jpg'), randomBytes(1000))
    // A loop back to the folder, and a link to a file outside it: neither goes.
    await symlink(album, join(album, 'day1', 'loop'))
    await symlink(join(dir, 'big.bin'), join(album, 'outside.bin'))
    const notes = join(dir, 'notes.txt')
    await writeFile(notes, 'see the album\n')
    const offer = await sam.files.send('tom_files', [album, notes])
    assert.deepEqual(
      offer.files.map((f) => f.path),
      ['album/cover.jpg', 'album/day1/a.jpg', 'notes.txt']
    )
    await until('offered', () => tom.files.get(offer.id)?.state === 'offered')
    const target = join(dir, 'tom-album')
    await tom.files.accept(offer.id, target)
    await until('done', () => tom.files.get(offer.id)?.state === 'done')
    for (const name of ['album/cover.jpg', 'album/day1/a.jpg', 'notes.txt'])
      assert.equal(await sha(join(target, name)), await sha(join(dir, name)))
    assert.deepEqual(
      (await readdir(join(target, 'album'), { recursive: true })).sort(),
      ['cover.jpg', 'day1', join('day1', 'a.jpg')].sort()
    )
    // Two paths whose files would arrive under one name.
    await mkdir(join(dir, 'other'), { recursive: true })
    await writeFile(join(dir, 'other', 'NOTES.txt'), 'another')
    await assert.rejects(sam.files.send('tom_files', [notes, join(dir, 'other', 'NOTES.txt')]), /would both arrive as NOTES\.txt/)
  })

  it('a sender whose file changed under it (a lie about the hash): refused at the end, nothing moved into place', async () => {
    const file = join(dir, 'changing.txt')
    await writeFile(file, 'first version of the text, padded to a fixed size........')
    const offer = await sam.files.send('tom_files', [file])
    await writeFile(file, 'second version of the text, padded to a fixed size.......')
    await until('offered', () => tom.files.get(offer.id)?.state === 'offered')
    const target = join(dir, 'tom-changing')
    await tom.files.accept(offer.id, target)
    await until('failed', () => tom.files.get(offer.id)?.state === 'failed')
    assert.match(tom.files.get(offer.id)?.reason ?? '', /BAD_HASH/)
    assert.equal((await readdir(target)).includes('changing.txt'), false)
  })

  it('policy: off on the recipient, or a size cap, refuses the offer with the reason on both sides; off on the sender refuses at once', async () => {
    const file = join(dir, 'small.txt')
    await writeFile(file, 'hello')
    try {
      tom.policy = { enabled: false, maxBytes: null, source: '/etc/parley/policy.json' }
      await assert.rejects(sam.files.send('tom_files', [file]), /turned off on the recipient's machine/)
      tom.policy = { enabled: true, maxBytes: 3, source: '/etc/parley/policy.json' }
      await assert.rejects(sam.files.send('tom_files', [file]), /at most 3 bytes/)
      tom.policy = { enabled: true, maxBytes: null, source: 'test' }
      sam.policy = { enabled: false, maxBytes: null, source: '/etc/parley/policy.json' }
      await assert.rejects(sam.files.send('tom_files', [file]), /turned off on this machine/)
      // The sender's side keeps the refusal, with the reason.
      const refused = sam.files.list().find((t) => t.direction === 'outgoing' && t.state === 'refused')
      assert.match(refused?.reason ?? '', /POLICY/)
    } finally {
      tom.policy = { enabled: true, maxBytes: null, source: 'test' }
      sam.policy = { enabled: true, maxBytes: null, source: 'test' }
    }
  })

  it('refuses offers that try to escape the target folder, odd names, and strangers; nothing is written', async () => {
    for (const bad of ['../evil', '/etc/passwd', 'a/../../b', 'con', 'x\u0000y', 'trailing.', 'back\\slash', ''])
      assert.notEqual(pathProblem(bad), undefined, bad)
    assert.equal(pathProblem('holiday/notes/list.txt'), undefined)
    const connection = await sam.node.libp2p.dial(peerIdFromString(tom.node.peerId))
    assert.equal((await sam.node.hello.greet(connection)).ok, true)
    for (const path of ['../evil.txt', '/tmp/abs.txt']) {
      const stream = await connection.newStream(FILE_PROTOCOL)
      const lp = lpStream(stream)
      await lp.write(
        new TextEncoder().encode(
          JSON.stringify({ t: 'offer', id: randomBytes(18).toString('base64url'), files: [{ path, size: 1, sha256: '0'.repeat(64) }] })
        )
      )
      const answer = JSON.parse(new TextDecoder().decode((await lp.read()).subarray())) as { t: string; code?: string }
      assert.deepEqual([answer.t, answer.code], ['refused', 'BAD_PATH'], `${path}: ${JSON.stringify(answer)}`)
    }
    const stranger = await startPeer('uri_files')
    const file = join(dir, 'stranger.txt')
    await writeFile(file, 'hi')
    await assert.rejects(stranger.files.send('tom_files', [file]), /contacts only/)
  })
})

describe('virus scanning: each received file passes the clamd the policy names before it is moved into place', () => {
  let ann: Peer
  let ben: Peer
  let clamd: RunningClamd

  before(async () => {
    // A real clamd with the EICAR signature; not installed is a failure, not a skip (CI installs it).
    clamd = await startClamd()
    ann = await startPeer('ann_scans')
    ben = await startPeer('ben_scans')
    await befriend(ann, ben)
    ben.policy = { enabled: true, maxBytes: null, clamd: clamd.address, source: '/etc/parley/policy.json' }
  })
  after(async () => {
    await clamd?.stop()
  })

  /** Offered by ann, accepted by ben into `target`; resolves with the offer's id. */
  async function sendToBen(paths: string[], target: string): Promise<string> {
    const offer = await ann.files.send('ben_scans', paths)
    await until('ben has the offer', () => ben.files.get(offer.id)?.state === 'offered')
    await ben.files.accept(offer.id, target)
    return offer.id
  }

  it('the EICAR test file is quarantined on both sides, with the signature; nothing lands in the target folder', async () => {
    const source = join(dir, 'scan-eicar')
    await mkdir(source)
    await writeFile(join(source, 'invoice.com'), EICAR)
    const target = join(dir, 'ben-eicar')
    const id = await sendToBen([join(source, 'invoice.com')], target)
    await until('ben quarantined it', () => ben.files.get(id)?.state === 'quarantined')
    const signature = `${EICAR_SIGNATURE}.UNOFFICIAL`
    const mine = ben.files.get(id)
    assert.deepEqual(mine?.infected, [{ path: 'invoice.com', signature }])
    assert.match(mine?.reason ?? '', new RegExp(`invoice\\.com \\(${signature.replaceAll('.', '\\.')}\\)`))
    assert.deepEqual(await readdir(target), [], 'nothing in the target folder, not even the hidden partial folder')
    const quarantine = join(dir, 'ben_scans-quarantine')
    assert.equal((await stat(quarantine)).mode & 0o777, 0o700, 'the quarantine folder is private')
    const kept = join(quarantine, id, 'invoice.com')
    assert.deepEqual(await readFile(kept), EICAR, 'the infected file is kept in quarantine')
    assert.equal((await stat(kept)).mode & 0o777, 0o600)
    assert.ok(ben.events.some((e) => e.type === 'file.state' && e.data.id === id && e.data.state === 'quarantined'))
    assert.ok(
      ben.events.some((e) => e.type === 'file.scanned' && e.data.id === id && e.data.clean === false && e.data.signature === signature)
    )
    // The sender is told over the file protocol.
    await until('ann sees it quarantined', () => ann.files.get(id)?.state === 'quarantined')
    assert.deepEqual(ann.files.get(id)?.infected, [{ path: 'invoice.com', signature }])
    assert.match(ann.files.get(id)?.reason ?? '', /QUARANTINED by ben_scans's virus scanner/)
    assert.ok(ann.events.some((e) => e.type === 'file.state' && e.data.id === id && e.data.state === 'quarantined'))
    // A quarantined transfer is over: cancelling it changes nothing.
    assert.equal((await ben.files.cancel(id)).state, 'quarantined')
  })

  it('a clean file passes the scan and arrives; in a folder with an infected file, only that one is held back', async () => {
    const source = join(dir, 'scan-mixed')
    await mkdir(join(source, 'docs'), { recursive: true })
    const clean = randomBytes(2 * 1024 * 1024 + 5)
    await writeFile(join(source, 'docs', 'report.pdf'), clean)
    const target = join(dir, 'ben-clean')
    const cleanId = await sendToBen([join(source, 'docs', 'report.pdf')], target)
    await until('ben has the clean file', () => ben.files.get(cleanId)?.state === 'done')
    assert.deepEqual(await readFile(join(target, 'report.pdf')), clean)
    assert.ok(ben.events.some((e) => e.type === 'file.scanned' && e.data.id === cleanId && e.data.clean === true))
    await until('ann sees it done', () => ann.files.get(cleanId)?.state === 'done')
    await writeFile(join(source, 'docs', 'tool.exe'), EICAR)
    const mixed = join(dir, 'ben-mixed')
    const id = await sendToBen([source], mixed)
    await until('quarantined', () => ben.files.get(id)?.state === 'quarantined')
    assert.deepEqual(
      ben.files.get(id)?.infected.map((f) => f.path),
      ['scan-mixed/docs/tool.exe']
    )
    assert.deepEqual(await readdir(join(mixed, 'scan-mixed', 'docs')), ['report.pdf'])
  })

  it('scanning required and clamd unreachable: the file waits out of place, saying why, and lands once clamd answers', async () => {
    const file = join(dir, 'scan-wait.txt')
    await writeFile(file, 'a clean text that must be scanned first\n')
    ben.policy = { ...ben.policy, clamd: { path: join(dir, 'no-clamd-here.sock') } }
    const target = join(dir, 'ben-wait')
    try {
      const id = await sendToBen([file], target)
      await until('waiting for the scan', () => /waiting for the virus scan/.test(ben.files.get(id)?.reason ?? ''))
      const waiting = ben.files.get(id)
      assert.equal(waiting?.state, 'accepted')
      assert.equal(waiting?.bytes, waiting?.total, 'every byte is here and verified')
      assert.match(waiting?.reason ?? '', /no-clamd-here\.sock/)
      assert.deepEqual(await readdir(target), ['.parley-incoming'], 'nothing moved into place')
      ben.policy = { ...ben.policy, clamd: clamd.address }
      await until('done once clamd answers', () => ben.files.get(id)?.state === 'done', 20_000)
      assert.deepEqual(await readdir(target), ['scan-wait.txt'])
    } finally {
      ben.policy = { ...ben.policy, clamd: clamd.address }
    }
  })

  it('a file larger than clamd scans (its StreamMaxLength): failed on both sides with a clear reason, nothing kept', async () => {
    const small = await startClamd({ streamMaxLength: '1M' })
    const file = join(dir, 'scan-big.bin')
    await writeFile(file, randomBytes(3 * 1024 * 1024))
    ben.policy = { ...ben.policy, clamd: small.address }
    const target = join(dir, 'ben-big')
    try {
      const id = await sendToBen([file], target)
      await until('failed', () => ben.files.get(id)?.state === 'failed')
      assert.match(ben.files.get(id)?.reason ?? '', /^UNSCANNABLE: .*StreamMaxLength/)
      assert.deepEqual(await readdir(target), [])
      await until('ann sees it failed', () => ann.files.get(id)?.state === 'failed')
      assert.match(ann.files.get(id)?.reason ?? '', /^UNSCANNABLE on ben_scans's side/)
    } finally {
      ben.policy = { ...ben.policy, clamd: clamd.address }
      await small.stop()
    }
  })
})
