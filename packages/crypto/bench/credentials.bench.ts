// Credential throughput on one core: verifications per second with a
// long-lived CredentialVerifier (bytes and base64url text input), issues per
// second (signCredential + credentialToString), and, in the same run,
// `openssl speed ed25519` for the raw Ed25519 numbers the issue compares against
// (aim: credential verifications >= 0.8 x openssl verify/s).
//   node packages/crypto/bench/credentials.bench.ts
// Prints one JSON object on stdout; progress goes to stderr.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import {
  backendName,
  type Credential,
  CredentialVerifier,
  credentialToString,
  generateKeyPair,
  importPublicKey,
  keyIdOf,
  signCredential,
  verifySignature
} from '@parley/crypto'
import { concatBytes } from '@parley/protocol'
import { progressFor, rate } from '@parley/testing'

const progress = progressFor('credentials')

const RUN_MS = 2_000
const WARMUP_MS = 500
/** Measured rounds per operation, half of them before openssl speed and half after. */
const ROUNDS = 6
const OPENSSL_SECONDS = 3
/** The issue's aim: credential verifications per second >= 0.8 x openssl's Ed25519 verify/s. */
const AIM = 0.8

interface Measured {
  opsPerSec: number
  ops: number
  seconds: number
  /** Mean time per operation, microseconds. */
  meanUs: number
}

type Op = { op: () => void; batch: number }

/**
 * Operations measured in a synchronous loop: `warmUp()` runs each for
 * `WARMUP_MS` unmeasured, then each `rounds(n)` gives each operation n turns of
 * `RUN_MS / ROUNDS`, taking turns, so that a slow spell of a shared machine
 * hits them alike. The clock is read every `batch` calls.
 */
class Bench<K extends string> {
  readonly #entries: Array<[K, Op]>
  readonly #totals = new Map<K, { ops: number; ms: number }>()

