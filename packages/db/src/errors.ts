export interface AbortOptions {
  signal?: AbortSignal
}

/** SQLSTATE of a call that reached a partition which no longer holds that user (a split moved it): retry. */
export const MOVED_SQLSTATE = 'PZ001'

/** The database is unreachable or refused the connection: the caller may retry. */
export class DbUnavailableError extends Error {
  override name = 'DbUnavailableError'
}

/** Any other database failure: a bug or a broken schema, never the client's fault. */
export class DbError extends Error {
  override name = 'DbError'
  readonly sqlState: string | undefined
  constructor(message: string, options: { cause?: unknown; sqlState?: string } = {}) {
    super(message, { cause: options.cause })
    this.sqlState = options.sqlState
  }
}

const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'])

/**
 * The one place SQLSTATEs become typed errors. Class 08 (connection), 57P0x
 * (shutdown), 53 (resources) and socket errors mean "try again"; the rest are ours.
 */
export function mapDbError(err: unknown, what: string): Error {
  if (err instanceof DbUnavailableError || err instanceof DbError) return err
  const e = err as { code?: unknown; message?: unknown }
  const code = typeof e?.code === 'string' ? e.code : undefined
  if (
    code !== undefined &&
    (UNAVAILABLE_NODE_CODES.has(code) || code.startsWith('08') || code.startsWith('57P') || code.startsWith('53'))
  ) {
    return new DbUnavailableError(`database unavailable during ${what}`, { cause: err })
  }
  const message = typeof e?.message === 'string' ? e.message : ''
  // PL/Proxy reports a partition it cannot reach as XX000 with the libpq error in the text;
  // a partition mid-split that still refuses a moved user after the retries is "try again" too.
  const partitionDown =
    message.startsWith('PL/Proxy function') &&
    /PQconnectPoll|connection to server|server closed the connection|could not connect|terminating connection|no connection to the server|query timeout/i.test(
      message
    )
  if (
    partitionDown ||
    code === MOVED_SQLSTATE ||
    /Connection terminated|connection (?:is )?closed|Client has encountered a connection error|timeout expired/i.test(message)
  ) {
    return new DbUnavailableError(`database unavailable during ${what}`, { cause: err })
  }
  return new DbError(`database error during ${what}`, {
    cause: err,
    ...(code !== undefined && /^[0-9A-Z]{5}$/.test(code) ? { sqlState: code } : {})
  })
}
