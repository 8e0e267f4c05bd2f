import { sha256 } from '@parley/crypto'
import { fromBase64Url, isValidName, nameKey, toBase64Url } from '@parley/protocol'

/**
 * Ids are 16 bytes in base64url (22 characters): message ids are random,
 * conversation ids carry a prefix saying what they are:
 *
 * - `d:` + 16 bytes of SHA-256 over the two user names: the 1:1 conversation
 *   (a user's conversation with themself, `directConversation(me, me)`, is
 *   where their own devices sync);
 * - `g:` + 16 random bytes: a group.
 */
const ID_BYTES = 16
const ID_PATTERN = /^[A-Za-z0-9_-]{22}$/
const CONVERSATION_PATTERN = /^[dg]:[A-Za-z0-9_-]{22}$/
const encoder = new TextEncoder()

function randomId(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(ID_BYTES)))
}

/** A fresh message id: 16 random bytes, base64url. */
export function newMessageId(): string {
  return randomId()
}

/** A fresh group conversation id (`g:` and 16 random bytes). */
export function newGroupId(): string {
  return `g:${randomId()}`
}

/**
 * The id of the 1:1 conversation of two users: the same whichever of them
 * asks, and whatever the case of the names (names are unique case-insensitively).
 * Throws RangeError for a name that breaks the naming rule.
 */
export function directConversation(a: string, b: string): string {
  if (!isValidName(a) || !isValidName(b)) throw new RangeError('a conversation is between valid user names')
  const [first, second] = [nameKey(a), nameKey(b)].sort() as [string, string]
  const digest = sha256(encoder.encode(`parley/direct/v1\0${first}\0${second}`))
  return `d:${toBase64Url(digest.subarray(0, ID_BYTES))}`
}

/** True for the canonical base64url text of exactly 16 bytes. */
export function isMessageId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value) && fromBase64Url(value)?.length === ID_BYTES
}

export function isConversationId(value: unknown): value is string {
  return typeof value === 'string' && CONVERSATION_PATTERN.test(value) && fromBase64Url(value.slice(2))?.length === ID_BYTES
}

export function isGroupConversation(conv: string): boolean {
  return conv.startsWith('g:')
}

export function isDirectConversation(conv: string): boolean {
  return conv.startsWith('d:')
}
