/**
 * Why the mailbox refused something. Supernodes send these codes on the wire
 * (`/parley/mailbox/1.0.0`); a client uses the same codes for what it drops
 * itself (an item that does not verify) and adds UNREACHABLE for a supernode
 * it could not ask.
 */
export const MAILBOX_REFUSALS = [
  /** The frame or the item does not decode (wrong length, field, character, version). */
  'MALFORMED',
  /** The frame, the item or its sealed payload is over its limit. */
  'TOO_LARGE',
  /** The item's signature is not by the device key in its sender's credential. */
  'BAD_SIGNATURE',
  /** The sender's credential in the item does not verify (at the item's creation time). */
  'BAD_CREDENTIAL',
  /** The item's expiry has passed. */
  'EXPIRED',
  /** The item lives longer than LIMITS.mailbox.itemMaxTtlMs. */
  'TOO_LONG_LIVED',
  /** The item was created in the future (beyond the clock skew allowed for credentials). */
  'NOT_YET_VALID',
  /** The item is addressed to another user or device (checked by the recipient). */
  'WRONG_RECIPIENT',
  /** The peer has not said hello with a valid credential. */
  'NO_CREDENTIAL',
  /** The depositing peer is not the item's sender device (or not its user). */
  'NOT_SENDER',
  /** This supernode already holds, or has deleted, an item with this id from this sender for this device. */
  'REPLAYED',
  /** The sender's share of this supernode (for this recipient or in all) is used up. */
  'QUOTA',
  /** Too many requests: retry after `retryAfterMs`. */
  'RATE_LIMITED',
  /** This supernode keeps no more items. */
  'FULL',
  /** This node does not keep mailboxes now (not a supernode), or its storage failed: ask another. */
  'UNAVAILABLE',
  /** The supernode could not be reached or did not answer in time (client side only). */
  'UNREACHABLE'
] as const

export type MailboxRefusal = (typeof MAILBOX_REFUSALS)[number]

const KNOWN = new Set<string>(MAILBOX_REFUSALS)

export function isMailboxRefusal(value: unknown): value is MailboxRefusal {
  return typeof value === 'string' && KNOWN.has(value)
}

/** Every failure of the mailbox's codecs, store and service: decoders throw nothing else. */
export class MailboxError extends Error {
  override name = 'MailboxError'
  readonly code: MailboxRefusal
  /** With RATE_LIMITED: how long to wait. */
  readonly retryAfterMs: number | undefined

  constructor(code: MailboxRefusal, message: string, options: { cause?: unknown; retryAfterMs?: number } = {}) {
    super(message, { cause: options.cause })
    this.code = code
    this.retryAfterMs = options.retryAfterMs
  }
}
