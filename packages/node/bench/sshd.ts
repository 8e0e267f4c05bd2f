// A private OpenSSH server on loopback for the file-transfer bench's scp
// baseline: its own host key, client key, authorized_keys and config in a
// temporary folder, run as the current user on a free port, nothing from
// /etc/ssh. Debian's `openssh-server` is installed with apt-get when it is
// missing and the bench runs as root; otherwise startSshd fails and says how
// to install it.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export const SSHD = '/usr/sbin/sshd'
/** The Debian package with sshd (it brings the ssh and scp client with it). */
export const SSHD_PACKAGE = 'openssh-server'

export interface RunningSshd {
  port: number
  user: string
  /** The client's private key, for `-i`. */
  clientKey: string
  /** Options every ssh/scp call to this server takes (port, key, no host key checks, no prompts). */
  options: string[]
  /** Everything sshd logged (-e). */
  log(): string
  /** SIGTERM, then waits; removes the folder. Safe to call twice. */
  stop(): Promise<void>
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * Makes sure sshd and scp are there: installs `openssh-server` (apt-get) when
 * this runs as root and they are missing, saying so through `note`; fails
 * with what to run otherwise. Resolves whether it installed anything.
 */
export async function ensureOpenssh(note: (message: string) => void): Promise<boolean> {
  if (executable(SSHD) && executable('/usr/bin/scp') && executable('/usr/bin/ssh-keygen')) return false
  if (process.getuid?.() !== 0)
    throw new Error(
      `${SSHD} or scp is missing: install the Debian package ${SSHD_PACKAGE} (sudo apt-get install -y ${SSHD_PACKAGE}), or run the bench as root to let it install it`
    )
  note(`${SSHD} is missing: installing ${SSHD_PACKAGE} with apt-get (the bench runs as root)`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  await run('apt-get', ['update', '-qq'], { env, maxBuffer: 16 * 1024 * 1024 })
  await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', SSHD_PACKAGE], { env, maxBuffer: 16 * 1024 * 1024 })
  if (!executable(SSHD)) throw new Error(`apt-get installed ${SSHD_PACKAGE} but ${SSHD} is still missing`)
  return true
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

/** Whether something on 127.0.0.1:port sends an SSH banner. */
async function bannerFrom(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('data', (d) => done(d.toString().startsWith('SSH-')))
    socket.once('error', () => done(false))
  })
}

/** Starts `sshd -D -e -f CONFIG -p PORT` on loopback and waits until it answers. */
export async function startSshd(options: { timeoutMs?: number } = {}): Promise<RunningSshd> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-bench-sshd-'))
  const hostKey = join(dir, 'host_ed25519')
  const clientKey = join(dir, 'client_ed25519')
  const authorized = join(dir, 'authorized_keys')
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey])
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', clientKey])
  await copyFile(`${clientKey}.pub`, authorized)
  // As root, sshd wants its privilege separation folder (the Debian service makes it at boot).
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 })
  const config = join(dir, 'sshd_config')
  await writeFile(
    config,
    [
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      // The folder is under /tmp: StrictModes would refuse its permissions.
      'StrictModes no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'ListenAddress 127.0.0.1',
      `PidFile ${join(dir, 'sshd.pid')}`,
      // OpenSSH 9's scp speaks SFTP by default.
      'Subsystem sftp internal-sftp',
      ''
    ].join('\n')
  )
  const port = await freePort()
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString()
  })
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        await exited
      }
      await rm(dir, { recursive: true, force: true })
    })()
    await stopped
  }
  const deadline = Date.now() + (options.timeoutMs ?? 10_000)
  while (!(await bannerFrom(port))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop()
      throw new Error(`sshd did not answer on 127.0.0.1:${port}; its log:\n${log}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  const user = userInfo().username
  return {
    port,
    user,
    clientKey,
    options: [
      '-i',
      clientKey,
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      `User=${user}`
    ],
    log: () => log,
    stop
  }
}

/** The cipher ssh picks with no -c (from `ssh -v`: "kex: client->server cipher: …"), and ssh's version. */
export async function defaultCipher(sshd: RunningSshd): Promise<{ cipher: string; version: string }> {
  const { stderr } = await run('ssh', ['-v', '-p', String(sshd.port), ...sshd.options, '127.0.0.1', 'true'])
  const cipher = /kex: client->server cipher: (\S+)/.exec(stderr)?.[1]
  if (cipher === undefined) throw new Error(`ssh -v did not say which cipher it used:\n${stderr}`)
  const { stderr: version } = await run('ssh', ['-V'])
  return { cipher, version: version.trim() }
}

/** `scp [-c CIPHER] SOURCE 127.0.0.1:TARGET` through this server; its wall time, ms. */
export async function scpOnce(sshd: RunningSshd, source: string, target: string, cipher?: string): Promise<number> {
  const args = [
    '-q',
    '-P',
    String(sshd.port),
    ...sshd.options,
    ...(cipher === undefined ? [] : ['-c', cipher]),
    source,
    `127.0.0.1:${target}`
  ]
  const started = performance.now()
  await run('scp', args)
  return performance.now() - started
}
