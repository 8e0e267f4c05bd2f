import { assertNever, isValidName, LIMITS, nameKey } from '@parley/protocol'
import { isPlainObject } from './canonical-json.ts'
import { MessagingError } from './errors.ts'
import { isDirectConversation, isGroupConversation, isMessageId } from './ids.ts'

export const KINDS = ['text', 'edit', 'delete', 'receipt', 'typing', 'contact', 'group', 'sync', 'voicemail'] as const
export type Kind = (typeof KINDS)[number]

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && (KINDS as readonly string[]).includes(value)
}

/** A chat line. */
export interface TextBody {
  text: string
  /** The id of the message this one answers. */
  replyTo?: string
}
/** Replaces the text of one of the author's own lines. */
export interface EditBody {
  target: string
  text: string
}
/** Takes back one of the author's own lines. */
export interface DeleteBody {
  target: string
}
export type ReceiptState = 'delivered' | 'read'
export interface ReceiptBody {
  ids: string[]
  state: ReceiptState
}
export interface TypingBody {
  active: boolean
}
export type ContactAction = 'request' | 'accept' | 'decline' | 'remove'
export interface ContactBody {
  action: ContactAction
  /** With a request: a note for the other user. */
  message?: string
}
export type GroupAction = 'create' | 'invite' | 'leave' | 'topic'
/**
 * - create: `members` (the others; the creator is a member), `name?`, `topic?`
 * - invite: `members` (at least one)
 * - leave: nothing (the author leaves)
 * - topic: `topic` (empty clears it)
 */
export interface GroupBody {
  action: GroupAction
  name?: string
  members?: string[]
  topic?: string
}
export interface SyncContact {
  name: string
  /** The contact's state on the syncing device (`'accepted'`, `'blocked'`, ...): up to 32 characters [a-z_-]. */
  state: string
}
/**
 * A device telling the user's other devices about state they share. Open
 * ended: any fields within the envelope's limits; `contacts`, when present,
 * is checked.
 */
export interface SyncBody {
  contacts?: SyncContact[]
  [field: string]: unknown
}

/**
 * One part of a voicemail left after a call that was not answered: `parts`
 * envelopes with the same `call` make it whole. `data` is base64url of
 * `codec` audio (`ima-adpcm`, see @parley/calls) at `rate` Hz, `samples`
 * samples in this part; `seconds` is the whole message's length.
 */
export interface VoicemailBody {
  call: string
  part: number
  parts: number
  codec: 'ima-adpcm'
  rate: number
  samples: number
  seconds: number
  data: string
}

export interface BodyOf {
  text: TextBody
  edit: EditBody
  delete: DeleteBody
  receipt: ReceiptBody
  typing: TypingBody
  contact: ContactBody
  group: GroupBody
  sync: SyncBody
  voicemail: VoicemailBody
}

const CONTACT_ACTIONS: readonly string[] = ['request', 'accept', 'decline', 'remove'] satisfies ContactAction[]
const GROUP_ACTIONS: readonly string[] = ['create', 'invite', 'leave', 'topic'] satisfies GroupAction[]
const RECEIPT_STATES: readonly string[] = ['delivered', 'read'] satisfies ReceiptState[]
const SYNC_STATE = /^[a-z_-]{1,32}$/
/** C0 controls other than tab, newline and carriage return, and DEL: never part of a text. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0x7f) return true
  }
  return false
}

/** UTF-8 length of a well-formed string, without encoding it. */
export function utf8Length(text: string): number {
  let n = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4
      i++
    } else n += 3
  }
  return n
}

function bad(message: string): never {
  throw new MessagingError('BAD_BODY', message)
}

function checkText(value: unknown, field: string, maxBytes: number, options: { allowEmpty?: boolean; tooLarge?: boolean } = {}): void {
  if (typeof value !== 'string') bad(`${field} must be text`)
  if (value.length === 0 && options.allowEmpty !== true) bad(`${field} must not be empty`)
  if (!value.isWellFormed()) bad(`${field} holds a lone surrogate`)
  if (hasControl(value)) bad(`${field} holds a control character`)
  if (utf8Length(value) > maxBytes) {
    const message = `${field} is over ${maxBytes} bytes`
    if (options.tooLarge === true) throw new MessagingError('TOO_LARGE', message)
    bad(message)
  }
}

function checkOptionalText(body: Record<string, unknown>, field: string, maxBytes: number, allowEmpty = true): void {
  if (body[field] !== undefined) checkText(body[field], field, maxBytes, { allowEmpty })
}

function checkId(value: unknown, field: string): void {
  if (!isMessageId(value)) bad(`${field} must be a message id`)
}

function checkNames(value: unknown, field: string, max: number, min: number): void {
  if (!Array.isArray(value)) bad(`${field} must be a list of names`)
  if (value.length < min || value.length > max) bad(`${field} holds ${min} to ${max} names`)
  const seen = new Set<string>()
  for (const name of value) {
    if (!isValidName(name)) bad(`${field} holds something that is not a user name`)
    const key = nameKey(name)
    if (seen.has(key)) bad(`${field} names ${name} twice`)
    seen.add(key)
  }
}

