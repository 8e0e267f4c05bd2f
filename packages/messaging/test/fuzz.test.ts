import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { peerIdOf } from '@parley/crypto'
import { LIMITS } from '@parley/protocol'
import fc from 'fast-check'
import {
  decodeEnvelope,
  directConversation,
  type Envelope,
  type EnvelopeFields,
  encodeEnvelope,
  KINDS,
  MessagingError,
  newGroupId,
  newMessageId,
  open,
  seal,
  signEnvelope
} from '../src/index.ts'
import { deviceKey, forge, REFUSALS } from './support.ts'

/**
 * Fuzzing the decoders: whatever the bytes, decodeEnvelope returns an
 * envelope or throws a MessagingError with a known code, and open() resolves
 * or rejects with one; never another error, never a crash. Random bytes
 * mostly stop at the first check, so most frames are near misses: valid
 * encodings mutated byte by byte, and envelopes with random fields and
 * bodies, correctly signed, which reach every check of every kind.
 */

const key = deviceKey(1)
const other = deviceKey(2)
const dm = directConversation('alice01', 'bobbie02')
const self = directConversation('alice01', 'alice01')
const group = newGroupId()
const encoder = new TextEncoder()
const counts = { accepted: 0, refused: new Map<string, number>() }

/** Decodes, and fails the property on anything but success or a MessagingError with a known code. */
function decodeOrRefuse(bytes: Uint8Array): Envelope | undefined {
  try {
    const e = decodeEnvelope(bytes)
    counts.accepted++
    return e
  } catch (err) {
    if (!(err instanceof MessagingError) || !REFUSALS.includes(err.code))
      throw new Error(`decodeEnvelope threw ${String(err)}`, { cause: err })
    counts.refused.set(err.code, (counts.refused.get(err.code) ?? 0) + 1)
    return undefined
  }
}

const VALID: EnvelopeFields[] = [
  { conv: dm, kind: 'text', from: 'alice01', lamport: 1, body: { text: 'hi "there" \\ 👋\n' } },
  { conv: group, kind: 'text', from: 'alice01', lamport: 2, body: { text: 'x', replyTo: newMessageId() } },
  { conv: dm, kind: 'edit', from: 'alice01', lamport: 3, body: { target: newMessageId(), text: 'y' } },
  { conv: dm, kind: 'delete', from: 'alice01', lamport: 4, body: { target: newMessageId() } },
  { conv: dm, kind: 'receipt', from: 'alice01', lamport: 5, body: { ids: [newMessageId(), newMessageId()], state: 'delivered' } },
  { conv: dm, kind: 'typing', from: 'alice01', lamport: 6, body: { active: false } },
  { conv: dm, kind: 'contact', from: 'alice01', lamport: 7, body: { action: 'request', message: 'hello' } },
  { conv: group, kind: 'group', from: 'alice01', lamport: 8, body: { action: 'create', name: 'G', members: ['bobbie02'], topic: 't' } },
  { conv: group, kind: 'group', from: 'alice01', lamport: 9, body: { action: 'invite', members: ['carol003'] } },
  {
    conv: self,
    kind: 'sync',
    from: 'alice01',
    lamport: 10,
    body: { contacts: [{ name: 'bobbie02', state: 'accepted' }], x: [1, { y: null }] }
  }
]
const valid = VALID.map((f) => encodeEnvelope(signEnvelope(f, key)))

/** Edits that keep most of a valid encoding. */
const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    op: fc.constant('ascii' as const),
    at: fc.nat(),
    byte: fc.constantFrom(...encoder.encode('{}[]",:0123456789.-eE \\u"ntrfa'))
  }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 32 }) })
)
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never

function mutate(input: Uint8Array, m: Mutation): Uint8Array {
  const at = input.length === 0 ? 0 : m.at % input.length
  const out = [...input]
  switch (m.op) {
    case 'flip':
      out[at] = (out[at] ?? 0) ^ (1 << m.bit)
      break
    case 'set':
    case 'ascii':
      out[at] = m.byte
      break
    case 'insert':
      out.splice(at, 0, ...m.bytes)
      break
    case 'delete':
      out.splice(at, m.length)
      break
    case 'truncate':
      out.length = at
      break
    case 'repeat':
      out.splice(at, 0, ...out.slice(at, at + m.length))
      break
  }
  return Uint8Array.from(out)
}

