import { LIMITS, nameKey } from '@parley/protocol'
import type { EditBody, GroupBody, ReceiptBody, ReceiptState, TextBody } from './bodies.ts'
import type { Envelope } from './envelope.ts'
import { MessagingError } from './errors.ts'
import { compareEnvelopes } from './lamport.ts'

/** A line of a conversation as it shows: its text after edits, or deleted. */
export interface ChatMessage {
  id: string
  conv: string
  /** The author's user name. */
  from: string
  /** The peer id of the device that wrote it. */
  device: string
  lamport: number
  sentAt: number
  /** The latest edit's text, or the original; empty once deleted. */
  text: string
  replyTo?: string
  edited: boolean
  deleted: boolean
  /** sentAt of the edit shown. */
  editedAt?: number
}

/** A group as its 'group' envelopes make it. */
export interface GroupState {
  /** False until the group's create has arrived. */
  created: boolean
  creator?: string
  name?: string
  topic?: string
  /** Current members, in the order they joined. */
  members: string[]
}

/** Messages are told apart by author and id: another user reusing an id cannot shadow a line. */
function keyOf(from: string, id: string): string {
  return `${nameKey(from)}\0${id}`
}

/**
 * The state of one conversation, built from its envelopes in any order of
 * arrival: replicas that hold the same envelopes show the same lines in the
 * same order, whatever order they came in, duplicates included.
 *
 * - Lines (`text`) are ordered by `compareEnvelopes`.
 * - An `edit` or `delete` applies only to a line of the same author; the
 *   edit that comes last in that order wins; a delete wins over every edit.
 *   One that arrives before its line waits for it.
 * - Receipts are gathered per message (`receipts(id)`), group envelopes
 *   make the group (`group()`); they and the other kinds are kept
 *   (`envelopes()`) but are not lines.
 *
 * Envelopes are taken as already checked (decodeEnvelope or signEnvelope).
 */
export class Conversation {
  #id: string | undefined
  readonly #byKey = new Map<string, Envelope>()
  readonly #ids = new Map<string, number>()
  #texts: Envelope[] = []
  #textsSorted = true
  /** Winning edit per line key. */
  readonly #edits = new Map<string, Envelope>()
  /** Lines with a delete, by line key. */
  readonly #deleted = new Set<string>()
  /** Per message id: who said what about it (read outranks delivered). */
  readonly #receipts = new Map<string, Map<string, ReceiptState>>()
  #groupOps: Envelope[] = []
  #sorted: Envelope[] | undefined

  /** Without an id, the conversation is the one of the first envelope added. */
  constructor(id?: string) {
    this.#id = id
  }

  /** The conversation's id (undefined while empty, when none was given). */
  get id(): string | undefined {
    return this.#id
  }

