import { join } from 'node:path'
import { CredentialVerifier, generateKeyPair, type KeyPair, keyIdOf, keyPairFromSeed } from '@parley/crypto'
import { readSecretFile, writeSecretFile } from '@parley/crypto/keyfile'
import { fromBase64Url, type PublishedKey, toBase64Url } from '@parley/protocol'

export interface LoginKey {
  id: string
  pair: KeyPair
  createdAt: string
  /** New credentials are signed with the one active key. */
  active: boolean
}

interface StoredKey {
  id: string
  seed: string
  createdAt: string
  active: boolean
}

export const KEYS_FILE = 'login-keys.json'

/**
 * The login server's signing keys, kept in `<data>/login-keys.json` (mode 0600).
 * Rotation adds a new active key and keeps the old ones published, so
 * credentials they signed stay valid until they expire; `remove` drops a key
 * once nothing it signed can still be alive.
 */
export class KeyRing {
  readonly #path: string
  #keys: LoginKey[]
  #verifier: CredentialVerifier

  private constructor(path: string, keys: LoginKey[]) {
    this.#path = path
    this.#keys = keys
    this.#verifier = new CredentialVerifier(keys.map((k) => ({ id: k.id, publicKey: k.pair.publicKey })))
  }

  /** Loads the key ring from the data folder, making a first key if there is none. */
  static async open(dataDir: string): Promise<KeyRing> {
    const path = join(dataDir, KEYS_FILE)
    const content = await readSecretFile(path)
    if (content === undefined) {
      const ring = new KeyRing(path, [newKey()])
      await ring.#save()
      return ring
    }
    const stored = JSON.parse(content.toString('utf8')) as { keys: StoredKey[] }
    const keys = stored.keys.map((k) => {
      const seed = fromBase64Url(k.seed)
      if (seed?.length !== 32) throw new Error(`${path}: key ${k.id} has no valid seed`)
      const pair = keyPairFromSeed(seed)
      if (keyIdOf(pair.publicKey) !== k.id) throw new Error(`${path}: key id ${k.id} does not match its key`)
      return { id: k.id, pair, createdAt: k.createdAt, active: k.active }
    })
    if (keys.filter((k) => k.active).length !== 1) throw new Error(`${path}: exactly one key must be active`)
    return new KeyRing(path, keys)
  }

  get active(): LoginKey {
    const key = this.#keys.find((k) => k.active)
    if (key === undefined) throw new Error('no active login key')
    return key
  }

  get keys(): readonly LoginKey[] {
    return this.#keys
  }

  /** Verifies credentials signed by any key in the ring, active or retired. */
  get verifier(): CredentialVerifier {
    return this.#verifier
  }

  published(): PublishedKey[] {
    return this.#keys.map((k) => ({ id: k.id, publicKey: toBase64Url(k.pair.publicKey), active: k.active, createdAt: k.createdAt }))
  }

  /**
   * Publishes a new key without signing with it yet: clients that refresh their
   * network file learn it before the first credential it signs (then `activate`).
   */
  async add(): Promise<LoginKey> {
    const key = { ...newKey(), active: false }
    this.#keys = [...this.#keys, key]
    await this.#save()
    return key
  }

  /** Signs new credentials with this key from now on; the others stay published, retired. */
  async activate(id: string): Promise<void> {
    if (!this.#keys.some((k) => k.id === id)) throw new Error(`no key ${id}`)
    this.#keys = this.#keys.map((k) => ({ ...k, active: k.id === id }))
    await this.#save()
  }

  /** A new key, active at once (after a compromise); `add` then `activate` is gentler on clients. */
  async rotate(): Promise<LoginKey> {
    const key = await this.add()
    await this.activate(key.id)
    return { ...key, active: true }
  }

  /** Drops a retired key: credentials it signed stop verifying. */
  async remove(id: string): Promise<void> {
    const key = this.#keys.find((k) => k.id === id)
    if (key === undefined) throw new Error(`no key ${id}`)
    if (key.active) throw new Error(`key ${id} is the active key: rotate first`)
    this.#keys = this.#keys.filter((k) => k.id !== id)
    await this.#save()
  }

  async #save(): Promise<void> {
    const stored: StoredKey[] = this.#keys.map((k) => ({
      id: k.id,
      seed: toBase64Url(k.pair.seed),
      createdAt: k.createdAt,
      active: k.active
    }))
    await writeSecretFile(this.#path, `${JSON.stringify({ keys: stored }, null, 2)}\n`)
    this.#verifier = new CredentialVerifier(this.#keys.map((k) => ({ id: k.id, publicKey: k.pair.publicKey })))
  }
}

function newKey(): LoginKey {
  const pair = generateKeyPair()
  return { id: keyIdOf(pair.publicKey), pair, createdAt: new Date().toISOString(), active: true }
}
