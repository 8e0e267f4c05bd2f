// A throwaway clamd (ClamAV's scanning daemon) for the virus-scanning tests: its own config, socket and one
// signature database in a temporary folder, nothing from the system's ClamAV (no freshclam, no downloaded
// signatures: clamd would not start on an empty database, so the EICAR test file's signature is written here).
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { accessSync, constants } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { type ClamdAddress, pingClamd } from '../src/files/clamd.ts'

/**
 * The EICAR anti-virus test file (68 bytes), which every scanner reports and
 * which harms nothing. Built from two halves so that this source file is not
 * itself a match for a scanner on a developer's machine.
 */
export const EICAR = Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*')

/** The name the test database gives the EICAR file; clamd reports it as `Eicar-Test-Signature.UNOFFICIAL`. */
export const EICAR_SIGNATURE = 'Eicar-Test-Signature'

export interface RunningClamd {
  address: ClamdAddress
  /** The unix socket (also with `tcp`: clamd then listens on both). */
  socket: string
  child: ChildProcess
  log(): string
  /** SIGTERM, SIGKILL after 5 s; removes the temporary folder. Safe to call twice. */
  stop(): Promise<void>
}

export function findClamd(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin', '/usr/local/sbin']) {
    if (dir === '') continue
    try {
      accessSync(join(dir, 'clamd'), constants.X_OK)
      return join(dir, 'clamd')
    } catch {
      // not here
    }
  }
  return undefined
}

/**
 * Starts clamd in the foreground with a database holding only the EICAR
 * signature (an MD5 `.hdb` line: md5:size:name). Resolves once it answers
 * zPING. Fails loudly when clamd is not installed: the test must not skip.
 */
export async function startClamd(options: { tcp?: boolean; streamMaxLength?: string; timeoutMs?: number } = {}): Promise<RunningClamd> {
  const bin = findClamd()
  if (bin === undefined)
    throw new Error(
      'clamd is not installed: apt-get install -y clamav clamav-daemon (scripts/test-all.sh does); the virus-scanning tests need a real clamd'
    )
  const dir = await mkdtemp(join(tmpdir(), 'parley-clamd-'))
  const db = join(dir, 'db')
  await mkdir(db)
  const md5 = createHash('md5').update(EICAR).digest('hex')
  await writeFile(join(db, 'test.hdb'), `${md5}:${EICAR.length}:${EICAR_SIGNATURE}\n`)
  const socket = join(dir, 'clamd.sock')
  const port = options.tcp === true ? await freePort() : undefined
  const config = join(dir, 'clamd.conf')
  await writeFile(
    config,
    [
      `LocalSocket ${socket}`,
      ...(port === undefined ? [] : ['TCPAddr 127.0.0.1', `TCPSocket ${port}`]),
      `DatabaseDirectory ${db}`,
      `TemporaryDirectory ${dir}`,
      `LogFile ${join(dir, 'clamd.log')}`,
      'Foreground yes',
      ...(options.streamMaxLength === undefined ? [] : [`StreamMaxLength ${options.streamMaxLength}`])
    ].join('\n') + '\n'
  )
  const child = spawn(bin, ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  for (const stream of [child.stdout, child.stderr]) stream?.on('data', (d: Buffer) => (log += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      await rm(dir, { recursive: true, force: true })
    })()
    await stopped
  }
  const address: ClamdAddress = port === undefined ? { path: socket } : { host: '127.0.0.1', port }
  const deadline = Date.now() + (options.timeoutMs ?? 30_000)
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop()
      throw new Error(`clamd exited (${child.exitCode ?? child.signalCode}) before it answered; its output:\n${log}`)
    }
    if (await pingClamd(address, { connectMs: 500, answerMs: 1000 }).catch(() => false)) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`clamd did not answer zPING within ${options.timeoutMs ?? 30_000} ms; its output:\n${log}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { address, socket, child, log: () => log, stop }
}

async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}
