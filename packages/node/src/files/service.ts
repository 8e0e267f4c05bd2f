import { createHash, type Hash, randomBytes } from 'node:crypto'
import { chmod, constants, copyFile, lstat, mkdir, open, readdir, rename, rm, rmdir, stat, truncate } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { LIMITS, ParleyError } from '@parley/protocol'
import type { ChatService } from '../chat/service.ts'
import { TokenBuckets } from '../mailbox/rate.ts'
import type { ParleyNode } from '../node.ts'
import { ClamdSizeLimitError, describeClamdAddress, scanFile } from './clamd.ts'
import { pathProblem, placeUnder } from './paths.ts'
import { type FilePolicy, readFilePolicy } from './policy.ts'
import { FINAL_STATES, type FileStore, type InfectedFile, type OfferedFile, type Transfer } from './store.ts'

/**
 * File transfer, device to device, on `/parley/file/1.0.0` (hello-verified
 * streams; through a relay when there is no direct path). Every stream starts
 * with one length-prefixed JSON message:
 *
 * - `{"t":"offer","id","files":[{"path","size","sha256"}]}` sender → each
 *   online device of the recipient; answered `{"t":"offered"}` or
 *   `{"t":"refused","code","message"}`. The recipient must be online, must
 *   not have blocked the sender, takes files from contacts only, and must
 *   accept (choosing a folder).
 * - `{"t":"get","id","file","offset"}` recipient → sender, once accepted (and
 *   again after a dropped connection or a restart of either side): answered
 *   `{"t":"sending","size"}` then binary frames, each the SHA-256 of a chunk
 *   and the chunk (LIMITS.files.chunkBytes, the last shorter), from `offset`
 *   (a chunk boundary) to the end, at most LIMITS.files.windowChunks ahead of
 *   the recipient, which answers each chunk it has written with
 *   `{"t":"more"}`; or refused.
 * - `{"t":"cancel","id","reason"}` either way.
 * - `{"t":"result","id","state","code"?,"message"?,"infected"?}` recipient →
 *   sender, once the transfer ended on the recipient's side: `done`,
 *   `quarantined` (with `infected`: each `{path, signature}` its virus
 *   scanner flagged) or `failed` (with a code and words); answered
 *   `{"t":"ok"}`. The sender's side then says the same.
 *
 * The recipient writes each file under a hidden folder of the target
 * (`.parley-incoming/ID/N`), keeps the hash of every chunk it verified beside
 * it, and on resume re-checks what it has against those before asking for
 * the rest; the SHA-256 of the whole file is checked at the end, then, where
 * the machine's policy names a clamd, every file is scanned, and only then is
 * a file moved into place (an infected one goes to the profile's quarantine
 * folder instead). Memory stays flat whatever the size.
 */
export const FILE_PROTOCOL = '/parley/file/1.0.0'

const HASH_BYTES = 32
const MORE = new TextEncoder().encode('{"t":"more"}')
const PARTIAL_DIR = '.parley-incoming'
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export interface FilesComponents {
  node: ParleyNode
  chat: ChatService
  store: FileStore
  me: () => string | undefined
  emit: (type: string, data: object) => void
  /** The machine's policy (read again for every offer, and before files are moved into place); default: `readFilePolicy()`. */
  policy?: () => FilePolicy
  /**
   * Where infected files are kept (made 0700): default `quarantine` in the
   * folder of the store's database (the profile). With neither (a store in
   * memory), infected files are deleted.
   */
  quarantine?: string
}

/** The virus scan the policy requires could not be made now: the files wait, verified, out of place. */
class ScanPendingError extends Error {
  override name = 'ScanPendingError'
}

type Control = Record<string, unknown> & { t: string }

export class FileService {
  readonly #c: FilesComponents
  readonly #offers = new TokenBuckets(LIMITS.files.offersPerMinute, LIMITS.files.offerBurst, LIMITS.chat.senderBuckets)
  /** Incoming transfers being fetched now. */
  readonly #active = new Set<string>()
  /** Incoming transfers whose files are all here and verified (by this run): a retry goes straight to the scan. */
  readonly #verified = new Set<string>()
  /**
   * Per incoming file (`ID/INDEX`) being fetched by this run: the bytes verified so far and the whole file's
   * SHA-256 fed with them, so that neither a resume nor the end reads again what is on disk (a restart does, once).
   */
  readonly #running = new Map<string, { bytes: number; whole: Hash }>()
  /** Outgoing sources: the SHA-256 of each chunk, computed with the whole file's for the offer (valid for this size and mtime). */
  readonly #chunkHashes = new Map<string, { size: number; mtimeMs: number; hashes: Buffer }>()
  /** Incoming transfers whose last attempt moved bytes before it failed: tried again at once, not at the next tick. */
  readonly #progressed = new Set<string>()
  readonly #stopping = new AbortController()
  #timer: ReturnType<typeof setInterval> | undefined
  #stopped = false

  constructor(components: FilesComponents) {
    this.#c = components
  }

  get #policy(): FilePolicy {
    return (this.#c.policy ?? readFilePolicy)()
  }

  async start(): Promise<void> {
    await this.#c.node.libp2p.handle(
      FILE_PROTOCOL,
      async (stream, connection) => {
        await this.#serve(stream, connection).catch((err: unknown) => {
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
      },
      { runOnLimitedConnection: true }
    )
    this.#timer = setInterval(() => this.resume(), LIMITS.files.retryEveryMs)
    this.#timer.unref?.()
    this.resume()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.#stopping.abort()
    if (this.#timer !== undefined) clearInterval(this.#timer)
    await this.#c.node.libp2p.unhandle(FILE_PROTOCOL).catch(() => {})
  }