/** Values near the edges of what each field and body field takes. */
const name = fc.oneof(
  fc.constantFrom('alice01', 'bobbie02', 'Carol003', 'x', 'ALICE01', '1abcdef', 'a'.repeat(33)),
  fc.string({ maxLength: 40 })
)
const id = fc.oneof(
  fc.constant(null).map(() => newMessageId()),
  fc.constantFrom('AAAAAAAAAAAAAAAAAAAAAA', 'AAAAAAAAAAAAAAAAAAAAAB', '', 'short'),
  fc.string({ minLength: 22, maxLength: 22 })
)
const text = fc.oneof(
  fc.string({ maxLength: 64 }),
  fc.string({ unit: 'grapheme', maxLength: 32 }),
  fc.string({ unit: 'binary', maxLength: 32 }),
  fc.constantFrom('', '\u0000', '\ud800', 'ok\ttab\r\n', 'x'.repeat(LIMITS.messaging.topicMaxBytes + 1))
)
const smallInt = fc.oneof(fc.integer({ min: -2, max: 100 }), fc.constantFrom(0, 2 ** 53 - 1, 2 ** 53, 1.5, -0, 1e21))
const anyJson = fc.jsonValue({ maxDepth: 4 })
const fieldValue = fc.oneof(
  { weight: 4, arbitrary: text },
  { weight: 2, arbitrary: id },
  { weight: 2, arbitrary: name },
  { weight: 2, arbitrary: fc.array(name, { maxLength: 4 }) },
  { weight: 2, arbitrary: fc.array(id, { maxLength: 4 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom('create', 'invite', 'leave', 'topic', 'request', 'accept', 'decline', 'remove', 'read', 'delivered')
  },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: smallInt },
  { weight: 1, arbitrary: anyJson },
  { weight: 1, arbitrary: fc.array(fc.record({ name, state: fc.constantFrom('accepted', 'blocked', 'NO', '') }), { maxLength: 3 }) }
)
const BODY_FIELDS = [
  'text',
  'replyTo',
  'target',
  'ids',
  'state',
  'active',
  'action',
  'message',
  'name',
  'members',
  'topic',
  'contacts',
  'other'
]
const body = fc.oneof(
  { weight: 8, arbitrary: fc.dictionary(fc.constantFrom(...BODY_FIELDS), fieldValue, { maxKeys: 5 }) },
  { weight: 1, arbitrary: anyJson }
)
const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined, freq: 3 })
/** Bodies of the right shape for their kind, now and then with one field set to anything. */
const shapedBody = fc.oneof(
  fc.record({ kind: fc.constant('text' as const), body: fc.record({ text, replyTo: maybe(id) }) }),
  fc.record({ kind: fc.constant('edit' as const), body: fc.record({ target: id, text }) }),
  fc.record({ kind: fc.constant('delete' as const), body: fc.record({ target: id }) }),
  fc.record({
    kind: fc.constant('receipt' as const),
    body: fc.record({ ids: fc.array(id, { maxLength: 3 }), state: fc.constantFrom('delivered', 'read', 'seen') })
  }),
  fc.record({ kind: fc.constant('typing' as const), body: fc.record({ active: fc.boolean() }) }),
  fc.record({
    kind: fc.constant('contact' as const),
    body: fc.record({ action: fc.constantFrom('request', 'accept', 'decline', 'remove', 'poke'), message: maybe(text) })
  }),
  fc.record({
    kind: fc.constant('group' as const),
    body: fc.record({
      action: fc.constantFrom('create', 'invite', 'leave', 'topic'),
      name: maybe(text),
      members: maybe(fc.array(name, { maxLength: 4 })),
      topic: maybe(text)
    })
  }),
  fc.record({
    kind: fc.constant('sync' as const),
    body: fc.record({
      contacts: maybe(fc.array(fc.record({ name, state: fc.constantFrom('accepted', 'blocked', 'NO') }), { maxLength: 3 })),
      later: maybe(anyJson)
    })
  })
)
const CONV_OF_KIND: Record<string, string> = { group, sync: self, contact: dm }
const nearValid = fc
  .record({
    shaped: shapedBody,
    conv: fc.constantFrom(dm, group, self),
    rightConv: fc.boolean(),
    corrupt: fc.option(fc.tuple(fc.constantFrom(...BODY_FIELDS), fieldValue), { freq: 4 })
  })
  .map(({ shaped, conv, rightConv, corrupt }) => {
    const body: Record<string, unknown> = { ...shaped.body }
    if (corrupt !== null) body[corrupt[0]] = corrupt[1]
    return { kind: shaped.kind as string, conv: rightConv ? (CONV_OF_KIND[shaped.kind] ?? conv) : conv, body: body as unknown }
  })
