import { type ParseArgsConfig, parseArgs } from 'node:util'
import { accountRegister, login, logout, renew, search, whoami } from './commands/account.ts'
import { answerCommand, callCommand, voicemailCommand } from './commands/calls.ts'
import { contactsCommand, groupCommand, historyCommand, msgCommand, statusCommand } from './commands/chat.ts'
import { dbClusterInit, dbClusterUp, dbSplit } from './commands/db.ts'
import { filesCommand, sendFileCommand } from './commands/files.ts'
import { loginServer, loginServerKeys } from './commands/login-server.ts'
import { networkInit } from './commands/network.ts'
import { daemonCommand, netCommand, supernodeCommand, whoisCommand } from './commands/node.ts'
import { upCommand } from './commands/up.ts'
import type { Command, CommandContext } from './context.ts'
import { describeFailure, makeOutput, UsageError } from './output.ts'

export const COMMANDS: Command[] = [
  loginServerKeys,
  loginServer,
  dbClusterUp,
  dbClusterInit,
  dbSplit,
  supernodeCommand,
  daemonCommand,
  whoisCommand,
  netCommand,
  networkInit,
  accountRegister,
  login,
  logout,
  renew,
  whoami,
  search,
  contactsCommand,
  statusCommand,
  msgCommand,
  historyCommand,
  groupCommand,
  callCommand,
  answerCommand,
  voicemailCommand,
  sendFileCommand,
  filesCommand,
  upCommand
]

const GLOBAL_OPTIONS = {
  data: { type: 'string' },
  network: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

/** Every option of every command, to find the command words before knowing the command. */
const ALL_OPTIONS: ParseArgsConfig['options'] = Object.assign({}, GLOBAL_OPTIONS, ...COMMANDS.map((c) => c.options))

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.usage.length))
  return [
    'parley: peer-to-peer calls and messages',
    '',
    'Usage:',
    ...COMMANDS.map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`),
    '',
    'Every command takes --data DIR (profile; default ~/.parley), --network FILE and --json.',
    'Passwords come from a prompt or --password-stdin, never from an argument.'
  ].join('\n')
}

/** The longest command path that the words start with. */
function findCommand(words: string[]): Command | undefined {
  let best: Command | undefined
  for (const c of COMMANDS) {
    if (c.path.every((w, i) => words[i] === w) && (best === undefined || c.path.length > best.path.length)) best = c
  }
  return best
}

export interface MainIo {
  stdout?: (s: string) => void
  stderr?: (s: string) => void
  stdin?: CommandContext['stdin']
  waitForStop?: () => Promise<string>
}

/** Runs one `parley` invocation; returns the exit status. */
export async function main(argv: string[], io: MainIo = {}): Promise<number> {
  const stdout =
    io.stdout ??
    ((s: string) => {
      process.stdout.write(s)
    })
  const stderr =
    io.stderr ??
    ((s: string) => {
      process.stderr.write(s)
    })
  const wantsJson = argv.includes('--json')
  const out = makeOutput(wantsJson, stdout, stderr)
  try {
    // The command words are the positionals, wherever the flags stand (flag values are not words).
    const { positionals: words } = parseArgs({ args: argv, options: ALL_OPTIONS, allowPositionals: true, strict: false })
    const command = findCommand(words)
    if (command === undefined) {
      if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
        stdout(`${help()}\n`)
        return argv.length === 0 ? 2 : 0
      }
      throw new UsageError(`unknown command ${JSON.stringify(words.join(' ') || argv[0])}`)
    }
    const config: ParseArgsConfig = { args: argv, options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: true, strict: true }
    let parsed: ReturnType<typeof parseArgs>
    try {
      parsed = parseArgs(config)
    } catch (err) {
      throw new UsageError((err as Error).message.split('\n')[0] ?? 'bad arguments')
    }
    if (parsed.values.help === true) {
      stdout(`${command.usage}\n  ${command.summary}\n`)
      return 0
    }
    const positionals = parsed.positionals.slice(command.path.length)
    const [min, max] = typeof command.positionals === 'number' ? [command.positionals, command.positionals] : command.positionals
    if (positionals.length < min || positionals.length > max) throw new UsageError(`usage: ${command.usage}`)
    await command.run({
      flags: parsed.values as CommandContext['flags'],
      positionals,
      out,
      stdin: io.stdin ?? process.stdin,
      waitForStop: io.waitForStop ?? stopOnSignal
    })
    return 0
  } catch (err) {
    const { line, exit } = describeFailure(err)
    stderr(`${line}\n`)
    if (process.env.PARLEY_DEBUG === '1' && err instanceof Error) stderr(`${err.stack}\n`)
    return exit
  }
}

function stopOnSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string): void => {
      process.off('SIGINT', on)
      process.off('SIGTERM', on)
      resolve(signal)
    }
    process.on('SIGINT', on)
    process.on('SIGTERM', on)
  })
}
