import { readFile, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { CredentialVerifier, generateKeyPair, type KeyPair, keyPairFromSeed, type Verdict } from '@parley/crypto'
import { ensurePrivateDir, readSecretFile, writeSecretFile } from '@parley/crypto/keyfile'
import { type CredentialGrant, fromBase64Url, type NetworkFile, ParleyError, parseNetworkFile, toBase64Url } from '@parley/protocol'

export const DEFAULT_PROFILE_DIR = join(homedir(), '.parley')

/**
 * A profile folder (`--data DIR`): this device's key, the network it belongs
 * to, and its current credential. Secret files are 0600 in a 0700 folder.
 */
export class Profile {
  readonly dir: string

  constructor(dir: string = DEFAULT_PROFILE_DIR) {
    this.dir = resolve(dir)
  }

  get #deviceKeyPath(): string {
    return join(this.dir, 'device-key.json')
  }
  get #networkPath(): string {
    return join(this.dir, 'network.json')
  }
  get #credentialPath(): string {
    return join(this.dir, 'credential.json')
  }

  /** The device key, made on first use. */
  async deviceKey(): Promise<KeyPair> {
    const existing = await this.existingDeviceKey()
    if (existing !== undefined) return existing
    const pair = generateKeyPair()
    await writeSecretFile(
      this.#deviceKeyPath,
      `${JSON.stringify({ type: 'ed25519', seed: toBase64Url(pair.seed), publicKey: toBase64Url(pair.publicKey), createdAt: new Date().toISOString() }, null, 2)}\n`
    )
    return pair
  }

  async existingDeviceKey(): Promise<KeyPair | undefined> {
    const content = await readSecretFile(this.#deviceKeyPath)
    if (content === undefined) return undefined
    const stored = JSON.parse(content.toString('utf8')) as { seed?: string }
    const seed = fromBase64Url(stored.seed ?? '')
    if (seed?.length !== 32) throw new ParleyError('BAD_CONFIG', `${this.#deviceKeyPath} holds no valid device key`)
    return keyPairFromSeed(seed)
  }

  /**
   * The profile's network: `file` when given (remembered for later commands),
   * else the one remembered.
   */
  async network(file?: string): Promise<NetworkFile> {
    if (file !== undefined) {
      let parsed: unknown
      try {
        parsed = JSON.parse(await readFile(file, 'utf8'))
      } catch (err) {
        throw new ParleyError('BAD_CONFIG', `cannot read network file ${file}: ${(err as Error).message}`)
      }
      const network = checkedNetwork(parsed)
      await ensurePrivateDir(this.dir)
      await writeFile(this.#networkPath, `${JSON.stringify(network, null, 2)}\n`)
      return network
    }
    let content: string
    try {
      content = await readFile(this.#networkPath, 'utf8')
    } catch {
      throw new ParleyError('BAD_CONFIG', `the profile ${this.dir} has no network yet: pass --network FILE (made by "parley network init")`)
    }
    return checkedNetwork(JSON.parse(content))
  }

  async saveCredential(grant: CredentialGrant): Promise<void> {
    await writeSecretFile(this.#credentialPath, `${JSON.stringify(grant, null, 2)}\n`)
  }

  async credential(): Promise<CredentialGrant | undefined> {
    const content = await readSecretFile(this.#credentialPath)
    if (content === undefined) return undefined
    return JSON.parse(content.toString('utf8')) as CredentialGrant
  }

  async forgetCredential(): Promise<void> {
    const { rm } = await import('node:fs/promises')
    await rm(this.#credentialPath, { force: true })
  }

  /**
   * The user this profile belongs to (its chats, calls and files are that
   * user's): set at the first sign-in; undefined before. A profile used
   * before this was kept names its owner by its credential.
   */
  async owner(): Promise<{ name: string; displayName: string | null } | undefined> {
    let content: string | undefined
    try {
      content = await readFile(join(this.dir, 'owner.json'), 'utf8')
    } catch {
      content = undefined
    }
    if (content !== undefined) {
      const stored = JSON.parse(content) as { name?: unknown; displayName?: unknown }
      if (typeof stored.name !== 'string') throw new ParleyError('BAD_CONFIG', `${join(this.dir, 'owner.json')} names no user`)
      return { name: stored.name, displayName: typeof stored.displayName === 'string' ? stored.displayName : null }
    }
    const grant = await this.credential()
    return grant === undefined ? undefined : { name: grant.name, displayName: null }
  }

  async setOwner(owner: { name: string; displayName: string | null }): Promise<void> {
    await ensurePrivateDir(this.dir)
    await writeFile(join(this.dir, 'owner.json'), `${JSON.stringify(owner, null, 2)}\n`, { mode: 0o600 })
  }

  /** Whether this profile has used a network before (for the version check's "installed" event). */
  async isNew(): Promise<boolean> {
    return (await this.existingDeviceKey()) === undefined
  }
}

/** A network file whose trusted keys really are keys with their ids. */
function checkedNetwork(value: unknown): NetworkFile {
  const network = parseNetworkFile(value)
  try {
    new CredentialVerifier(network.keys)
  } catch (err) {
    throw new ParleyError('BAD_CONFIG', `network file: ${(err as Error).message}`)
  }
  return network
}

/** Checks the profile's credential offline against the network's trusted keys. */
export function checkCredential(network: NetworkFile, credential: string, device: KeyPair): Verdict {
  return new CredentialVerifier(network.keys).verify(credential, { deviceKey: device.publicKey })
}
