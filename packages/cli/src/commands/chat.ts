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

interface GroupView {
  conv: string
  name: string
  topic: string
  members: string[]
}

function groupLine(g: GroupView): string {
  return `${g.name}  ${g.conv}  ${g.members.length} members: ${g.members.join(', ')}${g.topic ? `  — ${g.topic}` : ''}`
}

function namesOf(list: string | undefined, usage: string): string[] {
  const names = (list ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '')
  if (names.length === 0) throw new UsageError(`usage: ${usage}`)
  return names
}

/** A group named by its id (g:…) or by its name, when only one group here has that name. */
async function groupOf(ctx: Parameters<Command['run']>[0], which: string): Promise<GroupView> {
  const { groups } = (await callDaemon(ctx, '/v1/groups')) as { groups: GroupView[] }
  const byId = groups.find((g) => g.conv === which)
  if (byId !== undefined) return byId
  const byName = groups.filter((g) => g.name.toLowerCase() === which.toLowerCase())
  if (byName.length === 1) return byName[0] as GroupView
  if (byName.length > 1)
    throw new UsageError(`${byName.length} groups are called “${which}”: name one by its id (${byName.map((g) => g.conv).join(', ')})`)
  throw new UsageError(`no group “${which}” here: \`parley group list\` shows them`)
}

const GROUP_USAGE =
  'parley group create NAME --members A,B | list | msg GROUP TEXT | history GROUP [--limit N] | invite GROUP --members A,B | topic GROUP TEXT | leave GROUP'

export const groupCommand: Command = {
  path: ['group'],
  usage: GROUP_USAGE,
  summary: 'group chats: create, message, invite, topic, leave (GROUP is the name or the id)',
  options: { members: { type: 'string' }, limit: { type: 'string' } },
  positionals: [1, 3],
  async run(ctx) {
    const [action, which, text] = ctx.positionals as [string, string | undefined, string | undefined]
    const usage = (): never => {
      throw new UsageError(`usage: ${GROUP_USAGE}`)
    }
    if (action === 'list') {
      if (which !== undefined) usage()
      const { groups } = (await callDaemon(ctx, '/v1/groups')) as { groups: GroupView[] }
      ctx.out.result({ groups }, groups.length === 0 ? 'no groups yet' : groups.map(groupLine).join('\n'))
      return
    }
    if (which === undefined) return usage()
    if (action === 'create') {
      if (text !== undefined) usage()
      const members = namesOf(stringFlag(ctx, 'members'), GROUP_USAGE)
      const { group } = (await callDaemon(ctx, '/v1/groups', { method: 'POST', body: { name: which, members } })) as { group: GroupView }
      ctx.out.result({ group }, groupLine(group))
      return
    }
    const group = await groupOf(ctx, which)
    const path = `/v1/groups/${encodeURIComponent(group.conv)}`
    if (action === 'msg') {
      if (text === undefined) return usage()
      const result = (await callDaemon(ctx, `${path}/messages`, { method: 'POST', body: { text } })) as { id: string; state: string }
      ctx.out.result(result, `${result.state}  ${result.id}`)
    } else if (action === 'history') {
      const limit = stringFlag(ctx, 'limit')
      if (limit !== undefined && !/^\d+$/.test(limit)) throw new UsageError('--limit takes a number')
      const result = (await callDaemon(ctx, `${path}/history${limit === undefined ? '' : `?limit=${limit}`}`)) as {
        messages: Array<{ from: string; text: string; at: number; deleted: boolean; edited: boolean }>
      }
      ctx.out.result(
        result,
        result.messages.length === 0
          ? `no messages in ${group.name} yet`
          : result.messages
              .map(
                (m) =>
                  `${new Date(m.at).toISOString().slice(0, 16).replace('T', ' ')}  ${m.from}: ${m.deleted ? '(deleted)' : m.text}${m.edited ? ' (edited)' : ''}`
              )
              .join('\n')
      )
    } else if (action === 'invite') {
      if (text !== undefined) usage()
      const members = namesOf(stringFlag(ctx, 'members'), GROUP_USAGE)
      const result = (await callDaemon(ctx, `${path}/invite`, { method: 'POST', body: { members } })) as { group: GroupView }
      ctx.out.result(result, groupLine(result.group))
    } else if (action === 'topic') {
      if (text === undefined) return usage()
      const result = (await callDaemon(ctx, `${path}/topic`, { method: 'PUT', body: { topic: text } })) as { group: GroupView }
      ctx.out.result(result, groupLine(result.group))
    } else if (action === 'leave') {
      if (text !== undefined) usage()
      await callDaemon(ctx, `${path}/leave`, { method: 'POST', body: {} })
      ctx.out.result({ left: group.conv }, `left ${group.name}`)
    } else {
      usage()
    }
  }
}
