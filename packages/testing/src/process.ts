import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** The `parley` program in this checkout. */
export const PARLEY_BIN = fileURLToPath(new URL('../../cli/bin/parley.js', import.meta.url))

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** `parley ARGS`, or inside a network namespace (`ip netns exec` execs, so the child is still the parley process). */
function commandLine(args: string[], netns: string | undefined): [string, string[]] {
  return netns === undefined
    ? [process.execPath, [PARLEY_BIN, ...args]]
    : ['ip', ['netns', 'exec', netns, process.execPath, PARLEY_BIN, ...args]]
}

/** Runs `parley ARGS` to completion, feeding `input` on stdin. */
export async function parley(
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; netns?: string } = {}
): Promise<RunResult> {
  return await new Promise((resolve, reject) => {
    const [command, argv] = commandLine(args, options.netns)
    const child = spawn(command, argv, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
    }, options.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code: code ?? -1, stdout, stderr })
    })
    child.stdin.end(options.input ?? '')
  })
}

export interface RunningRole {
  child: ChildProcess
  /** The parsed ready line. */
  ready: Record<string, unknown>
  /** Everything the process wrote on stderr so far. */
  stderr(): string
  /** SIGINT (or another signal), then wait for the exit status. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Starts a long-running `parley` role and waits for its `{"event":"ready"}` line. */
export async function startRole(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; netns?: string } = {}
): Promise<RunningRole> {
  const [command, argv] = commandLine(args, options.netns)
  const child = spawn(command, argv, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      resolve(code)
    })
  })
  const lines = createInterface({ input: child.stdout! })
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`parley ${args[0]} not ready in time; stderr:\n${stderr}`))
    }, options.timeoutMs ?? 60_000)
    lines.on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>
        if (parsed.event === 'ready') {
          clearTimeout(timer)
          resolve(parsed)
        }
      } catch {
        // not JSON: ignore
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`parley ${args[0]} exited with ${code} before it was ready; stderr:\n${stderr}`))
    })
  })
  return {
    child,
    ready,
    stderr: () => stderr,
    async stop(signal = 'SIGINT') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill(signal)
      return await exited
    }
  }
}
