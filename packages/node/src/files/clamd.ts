import { open } from 'node:fs/promises'
import { createConnection, type Socket } from 'node:net'
import { LIMITS } from '@parley/protocol'

/**
 * A client of clamd, ClamAV's scanning daemon, speaking its own protocol
 * (clamd(8)): `zPING` and `zINSTREAM` over a unix socket or TCP. A file is
 * streamed to clamd in pieces, each a 4-byte big-endian length and the bytes,
 * then four zero bytes; clamd answers one NUL-terminated line, `stream: OK`
 * or `stream: NAME FOUND`. Memory stays at one piece
 * (LIMITS.files.scanChunkBytes) whatever the size of the file.
 */

/** Where clamd listens: its LocalSocket, or its TCPAddr and TCPSocket. */
export type ClamdAddress = { path: string } | { host: string; port: number }

export type ScanVerdict = { clean: true } | { clean: false; signature: string }

/** clamd could not give a verdict now (unreachable, stalled, an error of its own): try again later. */
export class ClamdUnavailableError extends Error {
  override name = 'ClamdUnavailableError'
}

/**
 * clamd refused the stream as larger than its StreamMaxLength: no verdict for
 * this file until its administrator raises the limit (trying again will not help).
 */
export class ClamdSizeLimitError extends Error {
  override name = 'ClamdSizeLimitError'
}

/**
 * `/path/to/clamd.ctl` (a unix socket; absolute) or `HOST:PORT` (`[::1]:3310`
 * for IPv6); undefined when `text` is neither.
 */
export function parseClamdAddress(text: string): ClamdAddress | undefined {
  if (text.startsWith('/')) return { path: text }
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(text)
  const port = Number(match?.[3])
  if (match === null || !(port > 0 && port < 65536)) return undefined
  return { host: (match[1] ?? match[2]) as string, port }
}

export function describeClamdAddress(address: ClamdAddress): string {
  return 'path' in address
    ? address.path
    : address.host.includes(':')
      ? `[${address.host}]:${address.port}`
      : `${address.host}:${address.port}`
}

export interface ScanOptions {
  signal?: AbortSignal
  /** Defaults: LIMITS.files.scanConnectMs, scanStallMs, scanAnswerMs. */
  connectMs?: number
  stallMs?: number
  answerMs?: number
}

/** Whether clamd answers (`zPING` → `PONG`). */
export async function pingClamd(address: ClamdAddress, options: ScanOptions = {}): Promise<boolean> {
  const session = await connect(address, options)
  try {
    await session.write(Buffer.from('zPING\0'), options.stallMs ?? LIMITS.files.scanStallMs)
    return (await session.answer(options.answerMs ?? LIMITS.files.scanStallMs)) === 'PONG'
  } finally {
    session.socket.destroy()
  }
}

/**
 * Scans the file at `path` through clamd. Throws ClamdSizeLimitError when the
 * file is over clamd's StreamMaxLength, ClamdUnavailableError when there is no
 * verdict for any other reason (nothing listening, a timeout, an answer that
 * is not one).
 */
export async function scanFile(address: ClamdAddress, path: string, options: ScanOptions = {}): Promise<ScanVerdict> {
  const stallMs = options.stallMs ?? LIMITS.files.scanStallMs
  const file = await open(path, 'r')
  let session: Session | undefined
  try {
    session = await connect(address, options)
    await session.write(Buffer.from('zINSTREAM\0'), stallMs)
    // One buffer for every piece: the next is read into it only once clamd's socket has taken the last.
    const piece = Buffer.alloc(4 + LIMITS.files.scanChunkBytes)
    for (;;) {
      // clamd answers early (and closes) when the stream passes its StreamMaxLength.
      if (session.answered()) break
      const { bytesRead } = await file.read(piece, 4, LIMITS.files.scanChunkBytes, null)
      piece.writeUInt32BE(bytesRead, 0)
      if (!(await session.write(piece.subarray(0, 4 + bytesRead), stallMs))) break
      if (bytesRead === 0) break
    }
    return verdictOf(await session.answer(options.answerMs ?? LIMITS.files.scanAnswerMs), address)
  } finally {
    session?.socket.destroy()
    await file.close()
  }
}

