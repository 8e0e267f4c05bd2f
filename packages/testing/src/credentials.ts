import {
  type Credential,
  credentialToString,
  generateKeyPair,
  type KeyPair,
  keyIdOf,
  signCredential,
  type TrustedKey
} from '@parley/crypto'

/** A login key of its own for tests, and credentials it signs without a login server. */
export interface TestNetwork {
  login: KeyPair
  trustedKeys: TrustedKey[]
  /** A credential for `device` as `name`, valid for an hour from a second ago; `overrides` change any field, `signer` the signing key. */
  credentialFor(device: KeyPair, name: string, overrides?: Partial<Credential>, signer?: KeyPair): string
}

export function testNetwork(): TestNetwork {
  const login = generateKeyPair()
  const keyId = keyIdOf(login.publicKey)
  return {
    login,
    trustedKeys: [{ id: keyId, publicKey: login.publicKey }],
    credentialFor(device, name, overrides = {}, signer = login) {
      const now = Date.now()
      return credentialToString(
        signCredential(
          {
            version: 1,
            name,
            deviceKey: device.publicKey,
            issuedAt: now - 1000,
            expiresAt: now + 3_600_000,
            serial: 1n,
            keyId,
            ...overrides
          },
          signer.handle
        )
      )
    }
  }
}
