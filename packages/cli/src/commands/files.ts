import { resolve } from 'node:path'
import { type Command, stringFlag } from '../context.ts'
import { UsageError } from '../output.ts'
import { callDaemon } from './node.ts'

interface TransferView {
  id: string
  direction: 'outgoing' | 'incoming'
  peer: string
  files: Array<{ path: string; size: number }>
  state: string
  reason: string | null
  folder: string | null
  bytes: number
  total: number
}

function line(t: TransferView): string {
  const what = t.files.length === 1 ? (t.files[0]?.path ?? '') : `${t.files.length} files`
  const way = t.direction === 'outgoing' ? `to ${t.peer}` : `from ${t.peer}`
  const progress = t.state === 'accepted' ? `  ${t.bytes}/${t.total} bytes` : ''
  return `${t.id}  ${t.state}  ${way}  ${what} (${t.total} bytes)${progress}${t.folder ? `  → ${t.folder}` : ''}${t.reason ? `  (${t.reason})` : ''}`
}

export const sendFileCommand: Command = {
  path: ['send-file'],
  usage: 'parley send-file NAME PATH [PATH ...]',
  summary: 'offers files or folders to a contact (they must be online and accept)',
  options: {},
  positionals: [2, 101],
  async run(ctx) {
    const [to, ...paths] = ctx.positionals as [string, ...string[]]
    const { transfer } = (await callDaemon(ctx, '/v1/files', { method: 'POST', body: { to, paths: paths.map((p) => resolve(p)) } })) as {
      transfer: TransferView
    }
    ctx.out.result({ id: transfer.id, state: transfer.state, bytes: transfer.total }, `offered to ${to}: ${line(transfer)}`)
  }
}

const FILES_USAGE = 'parley files list | accept ID [--to DIR] | decline ID | cancel ID'

export const filesCommand: Command = {
  path: ['files'],
  usage: FILES_USAGE,
  summary: 'file transfers: the list, and accepting, declining or cancelling one',
  options: { to: { type: 'string' } },
  positionals: [1, 2],
  async run(ctx) {
    const [action, id] = ctx.positionals as [string, string | undefined]
    if (action === 'list' && id === undefined) {
      const { transfers } = (await callDaemon(ctx, '/v1/files')) as { transfers: TransferView[] }
      ctx.out.result({ transfers }, transfers.length === 0 ? 'no transfers' : transfers.map(line).join('\n'))
      return
    }
    if (id === undefined || !['accept', 'decline', 'cancel'].includes(action)) throw new UsageError(`usage: ${FILES_USAGE}`)
    const body = action === 'accept' ? { folder: resolve(stringFlag(ctx, 'to') ?? '.') } : {}
    const { transfer } = (await callDaemon(ctx, `/v1/files/${encodeURIComponent(id)}/${action}`, { method: 'POST', body })) as {
      transfer: TransferView
    }
    ctx.out.result({ id: transfer.id, state: transfer.state, bytes: transfer.bytes }, line(transfer))
  }
}
