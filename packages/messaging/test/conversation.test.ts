import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { KeyPair } from '@parley/crypto'
import fc from 'fast-check'
import {
  Conversation,
  compareEnvelopes,
  type Envelope,
  type EnvelopeFields,
  groupState,
  MessagingError,
  newGroupId,
  newMessageId,
  signEnvelope
} from '../src/index.ts'
import { deviceKey } from './support.ts'

const conv = newGroupId()
const keys: Record<string, KeyPair> = { alice01: deviceKey(1), bobbie02: deviceKey(2), carol003: deviceKey(3) }

function env(
  from: string,
  lamport: number,
  kind: EnvelopeFields['kind'],
  body: Record<string, unknown>,
  over: Partial<EnvelopeFields> = {}
): Envelope {
  return signEnvelope({ conv, kind, from, lamport, body, sentAt: lamport * 1000, ...over }, keys[from] as KeyPair)
}

function lines(c: Conversation): string[] {
  return c.messages().map((m) => `${m.from}:${m.deleted ? '(deleted)' : m.text}${m.edited ? '*' : ''}`)
}

describe('conversations', () => {
  it('show lines in (lamport, id) order, whatever the order of arrival', () => {
    const a = env('alice01', 1, 'text', { text: 'one' })
    const b = env('bobbie02', 2, 'text', { text: 'two', replyTo: a.id })
    const c = env('carol003', 2, 'text', { text: 'three' })
    const expected = [a, b, c].sort(compareEnvelopes).map((e) => e.body.text)
    for (const order of [
      [a, b, c],
      [c, b, a],
      [b, a, c]
    ]) {
      const conversation = new Conversation()
      for (const e of order) assert.equal(conversation.add(e), 'added')
      assert.deepEqual(
        conversation.messages().map((m) => m.text),
        expected
      )
      assert.equal(conversation.message(b.id)?.replyTo, a.id)
      assert.equal(conversation.size, 3)
    }
  })

  it('count a duplicate once', () => {
    const conversation = new Conversation(conv)
    const a = env('alice01', 1, 'text', { text: 'one' })
    assert.equal(conversation.add(a), 'added')
    assert.equal(conversation.add({ ...a }), 'duplicate')
    assert.equal(conversation.size, 1)
    assert.ok(conversation.has(a.id))
    assert.equal(conversation.has(newMessageId()), false)
  })

  it('apply the last edit, let a delete win, and wait for a line that comes late', () => {
    const line = env('alice01', 1, 'text', { text: 'helo' })
    const edit1 = env('alice01', 2, 'edit', { target: line.id, text: 'hello' })
    const edit2 = env('alice01', 3, 'edit', { target: line.id, text: 'hello!' })
    const conversation = new Conversation()
    conversation.add(edit2)
    conversation.add(edit1)
    assert.deepEqual(conversation.messages(), [])
    conversation.add(line)
    const [shown] = conversation.messages()
    assert.equal(shown?.text, 'hello!')
    assert.equal(shown?.edited, true)
    assert.equal(shown?.editedAt, 3000)
    conversation.add(env('alice01', 4, 'delete', { target: line.id }))
    assert.deepEqual(lines(conversation), ['alice01:(deleted)'])
    assert.equal(conversation.messages()[0]?.text, '')
    conversation.add(env('alice01', 5, 'edit', { target: line.id, text: 'back?' }))
    assert.deepEqual(lines(conversation), ['alice01:(deleted)'])
  })

  it("ignore edits and deletes of another author's lines", () => {
    const line = env('alice01', 1, 'text', { text: 'mine' })
    const conversation = new Conversation()
    conversation.add(line)
    conversation.add(env('bobbie02', 2, 'edit', { target: line.id, text: 'yours' }))
    conversation.add(env('bobbie02', 3, 'delete', { target: line.id }))
    assert.deepEqual(lines(conversation), ['alice01:mine'])
    assert.equal(conversation.size, 3)
  })

  it('keep other kinds out of the lines', () => {
    const conversation = new Conversation()
    const line = env('alice01', 1, 'text', { text: 'hi' })
    conversation.add(line)
    conversation.add(env('bobbie02', 2, 'receipt', { ids: [line.id], state: 'read' }))
    conversation.add(env('bobbie02', 3, 'typing', { active: true }))
    assert.deepEqual(lines(conversation), ['alice01:hi'])
    assert.deepEqual(
      conversation.envelopes().map((e) => e.kind),
      ['text', 'receipt', 'typing']
    )
  })

  it('gather receipts per message and reader, read over delivered, in any order', () => {
    const line = env('alice01', 1, 'text', { text: 'hi' })
    const receipts = [
      env('bobbie02', 2, 'receipt', { ids: [line.id], state: 'delivered' }),
      env('bobbie02', 3, 'receipt', { ids: [line.id], state: 'read' }),
      env('carol003', 2, 'receipt', { ids: [line.id, newMessageId()], state: 'delivered' })
    ]
    for (const order of [receipts, [...receipts].reverse()]) {
      const conversation = new Conversation()
      for (const e of order) conversation.add(e)
      assert.deepEqual(conversation.receipts(line.id), { bobbie02: 'read', carol003: 'delivered' })
    }
    assert.deepEqual(new Conversation().receipts(line.id), {})
  })

  it("do not let another author's envelope with the same id shadow a line", () => {
    const line = env('alice01', 1, 'text', { text: 'real' })
    const copycat = env('bobbie02', 1, 'text', { text: 'fake' }, { id: line.id })
    for (const order of [
      [line, copycat],
      [copycat, line]
    ]) {
      const conversation = new Conversation()
      for (const e of order) assert.equal(conversation.add(e), 'added')
      assert.deepEqual(lines(conversation), ['alice01:real', 'bobbie02:fake'])
    }
  })

  it('keep one of two different envelopes under one author and id, the same one everywhere', () => {
    const a = env('alice01', 1, 'text', { text: 'first' })
    const b = env('alice01', 2, 'text', { text: 'second' }, { id: a.id })
    const shown = new Set<string>()
    for (const order of [
      [a, b],
      [b, a]
    ]) {
      const conversation = new Conversation()
      for (const e of order) conversation.add(e)
      assert.equal(conversation.size, 1)
      shown.add(lines(conversation).join())
    }
    assert.equal(shown.size, 1)
  })

  it('refuse envelopes of another conversation', () => {
    const conversation = new Conversation()
    conversation.add(env('alice01', 1, 'text', { text: 'hi' }))
    assert.equal(conversation.id, conv)
    assert.throws(
      () => conversation.add(env('alice01', 2, 'text', { text: 'elsewhere' }, { conv: newGroupId() })),
      (err: unknown) => err instanceof MessagingError && err.code === 'WRONG_CONVERSATION'
    )
  })
})