  /** The transfers, newest first; an incoming one whose bytes have started says how they come (`path`). */
  list(limit = 100): Array<Transfer & { path?: string }> {
    return this.#c.store.list(limit).map((t) => {
      const path = t.direction === 'incoming' ? this.#paths.get(t.id) : undefined
      return path === undefined ? t : { ...t, path }
    })
  }

  get(id: string): Transfer | undefined {
    return this.#c.store.get(id, 'incoming') ?? this.#c.store.get(id, 'outgoing')
  }

  // The sender's side.

  /** Offers files (and folders' files) to a user's online devices. Resolves with the offer once a device took it. */
  async send(to: string, paths: string[]): Promise<Transfer> {
    const me = this.#me()
    if (to.toLowerCase() === me.toLowerCase()) throw new ParleyError('INVALID_REQUEST', 'you cannot send files to yourself')
    if (this.#c.chat.isBlocked(to)) throw new ParleyError('NOT_ALLOWED', `${to} is blocked`)
    const policy = this.#policy
    if (!policy.enabled) throw new ParleyError('NOT_ALLOWED', `file transfer is turned off on this machine (${policy.source})`)
    const found = await this.#collect(paths)
    if (policy.maxBytes !== null && found.reduce((n, f) => n + f.size, 0) > policy.maxBytes)
      throw new ParleyError('NOT_ALLOWED', `this machine's policy allows at most ${policy.maxBytes} bytes per transfer (${policy.source})`)
    // Hashed once the offer may be made (the size read with the hash: what the recipient will be sent).
    const files: OfferedFile[] = []
    for (const f of found) {
      const { size, sha256, chunks, mtimeMs } = await hashFile(f.source)
      this.#chunkHashes.delete(f.source)
      this.#chunkHashes.set(f.source, { size, mtimeMs, hashes: chunks })
      // 32 bytes a MiB, for the sources offered last (an older one is hashed per chunk again when it is fetched).
      if (this.#chunkHashes.size > LIMITS.files.chunkHashSources) this.#chunkHashes.delete(this.#chunkHashes.keys().next().value as string)
      files.push({ path: f.path, size, sha256 })
    }
    const sources = found.map((f) => f.source)
    const total = files.reduce((n, f) => n + f.size, 0)
    // Hex: an id never starts with '-' (a command line would take it for an option).
    const id = randomBytes(18).toString('hex')
    const offer = encoder.encode(JSON.stringify({ t: 'offer', id, files }))
    if (offer.length > LIMITS.files.offerMaxBytes) throw new ParleyError('PAYLOAD_TOO_LARGE', 'too many files in one offer')
    this.#c.store.add({ id, direction: 'outgoing', peer: to, files, sources, state: 'offered', total })
    let devices: string[] = []
    let answers: Control[] = []
    for (let attempt = 1; attempt <= LIMITS.files.offerAttempts; attempt++) {
      if (attempt > 1) await new Promise((r) => setTimeout(r, LIMITS.files.offerRetryMs))
      devices = await this.#c.chat.devicesOf(to, { fresh: true }).catch(() => [] as string[])
      answers = await Promise.all(
        devices.map(async (d) => await this.#request(d, offer).catch((err: Error): Control => ({ t: 'unreachable', message: err.message })))
      )
      if (answers.some((a) => a.t === 'offered')) return this.#c.store.get(id, 'outgoing') as Transfer
      // No device listed online, or an answer (a refusal): that is the answer. Only unreachable devices are tried again.
      if (devices.length === 0 || answers.some((a) => a.t !== 'unreachable')) break
    }
    const refusal = answers.find((a) => a.t === 'refused')
    // What each device's attempt ran into: a user (and a failing test) sees why.
    const tried = answers.map((a) => String(a.message ?? a.t)).join('; ')
    const reason =
      refusal !== undefined
        ? `${String(refusal.code)}: ${String(refusal.message)}`
        : `no device of ${to} is online (a file needs both sides online)${tried === '' ? '' : `: ${tried}`}`
    this.#c.store.update(id, 'outgoing', { state: 'refused', reason })
    this.#c.emit('file.state', { id, state: 'refused', reason })
    throw new ParleyError(
      refusal?.code === 'POLICY' || refusal?.code === 'NOT_ALLOWED' ? 'NOT_ALLOWED' : 'UNAVAILABLE',
      `${to} did not take the offer: ${reason}`
    )
  }

  /**
   * The files under `paths`, each with the name it will have in the offer (a
   * folder's files under the folder's name, walked in name order) and its
   * size. A path given is followed if it is a symbolic link; inside a folder,
   * symbolic links are skipped (no loops, nothing from outside the folder).
   * Two files that would arrive under one name are refused here, as the
   * recipient would refuse them.
   */
  async #collect(paths: string[]): Promise<Array<{ path: string; size: number; source: string }>> {
    const found: Array<{ path: string; size: number; source: string }> = []
    const names = new Map<string, string>()
    const add = async (source: string, name: string, top: boolean): Promise<void> => {
      const info = await (top ? stat(source) : lstat(source)).catch(() => undefined)
      if (info === undefined) throw new ParleyError('NOT_FOUND', `${source} does not exist`)
      if (info.isDirectory()) {
        for (const entry of (await readdir(source)).sort()) await add(join(source, entry), `${name}/${entry}`, false)
        return
      }
      if (!info.isFile()) return
      if (found.length >= LIMITS.files.maxFiles)
        throw new ParleyError('PAYLOAD_TOO_LARGE', `at most ${LIMITS.files.maxFiles} files in one offer`)
      const problem = pathProblem(name)
      if (problem !== undefined) throw new ParleyError('INVALID_REQUEST', `${source} cannot be sent under its name: ${problem}`)
      const twin = names.get(name.toLowerCase())
      if (twin !== undefined)
        throw new ParleyError('INVALID_REQUEST', `${twin} and ${source} would both arrive as ${name}: send them in separate offers`)
      names.set(name.toLowerCase(), source)
      found.push({ path: name, size: info.size, source })
    }
    for (const p of paths) await add(resolve(p), basename(resolve(p)), true)
    if (found.length === 0) throw new ParleyError('INVALID_REQUEST', 'no file to send')
    return found
  }

  /** Cancels a transfer from either side; the other side is told. */
  async cancel(id: string): Promise<Transfer> {
    const t = this.get(id)
    if (t === undefined) throw new ParleyError('NOT_FOUND', `no transfer ${id}`)
    if (FINAL_STATES.has(t.state)) return t
    this.#forget(id)
    this.#c.store.update(id, t.direction, { state: 'cancelled', reason: 'cancelled here' })
    this.#c.emit('file.state', { id, state: 'cancelled' })
    const devices = await this.#c.chat.devicesOf(t.peer).catch(() => [] as string[])
    const message = encoder.encode(JSON.stringify({ t: 'cancel', id, reason: 'cancelled' }))
    await Promise.all(devices.map(async (d) => await this.#request(d, message).catch(() => undefined)))
    return this.get(id) as Transfer
  }

  // The recipient's side.

  /** Accepts an offer into `folder` (created if need be); the transfer starts at once. */
  async accept(id: string, folder: string): Promise<Transfer> {
    const t = this.#c.store.get(id, 'incoming')
    if (t === undefined) throw new ParleyError('NOT_FOUND', `no offer ${id}`)
    if (t.state !== 'offered') throw new ParleyError('INVALID_REQUEST', `the transfer is ${t.state}`)
    const target = resolve(folder)
    await mkdir(target, { recursive: true })
    this.#c.store.update(id, 'incoming', { state: 'accepted', folder: target })
    this.#c.emit('file.state', { id, state: 'accepted' })
    this.resume()
    return this.#c.store.get(id, 'incoming') as Transfer
  }

  async decline(id: string): Promise<Transfer> {
    const t = this.#c.store.get(id, 'incoming')
    if (t === undefined || t.state !== 'offered') throw new ParleyError('NOT_FOUND', `no offer ${id} waiting`)
    return await this.cancel(id)
  }

  /** Fetches every accepted transfer not finished (at most LIMITS.files.concurrent at once). */
  resume(): void {
    if (this.#stopped) return
    for (const t of this.#c.store.pending()) {
      if (this.#active.size >= LIMITS.files.concurrent) return
      if (this.#active.has(t.id)) continue
      this.#active.add(t.id)
      this.#progressed.delete(t.id)
      let again = false
      void this.#fetch(t)
        .catch((err: unknown) => {
          // Tried again later; the transfer says why it waits.
          const reason = err instanceof ScanPendingError ? err.message : `waiting to resume: ${(err as Error).message}`
          if (this.#c.store.get(t.id, 'incoming')?.state === 'accepted') this.#c.store.update(t.id, 'incoming', { reason })
          this.#c.emit('file.retry', { id: t.id, reason })
          // A stream cut after it moved bytes (a relay's data limit, a dropped connection): again at once.
          again = this.#progressed.has(t.id)
        })
        .finally(() => {
          this.#active.delete(t.id)
          if (again) setTimeout(() => this.resume(), LIMITS.files.retrySoonMs).unref()
        })
    }
  }

  async #fetch(t: Transfer): Promise<void> {
    const folder = t.folder as string
    const staging = join(folder, PARTIAL_DIR, t.id)
    if (!this.#verified.has(t.id)) {
      if (!(await this.#fetchAll(t, staging))) return
      this.#verified.add(t.id)
    }
    const infected = await this.#scan(t, staging)
    if (infected === undefined) return
    const bad = new Set(infected.map((f) => f.path))
    let kept: string | undefined
    for (const [index, file] of t.files.entries()) {
      const partial = join(staging, String(index))
      if (bad.has(file.path)) {
        kept = await this.#quarantine(t, file, partial)
      } else {
        const target = placeUnder(folder, file.path)
        await mkdir(dirname(target), { recursive: true })
        await rename(partial, await freeName(target))
      }
      await rm(`${partial}.chunks`, { force: true })
    }
    await rm(staging, { recursive: true, force: true })
    // The hidden folder goes once no other transfer has anything in it.
    await rmdir(join(folder, PARTIAL_DIR)).catch(() => {})
    this.#forget(t.id)
    if (infected.length > 0) {
      const found = infected.map((f) => `${f.path} (${f.signature})`).join(', ')
      const reason = `QUARANTINED: the virus scanner found ${found}; ${kept === undefined ? 'deleted' : `kept in ${dirname(kept)}`}, not in ${folder}`
      this.#c.store.update(t.id, 'incoming', { state: 'quarantined', bytes: t.total, reason, infected })
      this.#c.emit('file.state', { id: t.id, state: 'quarantined', folder, infected, reason })
      this.#tellSender(t, { state: 'quarantined', infected })
      return
    }
    this.#c.store.update(t.id, 'incoming', { state: 'done', bytes: t.total })
    this.#c.emit('file.state', { id: t.id, state: 'done', folder })
    this.#tellSender(t, { state: 'done' })
  }

  /** Every file of `t` here and checked against its SHA-256: true; false when the transfer failed. */
  async #fetchAll(t: Transfer, staging: string): Promise<boolean> {
    await mkdir(staging, { recursive: true })
    // The sender's devices, looked up once per attempt (and only when a file still needs bytes).
    let devices: Promise<string[]> | undefined
    const devicesOfSender = async (): Promise<string[]> => {
      devices ??= this.#c.chat.devicesOf(t.peer).catch(() => [] as string[])
      return await devices
    }
    let kept = 0
    const started = performance.now()
    let fetched = 0
    let lastEvent = 0
    for (const [index, file] of t.files.entries()) {
      const partial = join(staging, String(index))
      await (await open(partial, 'a')).close()
      const key = `${t.id}/${index}`
      let running = this.#running.get(key)
      if (running !== undefined) await this.#cutTo(partial, running.bytes)
      else {
        const whole = createHash('sha256')
        running = { bytes: await this.#verifiedPrefix(partial, file, whole), whole }
        this.#running.set(key, running)
      }
      const have = running.bytes
      if (have < file.size) {
        const before = fetched
        // `n`: this file's bytes fetched so far in this attempt.
        await this.#fetchFile(t, index, partial, running, await devicesOfSender(), (n) => {
          fetched = before + n
          this.#progressed.add(t.id)
          const now = performance.now()
          if (now - lastEvent > 500) {
            lastEvent = now
            const rate = fetched / ((now - started) / 1000)
            const bytes = kept + have + n
            this.#c.emit('file.progress', {
              id: t.id,
              bytes,
              total: t.total,
              rate: Math.round(rate),
              secondsLeft: rate > 0 ? Math.round((t.total - bytes) / rate) : null
            })
          }
        })
      }
      kept += file.size
      this.#c.store.update(t.id, 'incoming', { bytes: kept })
    }
    // Every file whole: each checked against its SHA-256 (fed as its bytes were verified, not read again).
    for (const [index, file] of t.files.entries()) {
      const partial = join(staging, String(index))
      const running = this.#running.get(`${t.id}/${index}`)
      this.#running.delete(`${t.id}/${index}`)
      const hash = running?.bytes === file.size ? running.whole.digest('hex') : (await hashFile(partial)).sha256
      if (hash !== file.sha256) {
        await rm(partial, { force: true })
        await rm(`${partial}.chunks`, { force: true })
        this.#fail(
          t,
          'BAD_HASH',
          `${file.path} does not have the SHA-256 the sender gave (got ${hash.slice(0, 16)}…): its bytes were dropped`
        )
        return false
      }
    }
    return true
  }

  /**
   * The files' verdicts from the clamd the machine's policy names (read now:
   * the policy in force when files would be moved into place decides): the
   * infected ones, [] with no scanner; undefined when the transfer failed (a
   * file over clamd's stream limit). Throws ScanPendingError while clamd cannot
   * give a verdict: nothing is moved into place unscanned.
   */
  async #scan(t: Transfer, staging: string): Promise<InfectedFile[] | undefined> {
    const policy = this.#policy
    // A policy turned off (or broken, which reads as off) since the offer lets nothing in, scanned or not.
    if (!policy.enabled)
      throw new ScanPendingError(
        `file transfer is turned off on this machine (${policy.source}): the files are here and verified, but stay out of place until it is on again`
      )
    const clamd = policy.clamd ?? null
    if (clamd === null) return []
    const infected: InfectedFile[] = []
    for (const [index, file] of t.files.entries()) {
      try {
        const verdict = await scanFile(clamd, join(staging, String(index)), { signal: this.#stopping.signal })
        this.#c.emit('file.scanned', {
          id: t.id,
          path: file.path,
          clean: verdict.clean,
          ...(verdict.clean ? {} : { signature: verdict.signature })
        })
        if (!verdict.clean) infected.push({ path: file.path, signature: clip(verdict.signature, LIMITS.files.signatureMaxBytes) })
      } catch (err) {
        if (err instanceof ClamdSizeLimitError) {
          await rm(staging, { recursive: true, force: true })
          await rmdir(join(t.folder as string, PARTIAL_DIR)).catch(() => {})
          this.#fail(
            t,
            'UNSCANNABLE',
            `${file.path}: ${err.message}; the policy (${policy.source}) requires a scan, so its bytes were dropped`
          )
          return undefined
        }
        throw new ScanPendingError(
          `waiting for the virus scan ${policy.source} requires (clamd at ${describeClamdAddress(clamd)}): ${(err as Error).message}; the files are here and verified, but stay out of place until clamd gives a verdict`,
          { cause: err }
        )
      }
    }
    return infected
  }

  /** An infected file, out of the way: under the quarantine folder (0700, the file 0600), or deleted when there is none. */
  async #quarantine(t: Transfer, file: OfferedFile, partial: string): Promise<string | undefined> {
    const folder = this.#c.quarantine ?? (this.#c.store.folder === undefined ? undefined : join(this.#c.store.folder, 'quarantine'))
    if (folder === undefined) {
      await rm(partial, { force: true })
      return undefined
    }
    await mkdir(folder, { recursive: true, mode: 0o700 })
    await chmod(folder, 0o700)
    const target = await freeName(placeUnder(join(folder, t.id), file.path))
    await mkdir(dirname(target), { recursive: true, mode: 0o700 })
    await chmod(partial, 0o600)
    await move(partial, target)
    return target
  }

  #fail(t: Transfer, code: string, message: string, tell = true): void {
    this.#forget(t.id)
    this.#c.store.update(t.id, 'incoming', { state: 'failed', reason: `${code}: ${message}` })
    this.#c.emit('file.state', { id: t.id, state: 'failed', reason: `${code}: ${message}` })
    if (tell) this.#tellSender(t, { state: 'failed', code, message })
  }

  /** How the transfer ended here, to the sender's devices (once, best effort: a sender that missed it keeps saying `done`). */
  #tellSender(
    t: Transfer,
    result: { state: 'done' | 'quarantined' | 'failed'; code?: string; message?: string; infected?: InfectedFile[] }
  ): void {
    const message = encoder.encode(JSON.stringify({ t: 'result', id: t.id, ...result }))
    void this.#c.chat
      .devicesOf(t.peer)
      .then(async (devices) => {
        await Promise.all(devices.map(async (d) => await this.#request(d, message).catch(() => undefined)))
      })
      .catch(() => {})
  }

  /**
   * How much of a partial file can be trusted: whole chunks whose hashes match
   * those kept as they were verified on arrival (re-read now); the rest is cut.
   */
  async #verifiedPrefix(partial: string, file: OfferedFile, whole: Hash): Promise<number> {
    const size = (await stat(partial).catch(() => undefined))?.size ?? 0
    const hashes = await readAll(`${partial}.chunks`)
    const chunk = LIMITS.files.chunkBytes
    let good = 0
    if (size > 0 && hashes.length > 0) {
      const handle = await open(partial, 'r')
      try {
        const buffer = Buffer.alloc(chunk)
        for (let i = 0; i * HASH_BYTES < hashes.length; i++) {
          const length = Math.min(chunk, file.size - i * chunk)
          if (length <= 0 || i * chunk + length > size) break
          const { bytesRead } = await handle.read(buffer, 0, length, i * chunk)
          const digest = createHash('sha256').update(buffer.subarray(0, bytesRead)).digest()
          if (bytesRead !== length || !digest.equals(hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES))) break
          whole.update(buffer.subarray(0, bytesRead))
          good = i * chunk + length
        }
      } finally {
        await handle.close()
      }
    }
    // What is past the trusted prefix (a torn write, a chunk not yet verified) goes.
    if (size !== good) await truncate(partial, good).catch(() => {})
    const chunks = Math.ceil(good / chunk)
    if (hashes.length !== chunks * HASH_BYTES) await truncate(`${partial}.chunks`, chunks * HASH_BYTES).catch(() => {})
    return good
  }

  /** What this run keeps for an incoming transfer, dropped (it ended: in place, failed or cancelled). */
  #forget(id: string): void {
    this.#verified.delete(id)
    for (const key of this.#running.keys()) if (key.startsWith(`${id}/`)) this.#running.delete(key)
  }

  /** The partial file and its chunk hashes cut back to the `bytes` verified (what the last attempt left half written goes). */
  async #cutTo(partial: string, bytes: number): Promise<void> {
    if (((await stat(partial).catch(() => undefined))?.size ?? 0) !== bytes) await truncate(partial, bytes)
    const kept = Math.ceil(bytes / LIMITS.files.chunkBytes) * HASH_BYTES
    if (((await stat(`${partial}.chunks`).catch(() => undefined))?.size ?? 0) !== kept) await truncate(`${partial}.chunks`, kept)
  }

  /** One file from `offset`, from the first of `devices` that answers: frames checked and appended, the hash of each kept beside it. */
  /** How each incoming transfer's bytes come now ('direct' or 'relayed'), by transfer id. */
  readonly #paths = new Map<string, string>()

  /** How a transfer's bytes came last (direct or through a relay); undefined before any came. */
  pathOf(id: string): string | undefined {
    return this.#paths.get(id)
  }

  async #fetchFile(
    t: Transfer,
    index: number,
    partial: string,
    running: { bytes: number; whole: Hash },
    devices: string[],
    progress: (bytes: number) => void
  ): Promise<void> {
    const file = t.files[index] as OfferedFile
    const offset = running.bytes
    let stream: Stream | undefined
    let lastError: Error | undefined
    let path: string | undefined
    for (const device of devices) {
      try {
        // Bulk bytes go direct when they can: a relayed connection is first upgraded (hole punch, connection reversal).
        stream = await this.#open(device, { direct: true })
        path = this.#c.node.pathTo(device)
        break
      } catch (err) {
        lastError = err as Error
      }
    }
    if (stream === undefined) throw lastError ?? new Error(`no device of ${t.peer} is online`)
    if (this.#paths.get(t.id) !== path) {
      this.#paths.set(t.id, path ?? 'unknown')
      if (this.#paths.size > 1_000) this.#paths.delete(this.#paths.keys().next().value as string)
      // Said plainly: through a relay, the supernode carries at most LIMITS.overlay.relay.dataLimitBytes per connection.
      this.#c.emit('file.path', {
        id: t.id,
        path,
        ...(path === 'relayed'
          ? {
              note: `no direct path to ${t.peer}: through a supernode's relay, which carries ${LIMITS.overlay.relay.dataLimitBytes / 2 ** 20} MiB per connection (the transfer resumes on a new one), slowly`
            }
          : {})
      })
    }
    const lp = lpStream(stream, {
      maxDataLength: LIMITS.files.chunkBytes + HASH_BYTES,
      maxBufferSize: (LIMITS.files.windowChunks + 1) * (LIMITS.files.chunkBytes + HASH_BYTES + 8)
    })
    const stall = (): AbortSignal => AbortSignal.timeout(LIMITS.files.stallMs)
    await lp.write(encoder.encode(JSON.stringify({ t: 'get', id: t.id, file: index, offset })), { signal: stall() })
    const answer = parseControl((await lp.read({ signal: stall() })).subarray())
    if (answer.t === 'refused') {
      const code = String(answer.code)
      if (code === 'CANCELLED' || code === 'CHANGED' || code === 'UNKNOWN') this.#fail(t, code, String(answer.message), false)
      stream.abort(new Error('refused'))
      throw new Error(`${code}: ${String(answer.message)}`)
    }
    if (answer.t !== 'sending' || answer.size !== file.size) {
      stream.abort(new Error('bad answer'))
      this.#fail(t, 'LIED', `the sender now says ${String(answer.size)} bytes for ${file.path}, not ${file.size}`)
      return
    }
    const data = await open(partial, 'a')
    const hashes = await open(`${partial}.chunks`, 'a')
    let at = offset
    try {
      while (at < file.size) {
        // The frame as the pieces it came in (no 1 MiB copy): hashed and written piece by piece.
        const frame = await lp.read({ signal: stall() })
        const pieces = [...frame.sublist(HASH_BYTES)]
        const length = frame.byteLength - HASH_BYTES
        const expected = Math.min(LIMITS.files.chunkBytes, file.size - at)
        if (frame.byteLength < HASH_BYTES || length !== expected) {
          this.#fail(
            t,
            'LIED',
            `${file.path}: a chunk of ${length} bytes where ${expected} were due (the sender sends past the size, or broke the chunking)`
          )
          stream.abort(new Error('bad chunk'))
          return
        }
        const hash = createHash('sha256')
        for (const piece of pieces) hash.update(piece)
        const digest = hash.digest()
        if (!digest.equals(frame.subarray(0, HASH_BYTES)))
          throw new Error(`${file.path}: a chunk does not match its hash (damaged on the way)`)
        // No sync per chunk: after a crash, what did not reach the disk fails its kept hash on resume and is
        // fetched again.
        await data.writev(pieces)
        await hashes.write(digest)
        for (const piece of pieces) running.whole.update(piece)
        at += length
        running.bytes = at
        // Flow control: one more chunk may come for each one written (the sender has at most a window in flight).
        if (at < file.size) await lp.write(MORE, { signal: stall() })
        progress(at - offset)
      }
      await data.datasync()
      await stream.close().catch(() => {})
    } finally {
      await data.close()
      await hashes.close()
    }
  }

  // Both sides: the streams that come in.

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: LIMITS.files.offerMaxBytes })
    const signal = AbortSignal.timeout(LIMITS.files.stallMs)
    const reply = async (body: object): Promise<void> => {
      await lp.write(encoder.encode(JSON.stringify(body)), { signal })
    }
    const refuse = async (code: string, message: string): Promise<void> => {
      await reply({ t: 'refused', code, message })
      await stream.close({ signal }).catch(() => {})
    }
    const peer = this.#c.node.hello.verified(connection.remotePeer)
    if (peer === undefined) return await refuse('NO_CREDENTIAL', 'say hello with a valid credential first')
    let message: Control
    try {
      message = parseControl((await lp.read({ signal })).subarray())
    } catch (err) {
      return await refuse('MALFORMED', (err as Error).message)
    }
    const me = this.#c.me()
    if (me === undefined) return await refuse('UNAVAILABLE', 'this device is logged out')
    if (message.t === 'offer') return await this.#onOffer(message, peer.name, connection.remotePeer.toString(), reply, refuse)
    if (message.t === 'get') return await this.#onGet(message, peer.name, lp, refuse)
    if (message.t === 'result') return await this.#onResult(message, peer.name, reply, refuse)
    if (message.t === 'cancel' && typeof message.id === 'string') {
      for (const direction of ['incoming', 'outgoing'] as const) {
        const t = this.#c.store.get(message.id, direction)
        if (t !== undefined && t.peer.toLowerCase() === peer.name.toLowerCase() && !FINAL_STATES.has(t.state)) {
          if (direction === 'incoming') this.#forget(t.id)
          this.#c.store.update(t.id, direction, {
            state: direction === 'outgoing' && t.state === 'offered' ? 'declined' : 'cancelled',
            reason: `${peer.name} cancelled`
          })
          this.#c.emit('file.state', { id: t.id, state: 'cancelled', by: peer.name })
        }
      }
      await reply({ t: 'ok' })
      return
    }
    return await refuse('MALFORMED', `unknown message ${message.t}`)
  }

  async #onOffer(
    message: Control,
    from: string,
    device: string,
    reply: (body: object) => Promise<void>,
    refuse: (code: string, message: string) => Promise<void>
  ): Promise<void> {
    // A blocked sender is refused as if this device took nothing: it learns only that it did not go through.
    if (this.#c.chat.isBlocked(from)) return await refuse('UNAVAILABLE', 'not taken')
    if (!this.#c.chat.isContact(from)) return await refuse('NOT_ALLOWED', 'files are taken from contacts only')
    const policy = this.#policy
    if (!policy.enabled) return await refuse('POLICY', `file transfer is turned off on the recipient's machine (${policy.source})`)
    if (this.#offers.take(from.toLowerCase()) > 0) return await refuse('RATE_LIMITED', 'too many offers: try again later')
    const id = message.id
    const files = message.files
    if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{16,64}$/.test(id)) return await refuse('MALFORMED', 'an offer has an id')
    if (!Array.isArray(files) || files.length === 0 || files.length > LIMITS.files.maxFiles)
      return await refuse('MALFORMED', 'an offer has 1 or more files')
    const seen = new Set<string>()
    for (const f of files as Array<Record<string, unknown>>) {
      const problem = pathProblem(f?.path)
      if (problem !== undefined) return await refuse('BAD_PATH', `refused: ${problem}`)
      if (seen.has(String(f.path).toLowerCase())) return await refuse('BAD_PATH', `${String(f.path)} is named twice`)
      seen.add(String(f.path).toLowerCase())
      if (!Number.isSafeInteger(f.size) || (f.size as number) < 0)
        return await refuse('MALFORMED', `${String(f.path)}: a size is a whole number of bytes`)
      if (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256))
        return await refuse('MALFORMED', `${String(f.path)}: a SHA-256 in hex`)
    }
    const offered = (files as OfferedFile[]).map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 }))
    const total = offered.reduce((n, f) => n + f.size, 0)
    if (policy.maxBytes !== null && total > policy.maxBytes)
      return await refuse('POLICY', `the recipient's machine takes at most ${policy.maxBytes} bytes per transfer (${policy.source})`)
    if (this.#c.store.add({ id, direction: 'incoming', peer: from, files: offered, state: 'offered', total }))
      this.#c.emit('file.offer', { id, from, device, files: offered, total })
    await reply({ t: 'offered' })
  }

  /** The recipient says how the transfer ended on its side: the sender's side says the same. */
  async #onResult(
    message: Control,
    from: string,
    reply: (body: object) => Promise<void>,
    refuse: (code: string, message: string) => Promise<void>
  ): Promise<void> {
    const t = typeof message.id === 'string' ? this.#c.store.get(message.id, 'outgoing') : undefined
    if (t === undefined || t.peer.toLowerCase() !== from.toLowerCase()) return await refuse('UNKNOWN', 'no such offer to you')
    const state = message.state
    if (state !== 'done' && state !== 'quarantined' && state !== 'failed')
      return await refuse('MALFORMED', 'a result is done, quarantined or failed')
    let infected: InfectedFile[] = []
    let reason: string | null = null
    if (state === 'quarantined') {
      const paths = new Set(t.files.map((f) => f.path))
      const list = message.infected
      if (!Array.isArray(list) || list.length === 0 || list.length > t.files.length)
        return await refuse('MALFORMED', 'a quarantine names the infected files')
      for (const f of list as Array<Record<string, unknown>>) {
        if (typeof f?.path !== 'string' || !paths.has(f.path)) return await refuse('MALFORMED', 'an infected file is a file of the offer')
        if (typeof f.signature !== 'string' || !/^[\x21-\x7e][\x20-\x7e]*$/.test(f.signature))
          return await refuse('MALFORMED', 'a signature is a printable name')
        infected.push({ path: f.path, signature: clip(f.signature, LIMITS.files.signatureMaxBytes) })
      }
      reason = `QUARANTINED by ${from}'s virus scanner: ${infected.map((f) => `${f.path} (${f.signature})`).join(', ')}`
    } else if (state === 'failed') {
      const code = typeof message.code === 'string' && /^[A-Z_]{1,32}$/.test(message.code) ? message.code : 'FAILED'
      reason = `${code} on ${from}'s side: ${clip(String(message.message ?? ''), 1000)}`
      infected = []
    }
    // Ended here already (cancelled, refused): that stands. `done` (every byte served) gives way to the recipient's word.
    if (!FINAL_STATES.has(t.state) || t.state === 'done') {
      if (t.state !== state || reason !== t.reason) {
        this.#c.store.update(t.id, 'outgoing', { state, reason, infected, ...(state === 'failed' ? {} : { bytes: t.total }) })
        this.#c.emit('file.state', {
          id: t.id,
          state,
          ...(reason === null ? {} : { reason }),
          ...(infected.length > 0 ? { infected } : {})
        })
      }
    }
    await reply({ t: 'ok' })
  }

  async #onGet(
    message: Control,
    from: string,
    lp: ReturnType<typeof lpStream>,
    refuse: (code: string, message: string) => Promise<void>
  ): Promise<void> {
    const id = String(message.id)
    const t = this.#c.store.get(id, 'outgoing')
    if (t === undefined || t.peer.toLowerCase() !== from.toLowerCase()) return await refuse('UNKNOWN', 'no such offer to you')
    if (t.state === 'cancelled' || t.state === 'refused') return await refuse('CANCELLED', `the sender ${t.state} it`)
    const index = Number(message.file)
    const offset = Number(message.offset)
    const file = t.files[index]
    const source = this.#c.store.sources(id)?.[index]
    if (file === undefined || source === undefined) return await refuse('MALFORMED', 'no such file in the offer')
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > file.size || offset % LIMITS.files.chunkBytes !== 0)
      return await refuse('MALFORMED', 'an offset is a chunk boundary within the file')
    const info = await stat(source).catch(() => undefined)
    if (info?.size !== file.size) return await refuse('CHANGED', `${file.path} changed on the sender's disk since it was offered`)
    if (t.state === 'offered') {
      this.#c.store.update(id, 'outgoing', { state: 'accepted' })
      this.#c.emit('file.state', { id, state: 'accepted' })
    }
    const signal = (): AbortSignal => AbortSignal.timeout(LIMITS.files.stallMs)
    this.#c.emit('file.serving', { id, file: index, offset })
    await lp.write(encoder.encode(JSON.stringify({ t: 'sending', size: file.size })), { signal: signal() })
    // Constant memory: one chunk at a time, read straight into its frame behind room for its hash (the hash
    // kept from the offer while the file is as it was then); the next chunk is read while this one goes.
    const chunkBytes = LIMITS.files.chunkBytes
    const known = this.#chunkHashes.get(source)
    const cached = known !== undefined && known.size === info.size && known.mtimeMs === info.mtimeMs ? known.hashes : undefined
    const handle = await open(source, 'r')
    let sent = offset
    // Flow control: a window of chunks, then one more for each `more` the recipient sends as it writes them.
    let credit: number = LIMITS.files.windowChunks
    const readFrame = async (at: number): Promise<Buffer> => {
      const length = Math.min(chunkBytes, file.size - at)
      const frame = Buffer.allocUnsafeSlow(HASH_BYTES + length)
      const { bytesRead } = await handle.read(frame, HASH_BYTES, length, at)
      if (bytesRead !== length) throw new Error(`${file.path} shrank on the sender's disk`)
      const i = at / chunkBytes
      if (cached !== undefined) cached.copy(frame, 0, i * HASH_BYTES, (i + 1) * HASH_BYTES)
      else createHash('sha256').update(frame.subarray(HASH_BYTES)).digest().copy(frame, 0)
      return frame
    }
    try {
      let next = sent < file.size ? readFrame(sent) : undefined
      while (next !== undefined) {
        const frame = await next
        const after = sent + frame.length - HASH_BYTES
        next = after < file.size ? readFrame(after) : undefined
        next?.catch(() => {})
        while (credit === 0) {
          const more = parseControl((await lp.read({ signal: signal() })).subarray())
          if (more.t !== 'more') throw new Error(`expected more, got ${more.t}`)
          credit++
        }
        credit--
        await lp.write(frame, { signal: signal() })
        sent = after
      }
    } finally {
      await handle.close()
    }
    // Every byte served: done, unless the recipient has had its say already (its result comes after its last chunk).
    if (sent === file.size && index === t.files.length - 1 && !FINAL_STATES.has(this.#c.store.get(id, 'outgoing')?.state ?? 'done')) {
      this.#c.store.update(id, 'outgoing', { state: 'done', bytes: t.total })
      this.#c.emit('file.state', { id, state: 'done' })
    }
  }

  async #open(device: string, options: { direct?: boolean } = {}): Promise<Stream> {
    const { node } = this.#c
    const signal = AbortSignal.timeout(LIMITS.chat.deliverTimeoutMs)
    const peer = peerIdFromString(device)
    let connection = await node.libp2p.dial(peer, { signal })
    const hello = await node.hello.greet(connection)
    if (!hello.ok) throw new Error(`hello: ${hello.reason}`)
    if (options.direct === true && node.pathTo(peer) === 'relayed') {
      const path = await node.direct.upgrade(peer).catch(() => 'relayed')
      if (path === 'direct') connection = await node.libp2p.dial(peer, { signal })
    }
    return await connection.newStream(FILE_PROTOCOL, { signal, runOnLimitedConnection: true })
  }

  /** One message to a device and its one answer. */
  async #request(device: string, message: Uint8Array): Promise<Control> {
    const stream = await this.#open(device)
    const lp = lpStream(stream, { maxDataLength: LIMITS.files.messageMaxBytes })
    const signal = AbortSignal.timeout(LIMITS.chat.deliverTimeoutMs)
    await lp.write(message, { signal })
    const answer = parseControl((await lp.read({ signal })).subarray())
    await stream.close({ signal }).catch(() => {})
    return answer
  }

  #me(): string {
    const me = this.#c.me()
    if (me === undefined) throw new ParleyError('NOT_LOGGED_IN', 'this device is not logged in')
    return me
  }
}

