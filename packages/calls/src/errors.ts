/**
 * Why an operation of this package failed. Stable codes: the daemon maps
 * them to its own answers (a malformed voicemail file is the caller's
 * INVALID_REQUEST, a failed connection ends the call).
 */
export type CallsErrorCode =
  /** Not a WAV file, or a WAV file whose headers contradict each other or the file's size. */
  | 'MALFORMED'
  /** A well-formed WAV file in a format this package does not read (not 16-bit PCM, more than two channels, an odd rate). */
  | 'UNSUPPORTED'
  /** Audio longer than `LIMITS.calls.audio.maxDurationMs`, or a file over `wavMaxBytes`. */
  | 'TOO_LARGE'
  /** An argument out of range (a sample rate, a threshold). */
  | 'INVALID_ARGUMENT'
  /** The peer connection failed (ICE or DTLS) or closed before it connected. */
  | 'CONNECTION_FAILED'
  /** The object was closed. */
  | 'CLOSED'

export class CallsError extends Error {
  override name = 'CallsError'
  readonly code: CallsErrorCode
  constructor(code: CallsErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.code = code
  }
}