describe('groups', () => {
  const create = env('alice01', 1, 'group', { action: 'create', name: 'Band', members: ['bobbie02'], topic: 'gigs' })
  const invite = env('bobbie02', 2, 'group', { action: 'invite', members: ['carol003'] })
  const topic = env('carol003', 3, 'group', { action: 'topic', topic: 'rehearsals' })
  const leave = env('alice01', 4, 'group', { action: 'leave' })
  const strangerTopic = env('carol003', 1, 'group', { action: 'topic', topic: 'before I was invited' })

  it('follow create, invite, topic and leave', () => {
    assert.deepEqual(groupState([create, invite, topic, leave, strangerTopic]), {
      created: true,
      creator: 'alice01',
      name: 'Band',
      topic: 'rehearsals',
      members: ['bobbie02', 'carol003']
    })
    assert.deepEqual(groupState([invite, topic]), { created: false, members: [] })
  })

  it('come out the same in every order of arrival', () => {
    const all = [create, invite, topic, leave, strangerTopic, env('bobbie02', 5, 'group', { action: 'create', members: [] })]
    const expected = groupState(all)
    fc.assert(
      fc.property(fc.shuffledSubarray(all, { minLength: all.length }), (order) => {
        const conversation = new Conversation()
        for (const e of order) conversation.add(e)
        assert.deepEqual(conversation.group(), expected)
      }),
      { numRuns: 200 }
    )
  })
})
