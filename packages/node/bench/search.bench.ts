// History search over a large chat database: 1,000,000 chat lines stored
// through ChatStore.add (the same path as a received envelope: the envelope
// row, the chat line, the FTS5 index through its trigger, each add its own
// transaction) in 50 conversations, then p50/p99 of search() for words of
// different frequency (limit 20, the local API's default) and of history()
// (limit 50, the API's default, and 1,000, its maximum).
//
// Envelopes: a few thousand are really signed (Ed25519, by the user's and the
// contacts' device keys); the million are copies of those with a fresh random
// id, the conversation's next Lamport time, a time and a new text, encoded
// again: their signatures no longer match (the store does not check them;
// the receiving path checks before it stores). Texts are 3 to 15 words drawn
// from a Zipf (s = 1) vocabulary of 30,000 made-up words, seeded, so runs are
// alike; one word is put into exactly 3 lines.
//
// The database is a file (WAL, synchronous=FULL, as the daemon's chat.sqlite):
// by default in /dev/shm (tmpfs: fsync costs nothing, so the million adds take
// minutes, not the better part of an hour), `--dir` for another folder. The
// cost of add() with a real fsync is measured apart on a small file in the
// system's temporary folder. Queries run on a fresh ChatStore opened on the
// finished file, with the operating system's page cache warm.
// Prints one JSON object on stdout.
//   node packages/node/bench/search.bench.ts [--messages N] [--dir PATH]
import { existsSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateKeyPair, type KeyPair, peerIdOf } from '@parley/crypto'
import { directConversation, type Envelope, encodeEnvelope, signEnvelope } from '@parley/messaging'
import { progressFor, rate } from '@parley/testing'
import { ChatStore } from '../src/index.ts'
import { latency } from './chat-support.ts'

const progress = progressFor('search')
const { values: flags } = parseArgs({
  options: {
    messages: { type: 'string', default: '1000000' },
    dir: { type: 'string' },
    'fsync-sample': { type: 'string', default: '3000' }
  }
})
const MESSAGES = Number(flags.messages)
const CONVERSATIONS = 50
const SIGNED = 2_000
const VOCABULARY = 30_000
const FSYNC_SAMPLE = Number(flags['fsync-sample'])
/** Each query runs this many times, or for this long, whichever comes first. */
const REPEATS = 200
const QUERY_BUDGET_MS = 30_000
const ME = 'search_bench_me'
const UNIQUE_WORD = 'quetzalcoatlus'
const UNIQUE_LINES = 3

const load = (): number[] => loadavg().map((n) => Number(n.toFixed(2)))

/** mulberry32: a small seeded generator, so every run stores the same texts. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const random = seeded(4)
const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'pa', 'do', 'fi', 'gu', 'he', 'ja', 'bo', 'cy', 'wu', 'xa', 'ye']

/** Made-up words of 2 to 4 syllables, distinct, rank 0 the most frequent. */
function vocabulary(n: number): string[] {
  const words = new Set<string>()
  while (words.size < n) {
    const syllables = 2 + Math.floor(random() * 3)
    let w = ''
    for (let i = 0; i < syllables; i++) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)]
    if (w !== UNIQUE_WORD) words.add(w)
  }
  return [...words]
}

