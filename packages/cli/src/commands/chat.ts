import { type Command, stringFlag } from '../context.ts'
import { UsageError } from '../output.ts'
import { callDaemon } from './node.ts'

interface ContactView {
  name: string
  state: string
  presence?: string
  mood?: string
  message?: string | null
}

function contactLine(c: ContactView): string {
  const presence = c.presence === undefined ? '' : `  ${c.presence}${c.mood ? ` — ${c.mood}` : ''}`
  const request = c.state === 'incoming' && c.message ? `  “${c.message}”` : ''
  return `${c.name}  ${c.state}${presence}${request}`
}

const CONTACT_ACTIONS = ['add', 'accept', 'decline', 'remove', 'block', 'list'] as const

export const contactsCommand: Command = {
  path: ['contacts'],
  usage: 'parley contacts add NAME [--message TEXT] | accept NAME | decline NAME | remove NAME | block NAME | list',
  summary: 'contact requests, authorization and blocking',
  options: { message: { type: 'string' } },
  positionals: [1, 2],
  async run(ctx) {
    const [action, name] = ctx.positionals as [string, string | undefined]
    if (!(CONTACT_ACTIONS as readonly string[]).includes(action)) throw new UsageError(`usage: ${this.usage}`)
    if ((action === 'list') !== (name === undefined)) throw new UsageError(`usage: ${this.usage}`)
    if (action === 'add') {
      const message = stringFlag(ctx, 'message')
      await callDaemon(ctx, '/v1/contacts', { method: 'POST', body: { name, ...(message === undefined ? {} : { message }) } })
    } else if (action !== 'list') {
      await callDaemon(ctx, `/v1/contacts/${encodeURIComponent(name as string)}/${action}`, { method: 'POST', body: {} })
    }
    const { contacts } = (await callDaemon(ctx, '/v1/contacts')) as { contacts: ContactView[] }
    ctx.out.result({ contacts }, contacts.length === 0 ? 'no contacts yet' : contacts.map(contactLine).join('\n'))
  }
}

export const statusCommand: Command = {
  path: ['status'],
  usage: 'parley status online|away|dnd|invisible [--mood TEXT]',
  summary: 'sets presence (and mood)',
  options: { mood: { type: 'string' } },
  positionals: 1,
  async run(ctx) {
    const presence = ctx.positionals[0] as string
    if (!['online', 'away', 'dnd', 'invisible'].includes(presence)) throw new UsageError(`usage: ${this.usage}`)
    const mood = stringFlag(ctx, 'mood')
    const result = (await callDaemon(ctx, '/v1/status', {
      method: 'PUT',
      body: { presence, ...(mood === undefined ? {} : { mood }) }
    })) as {
      presence: string
      mood: string
    }
    ctx.out.result(result, `${result.presence}${result.mood ? ` — ${result.mood}` : ''}`)
  }
}

export const msgCommand: Command = {
  path: ['msg'],
  usage: 'parley msg NAME TEXT',
  summary: 'sends a chat message (delivered now, or stored for later)',
  options: { 'reply-to': { type: 'string' } },
  positionals: 2,
  async run(ctx) {
    const [to, text] = ctx.positionals as [string, string]
    const replyTo = stringFlag(ctx, 'reply-to')
    const result = (await callDaemon(ctx, '/v1/messages', {
      method: 'POST',
      body: { to, text, ...(replyTo === undefined ? {} : { replyTo }) }
    })) as { id: string; state: string }
    const words: Record<string, string> = {
      delivered: 'delivered',
      stored: `stored for ${to} (delivered when they come online)`,
      pending: `queued (no device of ${to} reached yet; retried)`
    }
    ctx.out.result(result, `${words[result.state] ?? result.state}  ${result.id}`)
  }
}

export const historyCommand: Command = {
  path: ['history'],
  usage: 'parley history NAME [--limit N]',
  summary: 'the conversation with a user, oldest first',
  options: { limit: { type: 'string' } },
  positionals: 1,
  async run(ctx) {
    const name = ctx.positionals[0] as string
    const limit = stringFlag(ctx, 'limit')
    if (limit !== undefined && !/^\d+$/.test(limit)) throw new UsageError('--limit takes a number')
    const result = (await callDaemon(ctx, `/v1/history/${encodeURIComponent(name)}${limit === undefined ? '' : `?limit=${limit}`}`)) as {
      messages: Array<{ id: string; from: string; text: string; at: number; state: string; edited: boolean; deleted: boolean }>
    }
    ctx.out.result(
      result,
      result.messages.length === 0
        ? `no messages with ${name} yet`
        : result.messages
            .map(
              (m) =>
                `${new Date(m.at).toISOString().slice(0, 16).replace('T', ' ')}  ${m.from}: ${m.deleted ? '(deleted)' : m.text}${m.edited ? ' (edited)' : ''}  [${m.state}]`
            )
            .join('\n')
    )
  }
}
