import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type KeyPair, sha256 } from '@parley/crypto'
import { nameKey, toBase64Url } from '@parley/protocol'
import fc from 'fast-check'
import {
  type ChatMessage,
  Conversation,
  compareEnvelopes,
  decodeEnvelope,
  type Envelope,
  type EnvelopeFields,
  encodeEnvelope,
  LamportClock,
  newGroupId,
  signEnvelope
} from '../src/index.ts'
import { deviceKey } from './support.ts'

/**
 * Property: a conversation converges. Several users, some with two devices,
 * write a causal history (each device's lamport is one more than the highest
 * it has seen; it answers, edits and deletes only what it has seen, and now
 * and then edits someone else's line or a line that never arrives). Replicas
 * then receive the envelopes in random orders, first partitioned (each a
 * random part, with duplicates), then merging with each other, then
 * everything. Replicas holding the same envelopes always show the same lines;
 * in the end every replica shows exactly the lines a plain specification
 * computes from the whole history: none lost, none doubled, the same order.
 */

const DEVICES: { author: string; key: KeyPair }[] = [
  { author: 'alice01', key: deviceKey(11) },
  { author: 'alice01', key: deviceKey(12) },
  { author: 'bobbie02', key: deviceKey(21) },
  { author: 'Bobbie02', key: deviceKey(22) }, // the same user, the name in another case
  { author: 'carol003', key: deviceKey(31) }
]
const ACTIONS = ['text', 'text', 'reply', 'edit', 'edit', 'delete', 'foreign', 'dangling', 'receipt', 'learn', 'learn', 'sync'] as const

interface Step {
  device: number
  action: (typeof ACTIONS)[number]
  pick: number
}

interface History {
  envelopes: Envelope[]
  /** [earlier, later] pairs: `later` was written by a device that had seen `earlier`. */
  seen: [string, string][]
}

function idFrom(salt: number, n: number): string {
  return toBase64Url(sha256(new TextEncoder().encode(`${salt}/${n}`)).subarray(0, 16))
}

function writeHistory(conv: string, salt: number, steps: Step[]): History {
  const envelopes: Envelope[] = []
  const seen: [string, string][] = []
  const devices = DEVICES.map(() => ({ clock: new LamportClock(), known: new Set<number>() }))
  const learn = (d: number, i: number): void => {
    const state = devices[d]!
    if (state.known.has(i)) return
    state.known.add(i)
    state.clock.observe(envelopes[i]!.lamport)
  }
  const known = (d: number, test: (e: Envelope) => boolean): Envelope[] =>
    [...devices[d]!.known].map((i) => envelopes[i]!).filter((e) => e.kind === 'text' && test(e))
  for (const [n, step] of steps.entries()) {
    const { author, key } = DEVICES[step.device]!
    const state = devices[step.device]!
    const write = (kind: EnvelopeFields['kind'], body: Record<string, unknown>, after?: Envelope): void => {
      const e = signEnvelope(
        { conv, kind, from: author, lamport: state.clock.tick(), body, id: idFrom(salt, n), sentAt: 1_700_000_000_000 + n },
        key
      )
      if (after !== undefined) seen.push([after.id, e.id])
      envelopes.push(e)
      state.known.add(envelopes.length - 1)
    }
    const mine = known(step.device, (e) => nameKey(e.from) === nameKey(author))
    const theirs = known(step.device, (e) => nameKey(e.from) !== nameKey(author))
    const any = [...mine, ...theirs]
    const pick = <T>(list: T[]): T | undefined => list[step.pick % Math.max(1, list.length)]
    switch (step.action) {
      case 'text':
        write('text', { text: `line ${n}` })
        break
      case 'reply': {
        const target = pick(any)
        if (target === undefined) write('text', { text: `line ${n}` })
        else write('text', { text: `answer ${n}`, replyTo: target.id }, target)
        break
      }
      case 'edit':
      case 'delete': {
        const target = pick(mine)
        if (target === undefined) write('text', { text: `line ${n}` })
        else if (step.action === 'edit') write('edit', { target: target.id, text: `edited ${n}` }, target)
        else write('delete', { target: target.id }, target)
        break
      }
      case 'foreign': {
        const target = pick(theirs)
        if (target !== undefined) write(step.pick % 2 === 0 ? 'edit' : 'delete', { target: target.id, text: `not yours ${n}` })
        break
      }
      case 'dangling':
        write(step.pick % 2 === 0 ? 'edit' : 'delete', { target: idFrom(salt + 1, n), text: `nothing there ${n}` })
        break
      case 'receipt': {
        const target = pick(theirs)
        if (target !== undefined) write('receipt', { ids: [target.id], state: 'read' }, target)
        break
      }
      case 'learn':
        if (envelopes.length > 0) learn(step.device, step.pick % envelopes.length)
        break
      case 'sync':
        for (const i of devices[step.pick % devices.length]!.known) learn(step.device, i)
        break
    }
  }
  return { envelopes, seen }
}

