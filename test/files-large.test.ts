// Any size with flat memory: a 3 GiB file between two daemons (processes, through the `parley` program), the
// resident memory of both sampled from /proc during the whole transfer, and the file's SHA-256 checked at the end.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { befriend, cliIn, type SmallNetwork, startSmallNetwork, until } from './support.ts'

const PASSWORD = 'files large password 8'
const SIZE = 3 * 1024 * 1024 * 1024
/**
 * How far above its resident memory at the start a daemon may go while 3 GiB pass through it: a twelfth of the
 * file. Memory that grew with the file would pass it four times over; what a daemon really adds (V8's heap
 * settling, libp2p's and the file protocol's buffers: 90–120 MiB here) stays well under it on a busy machine.
 */
const RSS_GROWTH_MAX = 256 * 1024 * 1024
let dir: string
let network: SmallNetwork
const cli = cliIn(() => dir)

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) hash.update(piece)
  return hash.digest('hex')
}

/** A process's resident memory (VmRSS), bytes. */
async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]
  assert.ok(kb !== undefined, `no VmRSS for ${pid}`)
  return Number(kb) * 1024
}

type Transfer = { id: string; state: string; bytes: number; total: number; reason: string | null }
const transfers = async (profile: string): Promise<Transfer[]> => (await cli(profile, ['files', 'list'])).transfers as Transfer[]
const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`

describe('a 3 GiB file between two daemons, memory flat on both sides', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-files-large-'))
    network = await startSmallNetwork(dir, {
      password: PASSWORD,
      supernodes: [['sn', 'large_super']],
      users: [
        ['alice', 'alice_lg'],
        ['bob', 'bob_lg']
      ]
    })
    for (const profile of ['alice', 'bob']) await network.daemon(profile)
    await befriend(() => dir, ['alice', 'alice_lg'], ['bob', 'bob_lg'])
  })
  after(async () => {
    await network?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('sends 3 GiB: the SHA-256 matches, and neither daemon grows by more than 256 MiB', async () => {
    // Sparse: no disk and no time to make it; every byte is still read, hashed, sent, checked and written.
    const file = join(dir, 'disk.img')
    const handle = await open(file, 'w')
    await handle.truncate(SIZE)
    await handle.close()
    const pids = { sender: network.daemons.get('alice')?.child.pid, recipient: network.daemons.get('bob')?.child.pid }
    const start = { sender: await rss(pids.sender as number), recipient: await rss(pids.recipient as number) }
    const peak = { ...start }
    const sample = async (): Promise<void> => {
      for (const side of ['sender', 'recipient'] as const) peak[side] = Math.max(peak[side], await rss(pids[side] as number))
    }
    const sampler = setInterval(() => {
      void sample().catch(() => {})
    }, 100)
    const began = performance.now()
    let offeredMs = 0
    let doneMs = 0
    try {
      // The offer carries the file's SHA-256: the sender reads all 3 GiB once before it offers.
      const sent = await cli('alice', ['send-file', 'bob_lg', file])
      offeredMs = performance.now() - began
      await until(
        'bob has the offer',
        () => transfers('bob'),
        (t) => t.some((x) => x.id === sent.id && x.state === 'offered')
      )
      const target = join(dir, 'downloads')
      await mkdir(target)
      await cli('bob', ['files', 'accept', String(sent.id), '--to', target])
      const accepted = performance.now()
      const [t] = (
        await until(
          'bob has it all',
          () => transfers('bob'),
          (list) => list.some((x) => x.id === sent.id && (x.state === 'done' || x.state === 'failed')),
          280_000
        )
      ).filter((x) => x.id === sent.id)
      doneMs = performance.now() - accepted
      assert.equal(t?.state, 'done', t?.reason ?? '')
      await sample()
      assert.deepEqual(await readdir(target), ['disk.img'])
      assert.equal(await sha256(join(target, 'disk.img')), await sha256(file))
    } finally {
      clearInterval(sampler)
      console.log(
        JSON.stringify({
          bytes: SIZE,
          offerMs: Math.round(offeredMs),
          transferMs: Math.round(doneMs),
          mbPerSecond: doneMs > 0 ? Math.round(SIZE / 1e6 / (doneMs / 1000)) : null,
          rss: {
            sender: { start: mib(start.sender), peak: mib(peak.sender) },
            recipient: { start: mib(start.recipient), peak: mib(peak.recipient) }
          }
        })
      )
    }
    for (const side of ['sender', 'recipient'] as const)
      assert.ok(
        peak[side] - start[side] < RSS_GROWTH_MAX,
        `the ${side}'s daemon grew from ${mib(start[side])} to ${mib(peak[side])} (at most ${mib(RSS_GROWTH_MAX)} more)`
      )
  })
})
