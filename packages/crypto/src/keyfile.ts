import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, readFile, rename, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'

/**
 * Files holding secrets (device keys, login keys, credentials, tokens): made
 * with mode 0600 in a 0700 folder, written whole or not at all
 * (temporary file, fsync, rename), and refused on read when others can read them.
 */
export async function writeSecretFile(path: string, content: string | Uint8Array): Promise<void> {
  const dir = dirname(path)
  await ensurePrivateDir(dir)
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(tmp, 'wx', 0o600)
  try {
    await handle.writeFile(content)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, path)
  await chmod(path, 0o600)
}

/** Reads a secret file; undefined when it does not exist; an error when it is readable by others. */
export async function readSecretFile(path: string): Promise<Buffer | undefined> {
  let info: Awaited<ReturnType<typeof stat>>
  try {
    info = await stat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if ((info.mode & 0o077) !== 0) {
    throw new Error(`${path} can be read by other users (mode ${(info.mode & 0o777).toString(8)}): chmod 600 it`)
  }
  return await readFile(path)
}

export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
}