function only(body: Record<string, unknown>, action: string, allowed: readonly string[]): void {
  for (const field of ['name', 'members', 'topic']) {
    if (body[field] !== undefined && !allowed.includes(field)) bad(`a group ${action} has no ${field}`)
  }
}

/**
 * Checks a body against its kind, and the kind against the conversation.
 * Fields a kind does not define are allowed and ignored (a newer client's
 * additions): they stay in the envelope, covered by its signature. Fields a
 * kind defines must have their types and bounds.
 *
 * @param selfConversation the conversation of the author with themself, where sync belongs
 * @throws MessagingError('BAD_BODY'), or ('TOO_LARGE') for a text over its limit
 */
export function checkBody(kind: Kind, body: unknown, conv: string, selfConversation: () => string): void {
  if (!isPlainObject(body)) bad('a body is an object')
  const limits = LIMITS.messaging
  switch (kind) {
    case 'text':
      checkText(body.text, 'text', limits.textMaxBytes, { tooLarge: true })
      if (body.replyTo !== undefined) checkId(body.replyTo, 'replyTo')
      return
    case 'edit':
      checkId(body.target, 'target')
      checkText(body.text, 'text', limits.textMaxBytes, { tooLarge: true })
      return
    case 'delete':
      checkId(body.target, 'target')
      return
    case 'receipt': {
      const { ids, state } = body
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > limits.receiptMaxIds) bad(`ids holds 1 to ${limits.receiptMaxIds} ids`)
      for (const id of ids) checkId(id, 'ids')
      if (typeof state !== 'string' || !RECEIPT_STATES.includes(state)) bad('state is delivered or read')
      return
    }
    case 'typing':
      if (typeof body.active !== 'boolean') bad('active must be true or false')
      return
    case 'contact':
      if (!isDirectConversation(conv)) bad('contact messages belong in a 1:1 conversation')
      if (typeof body.action !== 'string' || !CONTACT_ACTIONS.includes(body.action)) bad('action is request, accept, decline or remove')
      checkOptionalText(body, 'message', limits.contactMessageMaxBytes)
      return
    case 'group': {
      if (!isGroupConversation(conv)) bad('group messages belong in a group conversation')
      const { action } = body
      if (typeof action !== 'string' || !GROUP_ACTIONS.includes(action)) bad('action is create, invite, leave or topic')
      const max = limits.groupMaxMembers
      switch (action as GroupAction) {
        case 'create':
          only(body, action, ['name', 'members', 'topic'])
          checkNames(body.members, 'members', max - 1, 0)
          checkOptionalText(body, 'name', limits.groupNameMaxBytes, false)
          checkOptionalText(body, 'topic', limits.topicMaxBytes)
          return
        case 'invite':
          only(body, action, ['members'])
          checkNames(body.members, 'members', max - 1, 1)
          return
        case 'leave':
          only(body, action, [])
          return
        case 'topic':
          only(body, action, ['topic'])
          checkText(body.topic, 'topic', limits.topicMaxBytes, { allowEmpty: true })
          return
      }
      return
    }
    case 'sync': {
      if (conv !== selfConversation()) bad("sync messages belong in the author's conversation with themself")
      const { contacts } = body
      if (contacts === undefined) return
      if (!Array.isArray(contacts) || contacts.length > limits.syncMaxItems) bad(`contacts holds at most ${limits.syncMaxItems} entries`)
      for (const entry of contacts) {
        if (!isPlainObject(entry) || !isValidName(entry.name) || typeof entry.state !== 'string' || !SYNC_STATE.test(entry.state)) {
          bad('a synced contact is { name, state }')
        }
      }
      return
    }
    case 'voicemail': {
      if (!isDirectConversation(conv)) bad('a voicemail belongs in a 1:1 conversation')
      const { call, part, parts, codec, rate, samples, seconds, data } = body
      if (typeof call !== 'string' || !/^[A-Za-z0-9_-]{16,64}$/.test(call)) bad('call is the id of the call')
      if (!Number.isSafeInteger(parts) || (parts as number) < 1 || (parts as number) > limits.voicemailMaxParts)
        bad(`parts is 1 to ${limits.voicemailMaxParts}`)
      if (!Number.isSafeInteger(part) || (part as number) < 0 || (part as number) >= (parts as number)) bad('part is 0 to parts - 1')
      if (codec !== 'ima-adpcm') bad('codec is ima-adpcm')
      if (rate !== 8000 && rate !== 16000) bad('rate is 8000 or 16000')
      if (typeof seconds !== 'number' || !(seconds > 0) || seconds > LIMITS.calls.audio.maxDurationMs / 1000)
        bad('seconds is the length, up to 3 minutes')
      if (typeof data !== 'string' || !/^[A-Za-z0-9_-]*$/.test(data) || (data.length * 3) / 4 > limits.voicemailPartBytes)
        bad(`data is base64url of at most ${limits.voicemailPartBytes} bytes`)
      if (!Number.isSafeInteger(samples) || (samples as number) < 0 || (samples as number) > ((data as string).length * 3) / 2)
        bad('samples does not fit the data')
      return
    }
    default:
      assertNever(kind, 'kind')
  }
}
