import { exitCodeOf, ParleyError } from '@parley/protocol'

/** Bad command line: exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

export interface Output {
  json: boolean
  /** The command's result: one JSON object with --json, else the human text. */
  result(value: object, human: string): void
  /** Progress or warnings for people: stderr, never stdout. */
  info(text: string): void
}

export function makeOutput(json: boolean, stdout: (s: string) => void, stderr: (s: string) => void): Output {
  return {
    json,
    result(value, human) {
      stdout(json ? `${JSON.stringify(value)}\n` : `${human}\n`)
    },
    info(text) {
      stderr(`${text}\n`)
    }
  }
}

/** One line on stderr and the exit status for any failure. */
export function describeFailure(err: unknown): { line: string; exit: number } {
  if (err instanceof UsageError) return { line: `parley: ${err.message} (see parley --help)`, exit: 2 }
  if (err instanceof ParleyError) {
    const hint = err.retryAfterMs === undefined ? '' : ` [retry after ${Math.ceil(err.retryAfterMs / 1000)} s]`
    return { line: `parley: ${err.message} (${err.code})${hint}`, exit: exitCodeOf(err.code) }
  }
  const message = err instanceof Error ? err.message : String(err)
  return { line: `parley: ${message.split('\n')[0]}`, exit: 1 }
}