function parseControl(frame: Uint8Array): Control {
  const value = JSON.parse(decoder.decode(frame)) as unknown
  if (typeof value !== 'object' || value === null || typeof (value as { t?: unknown }).t !== 'string')
    throw new Error('a message is a JSON object with t')
  return value as Control
}

/**
 * The SHA-256 of a file and of each of its chunks (LIMITS.files.chunkBytes, at
 * their boundaries), its size and mtime, in one read through one buffer.
 */
async function hashFile(path: string): Promise<{ sha256: string; size: number; mtimeMs: number; chunks: Buffer }> {
  const whole = createHash('sha256')
  const chunks: Buffer[] = []
  const handle = await open(path, 'r')
  try {
    const { mtimeMs } = await handle.stat()
    const buffer = Buffer.allocUnsafe(LIMITS.files.chunkBytes)
    let size = 0
    for (;;) {
      let filled = 0
      while (filled < buffer.length) {
        const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, size + filled)
        if (bytesRead === 0) break
        filled += bytesRead
      }
      if (filled === 0) break
      const piece = buffer.subarray(0, filled)
      whole.update(piece)
      chunks.push(createHash('sha256').update(piece).digest())
      size += filled
      if (filled < buffer.length) break
    }
    return { sha256: whole.digest('hex'), size, mtimeMs, chunks: Buffer.concat(chunks) }
  } finally {
    await handle.close()
  }
}