  /** 'duplicate' when this author's envelope with this id is here already. */
  add(e: Envelope): 'added' | 'duplicate' {
    this.#id ??= e.conv
    if (e.conv !== this.#id) throw new MessagingError('WRONG_CONVERSATION', `envelope of ${e.conv} given to ${this.#id}`)
    const key = keyOf(e.from, e.id)
    const held = this.#byKey.get(key)
    if (held !== undefined) {
      // Two different envelopes under one author and id: a sender at fault. Keep
      // the one with the smaller signature, so every replica keeps the same one.
      if (e.sig >= held.sig) return 'duplicate'
      this.#byKey.set(key, e)
      this.#rebuild()
      return 'added'
    }
    this.#byKey.set(key, e)
    this.#ids.set(e.id, (this.#ids.get(e.id) ?? 0) + 1)
    this.#index(e)
    this.#sorted = undefined
    return 'added'
  }

  /** True when any envelope with this id is here. */
  has(id: string): boolean {
    return this.#ids.has(id)
  }

  /** Envelopes held, of every kind. */
  get size(): number {
    return this.#byKey.size
  }

  /** Every envelope held, in conversation order. */
  envelopes(): Envelope[] {
    this.#sorted ??= [...this.#byKey.values()].sort(compareEnvelopes)
    return [...this.#sorted]
  }

  /** The lines, oldest first, with edits and deletes applied. */
  messages(): ChatMessage[] {
    return this.#sortedTexts().map((e) => this.#show(e))
  }

  /** One line by id (and author: without one, the first line in order with that id). */
  message(id: string, from?: string): ChatMessage | undefined {
    for (const e of this.#sortedTexts()) {
      if (e.id === id && (from === undefined || nameKey(from) === nameKey(e.from))) return this.#show(e)
    }
    return undefined
  }

  /**
   * Who has acknowledged a message, by lower-cased user name: 'read' once any
   * of their devices read it, else 'delivered'. The same in any order of arrival.
   */
  receipts(id: string): Record<string, ReceiptState> {
    return Object.fromEntries(this.#receipts.get(id) ?? [])
  }

  /** Members, name and topic of a group conversation, from its 'group' envelopes. */
  group(): GroupState {
    return groupState(this.#groupOps)
  }

  #sortedTexts(): Envelope[] {
    if (!this.#textsSorted) {
      this.#texts.sort(compareEnvelopes)
      this.#textsSorted = true
    }
    return this.#texts
  }

  #index(e: Envelope): void {
    switch (e.kind) {
      case 'text': {
        const last = this.#texts.at(-1)
        if (last !== undefined && compareEnvelopes(last, e) > 0) this.#textsSorted = false
        this.#texts.push(e)
        return
      }
      case 'edit': {
        const target = keyOf(e.from, (e.body as unknown as EditBody).target)
        const best = this.#edits.get(target)
        if (best === undefined || compareEnvelopes(best, e) < 0) this.#edits.set(target, e)
        return
      }
      case 'delete':
        this.#deleted.add(keyOf(e.from, (e.body as unknown as EditBody).target))
        return
      case 'group':
        this.#groupOps.push(e)
        return
      case 'receipt': {
        const { ids, state } = e.body as unknown as ReceiptBody
        const reader = nameKey(e.from)
        for (const id of ids) {
          let states = this.#receipts.get(id)
          if (states === undefined) this.#receipts.set(id, (states = new Map()))
          if (states.get(reader) !== 'read') states.set(reader, state)
        }
        return
      }
      default:
        return
    }
  }

  #rebuild(): void {
    this.#ids.clear()
    this.#texts = []
    this.#textsSorted = true
    this.#edits.clear()
    this.#deleted.clear()
    this.#receipts.clear()
    this.#groupOps = []
    this.#sorted = undefined
    for (const e of this.#byKey.values()) {
      this.#ids.set(e.id, (this.#ids.get(e.id) ?? 0) + 1)
      this.#index(e)
    }
  }

  #show(e: Envelope): ChatMessage {
    const body = e.body as unknown as TextBody
    const key = keyOf(e.from, e.id)
    const message: ChatMessage = {
      id: e.id,
      conv: e.conv,
      from: e.from,
      device: e.device,
      lamport: e.lamport,
      sentAt: e.sentAt,
      text: body.text,
      edited: false,
      deleted: false
    }
    if (body.replyTo !== undefined) message.replyTo = body.replyTo
    if (this.#deleted.has(key)) {
      message.text = ''
      message.deleted = true
      return message
    }
    const edit = this.#edits.get(key)
    if (edit !== undefined) {
      message.text = (edit.body as unknown as EditBody).text
      message.edited = true
      message.editedAt = edit.sentAt
    }
    return message
  }
}

/**
 * A group from its 'group' envelopes, in any order of arrival: they are
 * replayed in conversation order. The first create makes the group (its
 * author and the members it names); before it nothing counts. Members invite
 * and set the topic; anyone may leave. Envelopes of non-members are ignored.
 */
export function groupState(envelopes: Iterable<Envelope>): GroupState {
  const ops = [...envelopes].filter((e) => e.kind === 'group').sort(compareEnvelopes)
  const state: GroupState = { created: false, members: [] }
  const members = new Map<string, string>()
  const join = (name: string): void => {
    if (members.size < LIMITS.messaging.groupMaxMembers && !members.has(nameKey(name))) members.set(nameKey(name), name)
  }
  for (const e of ops) {
    const body = e.body as unknown as GroupBody
    if (!state.created) {
      if (body.action !== 'create') continue
      state.created = true
      state.creator = e.from
      if (body.name !== undefined) state.name = body.name
      if (body.topic !== undefined) state.topic = body.topic
      join(e.from)
      for (const name of body.members ?? []) join(name)
      continue
    }
    const isMember = members.has(nameKey(e.from))
    switch (body.action) {
      case 'invite':
        if (isMember) for (const name of body.members ?? []) join(name)
        break
      case 'leave':
        members.delete(nameKey(e.from))
        break
      case 'topic':
        if (isMember) state.topic = body.topic ?? ''
        break
      case 'create':
        break
    }
  }
  state.members = [...members.values()]
  return state
}