function verdictOf(answer: string, address: ClamdAddress): ScanVerdict {
  if (answer === 'stream: OK') return { clean: true }
  const found = /^stream: (.+) FOUND$/.exec(answer)
  if (found !== null) return { clean: false, signature: found[1] as string }
  if (/size limit exceeded/i.test(answer))
    throw new ClamdSizeLimitError(
      `the file is larger than clamd at ${describeClamdAddress(address)} scans (its StreamMaxLength in clamd.conf): ${answer}`
    )
  throw new ClamdUnavailableError(`clamd at ${describeClamdAddress(address)} gave no verdict: ${answer === '' ? 'no answer' : answer}`)
}

interface Session {
  socket: Socket
  /** Resolves true once clamd's socket took `bytes`; false when clamd had already answered or closed. */
  write(bytes: Uint8Array, stallMs: number): Promise<boolean>
  answered(): boolean
  /** clamd's answer, without the NUL. */
  answer(timeoutMs: number): Promise<string>
}

async function connect(address: ClamdAddress, options: ScanOptions): Promise<Session> {
  const where = describeClamdAddress(address)
  const socket = createConnection('path' in address ? { path: address.path } : { host: address.host, port: address.port })
  const onAbort = (): void => {
    socket.destroy(new ClamdUnavailableError('the scan was stopped', { cause: options.signal?.reason }))
  }
  if (options.signal?.aborted === true) onAbort()
  options.signal?.addEventListener('abort', onAbort, { once: true })
  socket.once('close', () => options.signal?.removeEventListener('abort', onAbort))

  // What clamd says, collected from the start: it may answer while we still write.
  let text = ''
  let done = false
  let failure: Error | undefined
  const answered = Promise.withResolvers<string>()
  const finish = (): void => {
    if (done) return
    done = true
    const nul = text.indexOf('\0')
    answered.resolve((nul >= 0 ? text.slice(0, nul) : text).trim())
  }
  socket.on('data', (data: Buffer) => {
    text += data.toString('utf8')
    if (text.includes('\0') || text.length > LIMITS.files.scanAnswerMaxBytes) finish()
  })
  socket.on('end', finish)
  socket.on('error', (err) => {
    failure ??= err
  })
  socket.on('close', () => {
    if (text !== '') finish()
    else if (!done) {
      done = true
      answered.reject(new ClamdUnavailableError(`clamd at ${where} closed the connection: ${failure?.message ?? 'no answer'}`))
    }
  })
  answered.promise.catch(() => {})

  await deadline(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', (err) => reject(new ClamdUnavailableError(`clamd at ${where} is unreachable: ${err.message}`, { cause: err })))
    }),
    options.connectMs ?? LIMITS.files.scanConnectMs,
    () =>
      new ClamdUnavailableError(
        `clamd at ${where} did not accept a connection within ${options.connectMs ?? LIMITS.files.scanConnectMs} ms`
      ),
    socket
  )
  return {
    socket,
    answered: () => done,
    async write(bytes, stallMs) {
      if (done) return false
      try {
        await deadline(
          new Promise<void>((resolve, reject) => {
            socket.write(bytes, (err) => (err ? reject(err) : resolve()))
          }),
          stallMs,
          () => new ClamdUnavailableError(`clamd at ${where} stopped reading the stream (nothing taken for ${stallMs} ms)`),
          socket
        )
        return true
      } catch (err) {
        // A write that failed because clamd answered and closed (its size limit): the answer tells.
        if (text !== '' || done) return false
        throw err instanceof ClamdUnavailableError
          ? err
          : new ClamdUnavailableError(`clamd at ${where}: ${(err as Error).message}`, { cause: err })
      }
    },
    async answer(timeoutMs) {
      return await deadline(
        answered.promise,
        timeoutMs,
        () => new ClamdUnavailableError(`clamd at ${where} gave no verdict within ${timeoutMs} ms`),
        socket
      )
    }
  }
}

/** `promise`, or the error `late` makes after `ms` (the socket then destroyed). */
async function deadline<T>(promise: Promise<T>, ms: number, late: () => Error, socket: Socket): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = late()
          socket.destroy(err)
          reject(err)
        }, ms)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}
