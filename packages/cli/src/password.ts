import { UsageError } from './output.ts'

const MAX_STDIN = 64 * 1024

/** Reads a password from stdin (`--password-stdin`: all of it, less one trailing newline) or a no-echo prompt. */
export async function readPassword(
  stdin: NodeJS.ReadableStream & { isTTY?: boolean },
  fromStdin: boolean,
  prompt: string,
  confirm = false
): Promise<string> {
  if (fromStdin) {
    let text = ''
    for await (const chunk of stdin) {
      text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8')
      if (text.length > MAX_STDIN) throw new UsageError('--password-stdin: input too long')
    }
    return text.replace(/\r?\n$/, '')
  }
  if (stdin.isTTY !== true) throw new UsageError('no terminal to ask for the password: pipe it with --password-stdin')
  const first = await promptHidden(prompt)
  if (confirm && (await promptHidden('Repeat the password: ')) !== first) throw new UsageError('the passwords differ')
  return first
}

async function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin
  process.stderr.write(prompt)
  stdin.setRawMode(true)
  stdin.resume()
  try {
    return await new Promise<string>((resolve, reject) => {
      let text = ''
      const onData = (data: Buffer): void => {
        for (const ch of data.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData)
            process.stderr.write('\n')
            resolve(text)
            return
          }
          if (ch === '\u0003') {
            stdin.off('data', onData)
            reject(new UsageError('cancelled'))
            return
          }
          if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1)
          else text += ch
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
  }
}