async function readAll(path: string): Promise<Buffer<ArrayBufferLike>> {
  const handle = await open(path, 'r').catch(() => undefined)
  if (handle === undefined) return Buffer.alloc(0)
  try {
    return await handle.readFile()
  } finally {
    await handle.close()
  }
}

/** Cut to at most `max` UTF-8 bytes (on a character boundary). */
function clip(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text
  let out = text.slice(0, max)
  while (Buffer.byteLength(out) > max) out = out.slice(0, -1)
  return out
}

/** A rename, or a copy and a delete when `to` is on another filesystem (a quarantine in the profile, a download elsewhere). */
async function move(from: string, to: string): Promise<void> {
  try {
    await rename(from, to)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err
    await copyFile(from, to, constants.COPYFILE_EXCL)
    await rm(from)
  }
}

/** `target`, or `target (2)`, `(3)`… when a file of that name is there already (nothing is overwritten). */
async function freeName(target: string): Promise<string> {
  if ((await stat(target).catch(() => undefined)) === undefined) return target
  const dir = dirname(target)
  const name = basename(target)
  const dot = name.lastIndexOf('.')
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, '']
  for (let n = 2; ; n++) {
    const candidate = join(dir, `${stem} (${n})${ext}`)
    if ((await stat(candidate).catch(() => undefined)) === undefined) return candidate
  }
}
