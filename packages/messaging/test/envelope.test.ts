import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair, peerIdOf } from '@parley/crypto'
import { LIMITS, toBase64Url } from '@parley/protocol'
import fc from 'fast-check'
import {
  decodeEnvelope,
  directConversation,
  type Envelope,
  type EnvelopeFields,
  encodeEnvelope,
  isConversationId,
  isEnvelopeOf,
  isMessageId,
  LamportClock,
  MessagingError,
  type MessagingRefusal,
  newGroupId,
  newMessageId,
  publicKeyOfPeerId,
  signEnvelope
} from '../src/index.ts'
import { deviceKey, forge } from './support.ts'

const alice = deviceKey(1)
const bob = deviceKey(2)
const dm = directConversation('alice01', 'bobbie02')
const group = newGroupId()
const encoder = new TextEncoder()
const decoder = new TextDecoder()

function refused(code: MessagingRefusal, run: () => unknown): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof MessagingError, `expected a MessagingError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return true
  })
}

function text(body: Record<string, unknown>, over: Partial<EnvelopeFields> = {}): Envelope {
  return signEnvelope({ conv: dm, kind: 'text', from: 'alice01', lamport: 1, body, ...over }, alice)
}

/** A valid envelope's fields, to forge variations of. */
function fields(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 1,
    id: newMessageId(),
    conv: dm,
    kind: 'text',
    from: 'alice01',
    lamport: 3,
    sentAt: 1_700_000_000_000,
    body: { text: 'hi' },
    ...over
  }
}

describe('envelopes', () => {
  const samples: EnvelopeFields[] = [
    { conv: dm, kind: 'text', from: 'alice01', lamport: 1, body: { text: 'hello 👋\nsecond line' } },
    { conv: group, kind: 'text', from: 'alice01', lamport: 2, body: { text: 'an answer', replyTo: newMessageId() } },
    { conv: dm, kind: 'edit', from: 'alice01', lamport: 3, body: { target: newMessageId(), text: 'hello, again' } },
    { conv: dm, kind: 'delete', from: 'alice01', lamport: 4, body: { target: newMessageId() } },
    { conv: dm, kind: 'receipt', from: 'alice01', lamport: 5, body: { ids: [newMessageId(), newMessageId()], state: 'read' } },
    { conv: dm, kind: 'typing', from: 'alice01', lamport: 6, body: { active: true } },
    { conv: dm, kind: 'contact', from: 'alice01', lamport: 7, body: { action: 'request', message: 'Hi, it is Alice' } },
    {
      conv: group,
      kind: 'group',
      from: 'alice01',
      lamport: 8,
      body: { action: 'create', name: 'Band', members: ['bobbie02', 'carol003'] }
    },
    { conv: group, kind: 'group', from: 'alice01', lamport: 9, body: { action: 'topic', topic: '' } },
    {
      conv: directConversation('alice01', 'alice01'),
      kind: 'sync',
      from: 'alice01',
      lamport: 10,
      body: { contacts: [{ name: 'bobbie02', state: 'accepted' }], later: { anything: [1, 'two', null] } }
    }
  ]

  it('round trip for every kind, byte for byte', () => {
    for (const sample of samples) {
      const e = signEnvelope(sample, alice)
      assert.equal(e.v, 1)
      assert.ok(isMessageId(e.id))
      assert.equal(e.device, peerIdOf(alice.publicKey))
      const bytes = encodeEnvelope(e)
      const back = decodeEnvelope(bytes)
      assert.deepEqual(back, e)
      assert.deepEqual(encodeEnvelope(back), bytes)
    }
  })

  it('is canonical JSON with the keys sorted, and keeps an id and sentAt given', () => {
    const e = signEnvelope(
      { conv: dm, kind: 'typing', from: 'alice01', lamport: 1, body: { active: false }, id: 'AAAAAAAAAAAAAAAAAAAAAA', sentAt: 5 },
      alice
    )
    const json = decoder.decode(encodeEnvelope(e))
    assert.equal(
      json,
      `{"body":{"active":false},"conv":"${dm}","device":"${e.device}","from":"alice01","id":"AAAAAAAAAAAAAAAAAAAAAA","kind":"typing","lamport":1,"sentAt":5,"sig":"${e.sig}","v":1}`
    )
  })

  it('detaches the body from the caller and drops undefined fields', () => {
    const body = { text: 'x', replyTo: undefined }
    const e = text(body)
    body.text = 'changed'
    assert.deepEqual(e.body, { text: 'x' })
    assert.ok(isEnvelopeOf(e, 'text'))
    assert.equal(e.body.text, 'x')
  })

  it('keeps fields a kind does not define, under the signature', () => {
    const e = text({ text: 'x', mentions: ['bobbie02'] })
    assert.deepEqual(decodeEnvelope(encodeEnvelope(e)).body, { text: 'x', mentions: ['bobbie02'] })
  })

  it('takes texts up to 64 KiB of UTF-8, even all characters JSON escapes', () => {
    const max = LIMITS.messaging.textMaxBytes
    assert.equal(max, 64 * 1024)
    for (const t of ['€'.repeat((max - 1) / 3) + 'a', '"'.repeat(max), '\n'.repeat(max), '\\'.repeat(max)]) {
      const e = text({ text: t })
      const bytes = encodeEnvelope(e)
      assert.ok(bytes.length <= LIMITS.messaging.envelopeMaxBytes)
      assert.equal(decodeEnvelope(bytes).body.text, t)
    }
    refused('TOO_LARGE', () => text({ text: 'a'.repeat(max + 1) }))
    refused('TOO_LARGE', () => text({ text: '€'.repeat(max / 3 + 1) }))
    refused('TOO_LARGE', () => decodeEnvelope(forge(fields({ body: { text: 'a'.repeat(max + 1) } }), alice)))
    refused('TOO_LARGE', () =>
      signEnvelope({ conv: dm, kind: 'text', from: 'alice01', lamport: 1, body: { text: 'a', pad: 'x'.repeat(max * 3) } }, alice)
    )
    refused('TOO_LARGE', () => decodeEnvelope(new Uint8Array(LIMITS.messaging.envelopeMaxBytes + 1)))
  })

  it('takes groups of 256 members and receipts of 512 ids', () => {
    assert.ok(LIMITS.messaging.groupMaxMembers >= 256)
    const members = Array.from({ length: LIMITS.messaging.groupMaxMembers - 1 }, (_, i) => `member${String(i).padStart(26, '0')}`)
    const g = signEnvelope({ conv: group, kind: 'group', from: 'alice01', lamport: 1, body: { action: 'create', members } }, alice)
    assert.equal((decodeEnvelope(encodeEnvelope(g)).body.members as string[]).length, members.length)
    refused('BAD_BODY', () =>
      signEnvelope(
        { conv: group, kind: 'group', from: 'alice01', lamport: 1, body: { action: 'create', members: [...members, 'onemore1'] } },
        alice
      )
    )
    const ids = Array.from({ length: LIMITS.messaging.receiptMaxIds }, newMessageId)
    const r = signEnvelope({ conv: dm, kind: 'receipt', from: 'alice01', lamport: 1, body: { ids, state: 'delivered' } }, alice)
    assert.equal((decodeEnvelope(encodeEnvelope(r)).body.ids as string[]).length, ids.length)
    refused('BAD_BODY', () =>
      signEnvelope(
        { conv: dm, kind: 'receipt', from: 'alice01', lamport: 1, body: { ids: [...ids, newMessageId()], state: 'read' } },
        alice
      )
    )
  })
})

describe('refusals', () => {
  const valid = encodeEnvelope(text({ text: 'hi' }))
  const validJson = decoder.decode(valid)

  it('MALFORMED: not UTF-8 JSON, not an envelope object, not canonical', () => {
    const cases: (string | Uint8Array)[] = [
      '',
      'null',
      '[]',
      '"x"',
      '{',
      validJson.slice(0, -1),
      ` ${validJson}`,
      `${validJson}\n`,
      `\uFEFF${validJson}`,
      validJson.replace('{"body":', '{"body" :'),
      validJson.replace('"lamport":1', '"lamport":1.0'),
      validJson.replace('"lamport":1', '"lamport":1e0'),
      validJson.replace('"v":1}', '"v":1,"v":1}'),
      validJson.replace('"hi"', '"\\u0068i"'),
      Uint8Array.of(0xff, 0xfe),
      Uint8Array.of(0x7b, 0xc0, 0x80, 0x7d)
    ]
    for (const c of cases) refused('MALFORMED', () => decodeEnvelope(typeof c === 'string' ? encoder.encode(c) : c))
    refused('MALFORMED', () => decodeEnvelope('{}' as unknown as Uint8Array))
  })

  it('MALFORMED: a field missing, extra or of the wrong type (even when signed)', () => {
    const cases: Record<string, unknown>[] = [
      fields({ id: 'short' }),
      fields({ id: 'AAAAAAAAAAAAAAAAAAAAAB' }), // trailing bits set: not canonical base64url
      fields({ id: 12 }),
      fields({ conv: 'x:AAAAAAAAAAAAAAAAAAAAAA' }),
      fields({ conv: 'd:AAAA' }),
      fields({ kind: 5 }),
      fields({ kind: 'Text!' }),
      fields({ from: 'al' }),
      fields({ from: 'élise01' }),
      fields({ lamport: 0 }),
      fields({ lamport: -1 }),
      fields({ lamport: 1.5 }),
      fields({ lamport: 2 ** 53 }),
      fields({ lamport: '3' }),
      fields({ sentAt: -1 }),
      fields({ sentAt: null }),
      fields({ body: [] }),
      fields({ body: 'text' }),
      fields({ v: '1' }),
      fields({ extra: true }),
      fields({ device: 7 }),
      (() => {
        const f = fields()
        delete f.sentAt
        return f
      })()
    ]
    for (const c of cases) refused('MALFORMED', () => decodeEnvelope(forge(c, alice)))
    const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)])
    refused('MALFORMED', () => decodeEnvelope(forge(fields({ body: { text: 'x', deep: nested(LIMITS.messaging.bodyMaxDepth) } }), alice)))
    decodeEnvelope(forge(fields({ body: { text: 'x', deep: nested(LIMITS.messaging.bodyMaxDepth - 1) } }), alice))
    const noSig = JSON.parse(validJson) as Record<string, unknown>
    noSig.sig = 'AAAA'
    refused('MALFORMED', () => decodeEnvelope(encoder.encode(JSON.stringify(Object.fromEntries(Object.entries(noSig).sort())))))
    refused('MALFORMED', () => decodeEnvelope(encoder.encode('['.repeat(100_000))))
    refused('MALFORMED', () =>
      decodeEnvelope(encoder.encode(validJson.replace('{"body":{', `{"body":{"deep":${'['.repeat(50_000)}${']'.repeat(50_000)},`)))
    )
  })

  it('UNSUPPORTED_VERSION and UNKNOWN_KIND', () => {
    refused('UNSUPPORTED_VERSION', () => decodeEnvelope(forge(fields({ v: 2 }), alice)))
    refused('UNSUPPORTED_VERSION', () => decodeEnvelope(encoder.encode('{"v":2,"whatever":true}')))
    refused('UNKNOWN_KIND', () => decodeEnvelope(forge(fields({ kind: 'reaction' }), alice)))
    refused('UNKNOWN_KIND', () => signEnvelope({ conv: dm, kind: 'poll' as 'text', from: 'alice01', lamport: 1, body: {} }, alice))
  })

  it('BAD_BODY: every kind checks its fields', () => {
    const self = directConversation('alice01', 'alice01')
    const id = newMessageId()
    const cases: [string, string, Record<string, unknown>][] = [
      ['text', dm, {}],
      ['text', dm, { text: '' }],
      ['text', dm, { text: 5 }],
      ['text', dm, { text: 'bell \u0007' }],
      ['text', dm, { text: 'x', replyTo: 'nope' }],
      ['edit', dm, { text: 'x' }],
      ['edit', dm, { target: id }],
      ['edit', dm, { target: id, text: '' }],
      ['delete', dm, {}],
      ['delete', dm, { target: [id] }],
      ['receipt', dm, { ids: [], state: 'read' }],
      ['receipt', dm, { ids: [id], state: 'seen' }],
      ['receipt', dm, { ids: id, state: 'read' }],
      ['receipt', dm, { ids: [id, 'x'], state: 'read' }],
      ['typing', dm, { active: 'yes' }],
      ['typing', dm, {}],
      ['contact', dm, { action: 'poke' }],
      ['contact', dm, { action: 'request', message: 42 }],
      ['contact', dm, { action: 'request', message: 'x'.repeat(LIMITS.messaging.contactMessageMaxBytes + 1) }],
      ['contact', group, { action: 'request' }],
      ['group', dm, { action: 'leave' }],
      ['group', group, { action: 'dissolve' }],
      ['group', group, { action: 'create' }],
      ['group', group, { action: 'create', members: ['bobbie02', 'BOBBIE02'] }],
      ['group', group, { action: 'create', members: ['x'] }],
      ['group', group, { action: 'create', members: [], name: '' }],
      ['group', group, { action: 'invite', members: [] }],
      ['group', group, { action: 'invite', members: ['bobbie02'], topic: 'x' }],
      ['group', group, { action: 'leave', members: ['bobbie02'] }],
      ['group', group, { action: 'topic' }],
      ['group', group, { action: 'topic', topic: 'x'.repeat(LIMITS.messaging.topicMaxBytes + 1) }],
      ['sync', dm, {}],
      ['sync', directConversation('bobbie02', 'bobbie02'), {}],
      ['sync', self, { contacts: {} }],
      ['sync', self, { contacts: [{ name: 'bobbie02' }] }],
      ['sync', self, { contacts: [{ name: 'bobbie02', state: 'NOT OK' }] }],
      [
        'sync',
        self,
        { contacts: Array.from({ length: LIMITS.messaging.syncMaxItems + 1 }, () => ({ name: 'bobbie02', state: 'accepted' })) }
      ]
    ]
    for (const [kind, conv, body] of cases) {
      refused('BAD_BODY', () => decodeEnvelope(forge(fields({ kind, conv, body }), alice)))
      refused('BAD_BODY', () => signEnvelope({ kind: kind as 'text', conv, body, from: 'alice01', lamport: 1 }, alice))
    }
  })

  it('BAD_DEVICE: device is not the peer id of a usable Ed25519 key', () => {
    const other = peerIdOf(bob.publicKey)
    const notOnCurve = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 2 : 0)) // y = 2 has no x
    const smallOrder = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0)) // the identity
    const cases = [
      '',
      'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N', // an RSA peer id
      '16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY', // a secp256k1 peer id
      `${other}1`,
      other.replace('12D3KooW', '12D3KooX'),
      `${other.slice(0, -1)}0`,
      peerIdOf(notOnCurve),
      peerIdOf(smallOrder)
    ]
    for (const device of cases) refused('BAD_DEVICE', () => decodeEnvelope(forge(fields({ device }), alice)))
  })

  it('BAD_SIGNATURE: any change after signing, or another device', () => {
    const e = JSON.parse(validJson) as Record<string, unknown>
    const again = (over: Record<string, unknown>): Uint8Array =>
      encoder.encode(JSON.stringify(Object.fromEntries(Object.entries({ ...e, ...over }).sort(([a], [b]) => (a < b ? -1 : 1)))))
    refused('BAD_SIGNATURE', () => decodeEnvelope(again({ body: { text: 'ho' } })))
    refused('BAD_SIGNATURE', () => decodeEnvelope(again({ lamport: 2 })))
    refused('BAD_SIGNATURE', () => decodeEnvelope(again({ from: 'mallory1' })))
    refused('BAD_SIGNATURE', () => decodeEnvelope(again({ device: peerIdOf(bob.publicKey) })))
    refused('BAD_SIGNATURE', () => decodeEnvelope(again({ sig: toBase64Url(new Uint8Array(64)) })))
    decodeEnvelope(again({}))
  })
})

describe('ids and conversations', () => {
  it('a direct conversation is the same from both sides and in any case', () => {
    const id = directConversation('alice01', 'Bobbie02')
    assert.equal(id, directConversation('BOBBIE02', 'Alice01'))
    assert.ok(isConversationId(id))
    assert.match(id, /^d:[A-Za-z0-9_-]{22}$/)
    assert.notEqual(id, directConversation('alice01', 'carol003'))
    assert.notEqual(directConversation('alice01', 'alice01'), directConversation('bobbie02', 'bobbie02'))
    assert.throws(() => directConversation('alice01', 'x'), RangeError)
  })

  it('group and message ids are fresh 16 random bytes', () => {
    const g = newGroupId()
    assert.match(g, /^g:[A-Za-z0-9_-]{22}$/)
    assert.ok(isConversationId(g))
    assert.notEqual(g, newGroupId())
    assert.ok(isMessageId(newMessageId()))
    assert.equal(isMessageId('AAAAAAAAAAAAAAAAAAAAAB'), false)
  })

  it('peer ids give back the key inside them, and only for exact Ed25519 peer ids', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
        const key = deviceKey(seed[0] as number).publicKey
        const fresh = generateKeyPair().publicKey
        for (const k of [key, fresh]) assert.deepEqual(publicKeyOfPeerId(peerIdOf(k)), k)
      }),
      { numRuns: 50 }
    )
    assert.deepEqual(
      publicKeyOfPeerId('12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq'),
      Uint8Array.from(Buffer.from('1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e', 'hex'))
    )
    assert.equal(publicKeyOfPeerId('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'), undefined)
    assert.equal(publicKeyOfPeerId('12D3KooWzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'), undefined)
  })
})

describe('Lamport clocks', () => {
  it('tick past everything observed', () => {
    const clock = new LamportClock()
    assert.equal(clock.now, 0)
    assert.equal(clock.tick(), 1)
    clock.observe(10)
    clock.observe(4)
    clock.observe(Number.NaN)
    clock.observe(1.5)
    assert.equal(clock.now, 10)
    assert.equal(clock.tick(), 11)
    assert.equal(new LamportClock(41).tick(), 42)
    assert.throws(() => new LamportClock(-1), RangeError)
    const full = new LamportClock(Number.MAX_SAFE_INTEGER)
    assert.throws(() => full.tick(), RangeError)
  })

  it('cannot be run out by one far-ahead envelope', () => {
    const clock = new LamportClock(5)
    clock.observe(Number.MAX_SAFE_INTEGER)
    assert.equal(clock.now, 5)
    clock.observe(5 + LIMITS.messaging.lamportMaxJump)
    assert.equal(clock.now, 5 + LIMITS.messaging.lamportMaxJump)
    const small = new LamportClock(0, { maxJump: 10 })
    small.observe(11)
    small.observe(10)
    assert.equal(small.now, 10)
  })
})
