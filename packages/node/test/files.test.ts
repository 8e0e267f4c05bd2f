import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { generateKeyPair, type KeyPair } from '@parley/crypto'
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
  peer.files = new FileService({
    node,
    chat,
    store: reuse.files ?? new FileStore(':memory:'),
    me: () => name,
    emit,
    policy: () => peer.policy
  })
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
    assert.ok(tom.events.some((e) => e.type === 'file.progress'))
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