/** Draws ranks with probability 1/(rank+1), normalised (Zipf, s = 1). */
function zipf(n: number): () => number {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let r = 0; r < n; r++) {
    sum += 1 / (r + 1)
    cdf[r] = sum
  }
  return () => {
    const x = random() * sum
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((cdf[mid] as number) < x) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

async function timeQueries(run: () => unknown): Promise<{ times: number[]; results: number }> {
  const times: number[] = []
  let results = 0
  const started = performance.now()
  while (times.length < REPEATS && performance.now() - started < QUERY_BUDGET_MS) {
    const t = performance.now()
    const out = run()
    times.push(performance.now() - t)
    results = Array.isArray(out) ? out.length : 0
    // Let the event loop breathe between queries, as a daemon answering API calls would.
    await new Promise((r) => setImmediate(r))
  }
  return { times, results }
}

/** add() with a real fsync: a small database in the system's temporary folder. */
async function fsyncSample(templates: Envelope[]): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-search-fsync-'))
  try {
    const store = new ChatStore(join(dir, 'chat.sqlite'))
    const times: number[] = []
    for (let i = 0; i < FSYNC_SAMPLE; i++) {
      const e = templates[i % templates.length] as Envelope
      const copy = { ...e, id: Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url') }
      const t = performance.now()
      store.add(copy, encodeEnvelope(copy))
      times.push(performance.now() - t)
    }
    store.close()
    const total = times.reduce((a, b) => a + b, 0)
    return { folder: tmpdir(), adds: FSYNC_SAMPLE, addsPerSecond: rate(FSYNC_SAMPLE / (total / 1000)), add: latency(times) }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const started = performance.now()
const loadAtStart = load()
const base = flags.dir ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir())
const dir = await mkdtemp(join(base, 'parley-search-bench-'))
const path = join(dir, 'chat.sqlite')
try {
  // Who writes: this user and 50 contacts, each with a device key.
  const contacts = Array.from({ length: CONVERSATIONS }, (_, i) => `contact_${String(i).padStart(2, '0')}_bench`)
  const devices = new Map<string, KeyPair>([ME, ...contacts].map((n) => [n, generateKeyPair()]))
  const deviceIds = new Map([...devices].map(([n, d]) => [n, peerIdOf(d.publicKey)]))
  const convs = contacts.map((c) => directConversation(ME, c))
  const words = vocabulary(VOCABULARY)
  const draw = zipf(VOCABULARY)
  const line = (): number[] => Array.from({ length: 3 + Math.floor(random() * 13) }, draw)

  progress(`signing ${SIGNED} envelopes`)
  const signStarted = performance.now()
  // Per conversation, lines by this user and by the contact, really signed; the million copy their signatures.
  const templates: Envelope[] = []
  for (let i = 0; i < SIGNED; i++) {
    const c = i % CONVERSATIONS
    const from = i % 2 === 0 ? ME : (contacts[c] as string)
    const text = line()
      .map((r) => words[r])
      .join(' ')
    templates.push(
      signEnvelope({ conv: convs[c] as string, kind: 'text', from, lamport: i + 1, body: { text } }, devices.get(from) as KeyPair)
    )
  }
  const signMs = performance.now() - signStarted

  // The query words: by rank in the vocabulary, and how many lines hold each (counted while the lines are made).
  const tracked = { common: 0, frequent: 9, medium: 99, uncommon: 999, rare: VOCABULARY - 1 }
  const lines = Object.fromEntries(Object.keys(tracked).map((k) => [k, 0])) as Record<keyof typeof tracked, number>
  const uniqueAt = new Set(Array.from({ length: UNIQUE_LINES }, (_, i) => Math.floor(((i + 0.5) * MESSAGES) / UNIQUE_LINES)))

  progress(`storing ${MESSAGES} lines in ${path}`)
  const store = new ChatStore(path)
  const lamports = new Array<number>(CONVERSATIONS).fill(0)
  const sentAt0 = Date.now() - MESSAGES * 1000
  const ids = new Uint8Array(16 * 4096)
  const checkpoints: Array<{ stored: number; addsPerSecond: number }> = []
  let textBytes = 0
  const buildStarted = performance.now()
  let windowStarted = buildStarted
  for (let i = 0; i < MESSAGES; i++) {
    if (i % 4096 === 0) crypto.getRandomValues(ids)
    const c = i % CONVERSATIONS
    const template = templates[i % SIGNED] as Envelope
    const from = random() < 0.5 ? ME : (contacts[c] as string)
    const ranks = line()
    for (const [k, r] of Object.entries(tracked) as Array<[keyof typeof tracked, number]>) if (ranks.includes(r)) lines[k]++
    let text = ranks.map((r) => words[r]).join(' ')
    if (uniqueAt.has(i)) text += ` ${UNIQUE_WORD}`
    textBytes += text.length
    const envelope: Envelope = {
      ...template,
      id: Buffer.from(ids.subarray((i % 4096) * 16, (i % 4096) * 16 + 16)).toString('base64url'),
      conv: convs[c] as string,
      from,
      device: deviceIds.get(from) as string,
      lamport: ++(lamports[c] as number),
      sentAt: sentAt0 + i * 1000,
      body: { text }
    }
    store.add(envelope, encodeEnvelope(envelope), from === ME ? 'delivered' : 'received')
    if ((i + 1) % 100_000 === 0 || i + 1 === MESSAGES) {
      const now = performance.now()
      const inWindow = (i + 1) % 100_000 === 0 ? 100_000 : (i + 1) % 100_000
      checkpoints.push({ stored: i + 1, addsPerSecond: rate(inWindow / ((now - windowStarted) / 1000)) })
      windowStarted = now
      progress(`${i + 1} stored (${checkpoints.at(-1)?.addsPerSecond} adds/s lately), load ${load().join(' ')}`)
    }
  }
  const buildMs = performance.now() - buildStarted
  store.close()
  const fileBytes = ['', '-wal', '-shm'].reduce((n, suffix) => n + (existsSync(path + suffix) ? statSync(path + suffix).size : 0), 0)

  progress('queries on a fresh store')
  const reader = new ChatStore(path)
  const search: Record<string, unknown> = {}
  const queries: Array<[string, string, number | null]> = [
    ...(Object.entries(tracked) as Array<[keyof typeof tracked, number]>).map(
      ([k, r]) => [k, words[r] as string, lines[k]] as [string, string, number | null]
    ),
    ['unique', UNIQUE_WORD, UNIQUE_LINES],
    ['absent', 'nonexistentword', 0],
    ['twoWordsCommonAndUncommon', `${words[tracked.common]} ${words[tracked.uncommon]}`, null]
  ]
  const loadBefore = load()
  for (const [label, query, holding] of queries) {
    const { times, results } = await timeQueries(() => reader.search(query, 20))
    search[label] = { query, linesHolding: holding, results, ...latency(times) }
    progress(`search ${label} (${query}, ${holding ?? '?'} lines): p50 ${(search[label] as { p50Ms: number }).p50Ms} ms`)
  }
  let k = 0
  const history50 = await timeQueries(() => reader.history(convs[k++ % CONVERSATIONS] as string, 50))
  const history1000 = await timeQueries(() => reader.history(convs[k++ % CONVERSATIONS] as string, 1_000))
  const loadAfter = load()
  reader.close()

  progress(`add() with fsync: ${FSYNC_SAMPLE} adds in ${tmpdir()}`)
  const fsync = await fsyncSample(templates)

  const result = {
    bench: 'search',
    note: 'one process on 2 shared cores (others run tests: timings are noisy); node:sqlite (SQLite with FTS5), queries through ChatStore.search/history',
    database: {
      file: path,
      filesystem: base === '/dev/shm' ? 'tmpfs (/dev/shm): fsync costs nothing' : base,
      journal: 'WAL, synchronous=FULL (ChatStore defaults)',
      bytes: fileBytes,
      mib: rate(fileBytes / 2 ** 20)
    },
    generation: {
      signedEnvelopes: SIGNED,
      signSeconds: Number((signMs / 1000).toFixed(2)),
      how: 'copies of the signed envelopes with a fresh random id, the next Lamport time, a time and a new text, encoded again (signatures no longer match; ChatStore.add does not check them)',
      texts: `3 to 15 words from a Zipf (s = 1) vocabulary of ${VOCABULARY} made-up words (seeded); mean ${Math.round(textBytes / MESSAGES)} characters`,
      conversations: CONVERSATIONS
    },
    build: {
      messages: MESSAGES,
      seconds: Number((buildMs / 1000).toFixed(1)),
      addsPerSecond: rate(MESSAGES / (buildMs / 1000)),
      byHundredThousand: checkpoints
    },
    addWithFsync: fsync,
    search: { limit: 20, repeats: `${REPEATS} or ${QUERY_BUDGET_MS / 1000} s per query, whichever first`, ...search },
    history: {
      limit50: { results: history50.results, ...latency(history50.times) },
      limit1000: { results: history1000.results, ...latency(history1000.times) }
    },
    loadAverage: { start: loadAtStart, queriesBefore: loadBefore, queriesAfter: loadAfter, end: load() },
    seconds: Number(((performance.now() - started) / 1000).toFixed(1))
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
process.exit(0)