const envelopeFields = fc
  .record({
    v: fc.oneof({ weight: 20, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
    id: fc.oneof({ weight: 8, arbitrary: fc.constant(null).map(() => newMessageId()) }, { weight: 1, arbitrary: id }),
    conv: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(dm, group, self) }, { weight: 1, arbitrary: fc.string({ maxLength: 26 }) }),
    kind: fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...KINDS) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) }),
    from: fc.oneof({ weight: 8, arbitrary: fc.constant('alice01') }, { weight: 1, arbitrary: name }),
    lamport: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 1000 }) }, { weight: 1, arbitrary: smallInt }),
    sentAt: fc.oneof({ weight: 8, arbitrary: fc.constant(1_700_000_000_000) }, { weight: 1, arbitrary: smallInt }),
    body,
    shaped: fc.option(nearValid, { nil: undefined, freq: 4 })
  })
  .map(({ shaped, ...fields }): Record<string, unknown> => (shaped === undefined ? fields : { ...fields, ...shaped }))

describe('fuzzing decodeEnvelope', () => {
  it('random bytes and random JSON', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        decodeOrRefuse(bytes)
      }),
      { numRuns: 30_000 }
    )
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        decodeOrRefuse(encoder.encode(JSON.stringify(value) ?? ''))
      }),
      { numRuns: 10_000 }
    )
  })

  it('valid encodings, mutated', () => {
    fc.assert(
      fc.property(fc.nat({ max: valid.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, mutations) => {
        const bytes = mutations.reduce(mutate, valid[i] as Uint8Array)
        const e = decodeOrRefuse(bytes)
        // A mutation that still decodes can only be a no-op: the signature covers every byte.
        if (e !== undefined) assert.deepEqual(bytes, valid[i])
      }),
      { numRuns: 40_000 }
    )
  })

  it('random fields and bodies, correctly signed: decode and signEnvelope agree', () => {
    fc.assert(
      fc.property(envelopeFields, fc.boolean(), (fields, otherDevice) => {
        let bytes: Uint8Array
        try {
          bytes = forge(otherDevice ? { ...fields, device: peerIdOf(other.publicKey) } : fields, key)
        } catch (err) {
          // Values JSON cannot hold (a lone surrogate, -0 stays 0...) are refused by the encoder itself.
          assert.ok(err instanceof MessagingError)
          return
        }
        const e = decodeOrRefuse(bytes)
        if (otherDevice) return assert.equal(e, undefined)
        let signed: Envelope | undefined
        try {
          signed = signEnvelope(fields as unknown as EnvelopeFields, key)
        } catch (err) {
          assert.ok(err instanceof MessagingError, String(err))
        }
        // What one device can sign, every other accepts, and nothing else.
        if (fields.v === 1) {
          assert.equal(e !== undefined, signed !== undefined, `decode ${e === undefined ? 'refused' : 'accepted'} what sign did not`)
          if (e !== undefined && signed !== undefined) assert.deepEqual(encodeEnvelope(signed), bytes)
        }
      }),
      { numRuns: 25_000 }
    )
    console.log(`# accepted ${counts.accepted}; refused ${JSON.stringify(Object.fromEntries(counts.refused))}`)
    for (const code of ['MALFORMED', 'TOO_LARGE', 'UNSUPPORTED_VERSION', 'UNKNOWN_KIND', 'BAD_BODY', 'BAD_DEVICE', 'BAD_SIGNATURE']) {
      assert.ok((counts.refused.get(code) ?? 0) > 0 || code === 'TOO_LARGE', `the fuzzer never reached ${code}`)
    }
    assert.ok(counts.accepted > 1000, 'the fuzzer reached the end of decoding too rarely')
  })
})

describe('fuzzing open', () => {
  const device = deviceKey(5)

  it('random bytes and mutated boxes', async () => {
    const boxes = await Promise.all(
      [new Uint8Array(0), encoder.encode('hello'), valid[0] as Uint8Array].map((p) => seal(p, device.publicKey))
    )
    const check = async (bytes: Uint8Array, original?: Uint8Array): Promise<void> => {
      try {
        await open(bytes, device.seed)
        if (original !== undefined) assert.deepEqual(bytes, original)
        else assert.fail('random bytes opened')
      } catch (err) {
        if (!(err instanceof MessagingError) || err.code !== 'BAD_SEAL') throw new Error(`open threw ${String(err)}`, { cause: err })
      }
    }
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        await check(bytes)
      }),
      { numRuns: 97_000 }
    )
    // Random bytes rarely start like a box (version 1, long enough): these do, and reach the decryption.
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 48, maxLength: 200 }), async (bytes) => {
        await check(Uint8Array.of(1, ...bytes))
      }),
      { numRuns: 2_000 }
    )
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: boxes.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (i, mutations) => {
        await check(mutations.reduce(mutate, boxes[i] as Uint8Array), boxes[i])
      }),
      { numRuns: 1_000 }
    )
  })
})
