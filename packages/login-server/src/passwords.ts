import { hash, verify } from '@node-rs/argon2'

// @node-rs/argon2's Algorithm is a const enum, which erasable TypeScript cannot reference: Argon2id is 2.
const ARGON2ID = 2

/** Argon2id parameters. Default: OWASP's recommendation (m = 19 MiB, t = 2, p = 1). */
export interface PasswordHashing {
  memoryCost: number
  timeCost: number
  parallelism: number
}

export const OWASP_ARGON2ID: PasswordHashing = { memoryCost: 19_456, timeCost: 2, parallelism: 1 }

export class Passwords {
  readonly #params: PasswordHashing
  #dummy: Promise<string> | undefined

  constructor(params: PasswordHashing = OWASP_ARGON2ID) {
    this.#params = params
  }

  async hash(password: string): Promise<string> {
    return await hash(password, { algorithm: ARGON2ID, ...this.#params })
  }

  /** Checks a password against a PHC string; a malformed hash counts as a mismatch. */
  async verify(phc: string, password: string): Promise<boolean> {
    try {
      return await verify(phc, password)
    } catch {
      return false
    }
  }

  /**
   * Spends the same time as a real check, for a name that does not exist, so
   * that timing does not tell unknown names from wrong passwords.
   */
  async verifyNothing(password: string): Promise<false> {
    this.#dummy ??= this.hash('parley: no such account')
    await this.verify(await this.#dummy, password)
    return false
  }
}
