import type { Output } from './output.ts'

/** What every command gets: its parsed flags, positionals, output, and the process's streams. */
export interface CommandContext {
  flags: Record<string, string | boolean | string[] | undefined>
  positionals: string[]
  out: Output
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  /**
   * For long-running roles: resolves when the user asks them to stop (SIGINT/SIGTERM).
   * Only a role that calls it catches those signals; other commands die on Ctrl-C as usual.
   */
  waitForStop: () => Promise<string>
}

export interface Command {
  /** Words that name it: ['account', 'register']. */
  path: string[]
  usage: string
  summary: string
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>
  /** Exactly how many positionals, or [min, max]. */
  positionals: number | [number, number]
  run(ctx: CommandContext): Promise<void>
}

export function stringFlag(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.flags[name]
  return typeof v === 'string' ? v : undefined
}