  constructor(ops: Record<K, Op>) {
    this.#entries = Object.entries(ops) as Array<[K, Op]>
    for (const [name] of this.#entries) this.#totals.set(name, { ops: 0, ms: 0 })
  }

  warmUp(): void {
    for (const [, { op, batch }] of this.#entries) {
      const end = performance.now() + WARMUP_MS
      while (performance.now() < end) for (let i = 0; i < batch; i++) op()
    }
  }

  rounds(n: number): void {
    for (let round = 0; round < n; round++) {
      for (const [name, { op, batch }] of this.#entries) {
        const total = this.#totals.get(name) as { ops: number; ms: number }
        const start = performance.now()
        const end = start + RUN_MS / ROUNDS
        let now = start
        while (now < end) {
          for (let i = 0; i < batch; i++) op()
          total.ops += batch
          now = performance.now()
        }
        total.ms += now - start
      }
    }
  }

  results(): Record<K, Measured> {
    const out = {} as Record<K, Measured>
    for (const [name, { ops, ms }] of this.#totals) {
      const seconds = ms / 1000
      out[name] = {
        opsPerSec: rate(ops / seconds),
        ops,
        seconds: Number(seconds.toFixed(2)),
        meanUs: Number(((ms * 1000) / ops).toPrecision(3))
      }
    }
    return out
  }
}

interface OpensslResult {
  command: string
  version: string | null
  signPerSec: number | null
  verifyPerSec: number | null
  note?: string
}

const run = promisify(execFile)

async function opensslSpeed(): Promise<OpensslResult> {
  const command = `openssl speed -seconds ${OPENSSL_SECONDS} ed25519`
  let version: string | null = null
  try {
    version = (await run('openssl', ['version'])).stdout.trim()
    const { stdout } = await run('openssl', ['speed', '-seconds', String(OPENSSL_SECONDS), 'ed25519'], { timeout: 60_000 })
    // "                              sign    verify    sign/s verify/s"
    // " 253 bits EdDSA (Ed25519)   0.0000s   0.0001s  23147.0   7322.0"
    const line = stdout.split('\n').find((l) => l.includes('Ed25519'))
    const numbers = line?.match(/(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s*$/)
    if (numbers === null || numbers === undefined) {
      return { command, version, signPerSec: null, verifyPerSec: null, note: 'no "Ed25519 ... sign/s verify/s" line in the output' }
    }
    return { command, version, signPerSec: rate(Number(numbers[1])), verifyPerSec: rate(Number(numbers[2])) }
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const note = e.code === 'ENOENT' ? 'openssl is not installed' : `openssl speed failed: ${e.message.split('\n')[0]}`
    return { command, version, signPerSec: null, verifyPerSec: null, note }
  }
}

// The largest credential there is: a 32-character name and a 32-character key id (187 bytes).
const login = generateKeyPair()
// The login key id as servers derive it (12 characters); with a 32-character name this is the longest credential in use.
const keyId = keyIdOf(login.publicKey)
const verifier = new CredentialVerifier([{ id: keyId, publicKey: login.publicKey }])
const device = generateKeyPair()
const now = Date.now()
const fields: Credential = {
  version: 1,
  name: `Bench${'a'.repeat(27)}`,
  deviceKey: device.publicKey,
  issuedAt: now,
  expiresAt: now + 24 * 60 * 60 * 1000,
  serial: 123_456_789n,
  keyId
}
const signed = signCredential(fields, login.handle)
const bytes = signed.bytes
const text = credentialToString(signed)
const verifyOptions = { now, deviceKey: device.publicKey }

let refused = 0
const checkBytes = (): void => {
  if (!verifier.verify(bytes, verifyOptions).ok) refused++
}
const checkText = (): void => {
  if (!verifier.verify(text, verifyOptions).ok) refused++
}
// The same Ed25519 verification the verifier does, without decoding: the cost of the codec is the difference.
const loginPublic = importPublicKey(login.publicKey)
const signedMessage = concatBytes(new TextEncoder().encode('parley/credential/v1\0'), bytes.subarray(0, bytes.length - 64))
const checkRaw = (): void => {
  if (!verifySignature(loginPublic, signedMessage, signed.signature)) refused++
}
let serial = 0n
let issuedChars = 0
const issue = (): void => {
  issuedChars += credentialToString(signCredential({ ...fields, serial: serial++ }, login.handle)).length
}

progress(`backend ${backendName}, credential ${bytes.length} bytes (${text.length} base64url characters)`)
if (!verifier.verify(bytes, verifyOptions).ok) throw new Error('the bench credential does not verify')

// Half the rounds before openssl speed and half after, so that the ratios compare like with like.
const bench = new Bench({
  verifyBytes: { op: checkBytes, batch: 256 },
  verifyText: { op: checkText, batch: 256 },
  rawVerify: { op: checkRaw, batch: 256 },
  issue: { op: issue, batch: 128 }
})
progress(`warm-up: ${WARMUP_MS} ms each`)
bench.warmUp()
progress(`verify (bytes, text), raw Ed25519 verify, issue: ${ROUNDS / 2} rounds of ${Math.round(RUN_MS / ROUNDS)} ms each`)
bench.rounds(ROUNDS / 2)
progress(`openssl speed -seconds ${OPENSSL_SECONDS} ed25519`)
const openssl = await opensslSpeed()
progress(`verify (bytes, text), raw Ed25519 verify, issue: ${ROUNDS / 2} more rounds`)
bench.rounds(ROUNDS / 2)
const { verifyBytes, verifyText, rawVerify, issue: issueResult } = bench.results()
if (refused > 0 || issuedChars === 0) throw new Error(`${refused} verifications were refused`)

const ratio = (a: number, b: number | null): number | null => (b === null || b === 0 ? null : Number((a / b).toFixed(3)))

const result = {
  bench: 'credentials',
  backend: backendName,
  nodeOpenssl: process.versions.openssl,
  method: `one core: a single thread, synchronous loop, ${WARMUP_MS} ms warm-up each, then ${ROUNDS} rounds of ${Math.round(RUN_MS / ROUNDS)} ms each taking turns, half before openssl speed and half after`,
  credential: { bytes: bytes.length, base64urlChars: text.length, nameLength: fields.name.length, keyIdLength: keyId.length },
  verify: {
    bytes: verifyBytes,
    text: verifyText,
    rawEd25519: rawVerify
  },
  issue: issueResult,
  openssl,
  ratios: {
    verifyBytesVsOpenssl: ratio(verifyBytes.opsPerSec, openssl.verifyPerSec),
    verifyTextVsOpenssl: ratio(verifyText.opsPerSec, openssl.verifyPerSec),
    rawVerifyVsOpenssl: ratio(rawVerify.opsPerSec, openssl.verifyPerSec),
    issueVsOpensslSign: ratio(issueResult.opsPerSec, openssl.signPerSec)
  },
  aim: {
    verifyVsOpenssl: AIM,
    bytesMet: openssl.verifyPerSec === null ? null : verifyBytes.opsPerSec >= AIM * openssl.verifyPerSec,
    textMet: openssl.verifyPerSec === null ? null : verifyText.opsPerSec >= AIM * openssl.verifyPerSec
  }
}
process.stdout.write(`${JSON.stringify(result)}\n`)