/** The specification, computed straight from the whole history. */
function expectedLines(all: Envelope[]): ChatMessage[] {
  return all
    .filter((e) => e.kind === 'text')
    .sort(compareEnvelopes)
    .map((t) => {
      const ofLine = (e: Envelope): boolean => nameKey(e.from) === nameKey(t.from) && e.body.target === t.id
      const edits = all.filter((e) => e.kind === 'edit' && ofLine(e)).sort(compareEnvelopes)
      const deleted = all.some((e) => e.kind === 'delete' && ofLine(e))
      const last = edits.at(-1)
      const line: ChatMessage = {
        id: t.id,
        conv: t.conv,
        from: t.from,
        device: t.device,
        lamport: t.lamport,
        sentAt: t.sentAt,
        text: deleted ? '' : ((last ?? t).body.text as string),
        edited: !deleted && last !== undefined,
        deleted
      }
      if (t.body.replyTo !== undefined) line.replyTo = t.body.replyTo as string
      if (!deleted && last !== undefined) line.editedAt = last.sentAt
      return line
    })
}

/** A deterministic shuffle, keyed by a number fast-check chose. */
function shuffled<T>(items: T[], salt: number): T[] {
  const keyed = items.map((item, i) => ({ item, key: sha256(new TextEncoder().encode(`${salt}:${i}`))[0]! * 65536 + i }))
  return keyed.sort((a, b) => a.key - b.key).map((k) => k.item)
}

const step = fc.record({ device: fc.nat({ max: DEVICES.length - 1 }), action: fc.constantFrom(...ACTIONS), pick: fc.nat({ max: 1000 }) })
const plan = fc.record({
  salt: fc.nat(),
  steps: fc.array(step, { minLength: 5, maxLength: 80, size: 'large' }),
  replicas: fc.integer({ min: 2, max: 5 }),
  partitioned: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 200, size: 'large' }),
  merges: fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { maxLength: 12, size: 'large' })
})

describe('convergence', () => {
  it('replicas that received the same envelopes in any order, with duplicates, show the same lines', () => {
    const conv = newGroupId()
    let runs = 0
    let envelopesWritten = 0
    fc.assert(
      fc.property(plan, ({ salt, steps, replicas, partitioned, merges }) => {
        const { envelopes, seen } = writeHistory(conv, salt, steps)
        if (envelopes.length === 0) return
        runs++
        envelopesWritten += envelopes.length
        // What travels is the wire form; every delivery is a copy of its own.
        const wire = envelopes.map((e) => decodeEnvelope(encodeEnvelope(e)))
        const nodes = Array.from({ length: replicas }, () => new Conversation(conv))
        const deliver = (r: number, i: number): void => {
          nodes[r]!.add(structuredClone(wire[i]!))
        }
        for (const [r, i] of partitioned) deliver(r % replicas, i % envelopes.length)
        for (const [from, to, order] of merges) {
          const source = nodes[from % replicas]!.envelopes()
          for (const e of shuffled(source, order)) nodes[to % replicas]!.add(e)
        }
        // Replicas that hold the same envelopes show the same lines, at every point.
        const held = nodes.map((c) =>
          c
            .envelopes()
            .map((e) => `${e.from}/${e.id}`)
            .sort()
            .join()
        )
        for (let a = 0; a < replicas; a++)
          for (let b = a + 1; b < replicas; b++) if (held[a] === held[b]) assert.deepEqual(nodes[a]!.messages(), nodes[b]!.messages())
        // Then everything reaches everyone, in an order of its own.
        for (const [r, node] of nodes.entries())
          for (const i of shuffled([...envelopes.keys()], salt + r)) node.add(structuredClone(wire[i]!))
        const expected = expectedLines(envelopes)
        for (const node of nodes) {
          assert.equal(node.size, envelopes.length)
          const shown = node.messages()
          assert.deepEqual(shown, expected)
          assert.equal(new Set(shown.map((m) => m.id)).size, shown.length)
          assert.deepEqual(node.envelopes(), nodes[0]!.envelopes())
          // Causality: whatever was written after seeing a line comes after it.
          const at = new Map(node.envelopes().map((e, i) => [e.id, i]))
          for (const [earlier, later] of seen) assert.ok((at.get(earlier) as number) < (at.get(later) as number))
        }
      }),
      { numRuns: 300 }
    )
    assert.ok(runs > 100, `only ${runs} runs wrote something`)
    console.log(`# ${runs} histories, ${envelopesWritten} envelopes`)
  })
})
