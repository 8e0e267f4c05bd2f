/**
 * Why a message was refused. Stable codes: the daemon maps them to its own
 * answers (a refused incoming envelope is dropped and counted, a refused
 * outgoing one is the caller's INVALID_REQUEST).
 */
export type MessagingRefusal =
  /** Not an envelope: not UTF-8 JSON, not canonical, a field missing, extra or of the wrong type. */
  | 'MALFORMED'
  /** Over `LIMITS.messaging.envelopeMaxBytes`, or a text over `textMaxBytes`. */
  | 'TOO_LARGE'
  /** An envelope version this code does not know (`v` other than 1). */
  | 'UNSUPPORTED_VERSION'
  /** A kind this code does not know (a newer client's): drop it quietly. */
  | 'UNKNOWN_KIND'
  /** The body does not have the shape its kind requires, or the kind does not fit the conversation. */
  | 'BAD_BODY'
  /** `device` is not the peer id of an Ed25519 key. */
  | 'BAD_DEVICE'
  /** The signature does not verify with the key inside `device`. */
  | 'BAD_SIGNATURE'
  /** A key given to seal or open is not a usable Ed25519 key. */
  | 'BAD_KEY'
  /** A sealed box that does not open: altered, truncated, or for another key. */
  | 'BAD_SEAL'
  /** Conversation.add was given an envelope of another conversation. */
  | 'WRONG_CONVERSATION'

export class MessagingError extends Error {
  override name = 'MessagingError'
  readonly code: MessagingRefusal
  constructor(code: MessagingRefusal, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.code = code
  }
}
