import { isValidName, LIMITS, ParleyError } from '@parley/protocol'
import type { FastifyInstance } from 'fastify'
import type { PresenceService, PresenceState } from './presence.ts'
import type { ChatService } from './service.ts'

const name = { type: 'string', minLength: LIMITS.name.minLength, maxLength: LIMITS.name.maxLength }
const id = { type: 'string', minLength: 1, maxLength: 64 }

function checkName(value: string): string {
  if (!isValidName(value)) throw new ParleyError('INVALID_NAME', `${value} is not a user name`)
  return value
}

function limitOf(query: unknown, fallback: number): number {
  const raw = (query as { limit?: string }).limit
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1 || n > LIMITS.chat.historyMaxLimit)
    throw new ParleyError('INVALID_REQUEST', `limit is 1 to ${LIMITS.chat.historyMaxLimit}`)
  return n
}

/** The chat part of the local API: contacts, messages, history and search. */
export function chatRoutes(chat: ChatService, presence: PresenceService): (app: FastifyInstance) => void {
  return (app) => {
    // Any use of the API is the user doing something: no auto-away.
    app.addHook('onRequest', async (request) => {
      if (!request.url.startsWith('/v1/events')) presence.activity()
    })
    const withPresence = () => chat.contacts().map((c) => ({ ...c, ...(c.state === 'accepted' ? presence.of(c.name) : {}) }))
    app.get('/v1/contacts', async () => ({ contacts: withPresence(), privacy: chat.privacy }))
    app.get('/v1/status', async () => presence.own)
    app.put(
      '/v1/status',
      {
        schema: {
          body: {
            type: 'object',
            required: ['presence'],
            additionalProperties: false,
            properties: {
              presence: { enum: ['online', 'away', 'dnd', 'invisible'] },
              mood: { type: 'string', maxLength: LIMITS.presence.moodMaxLength }
            }
          }
        }
      },
      async (request) => {
        const body = request.body as { presence: PresenceState; mood?: string }
        return await presence.set(body.presence, body.mood)
      }
    )
    app.post(
      '/v1/contacts',
      {
        schema: {
          body: {
            type: 'object',
            required: ['name'],
            additionalProperties: false,
            properties: { name, message: { type: 'string', maxLength: LIMITS.chat.requestMessageMaxLength } }
          }
        }
      },
      async (request) => {
        const body = request.body as { name: string; message?: string }
        return { contact: await chat.addContact(checkName(body.name), body.message) }
      }
    )
    app.post('/v1/contacts/:name/:action', async (request) => {
      const params = request.params as { name: string; action: string }
      const who = checkName(params.name)
      switch (params.action) {
        case 'accept':
          return { contact: await chat.acceptContact(who) }
        case 'decline':
          return { contact: await chat.declineContact(who) }
        case 'block':
          return { contact: chat.block(who) }
        case 'remove':
          await chat.removeContact(who)
          return { removed: who }
        default:
          throw new ParleyError('NOT_FOUND', `no contact action ${params.action}: accept, decline, block or remove`)
      }
    })
    app.put(
      '/v1/settings/privacy',
      {
        schema: {
          body: {
            type: 'object',
            required: ['privacy'],
            additionalProperties: false,
            properties: { privacy: { enum: ['anyone', 'contacts'] } }
          }
        }
      },
      async (request) => {
        chat.privacy = (request.body as { privacy: 'anyone' | 'contacts' }).privacy
        return { privacy: chat.privacy }
      }
    )
    app.post(
      '/v1/messages',
      {
        // A text of LIMITS.messaging.textMaxBytes escaped in JSON, and more, so that an oversized one gets its own clear refusal.
        bodyLimit: LIMITS.messaging.envelopeMaxBytes,
        schema: {
          body: {
            type: 'object',
            required: ['to', 'text'],
            additionalProperties: false,
            properties: { to: name, text: { type: 'string', minLength: 1 }, replyTo: id }
          }
        }
      },
      async (request) => {
        const body = request.body as { to: string; text: string; replyTo?: string }
        return await chat.message(checkName(body.to), body.text, body.replyTo === undefined ? {} : { replyTo: body.replyTo })
      }
    )
    app.post(
      '/v1/messages/:id/edit',
      {
        schema: {
          body: {
            type: 'object',
            required: ['to', 'text'],
            additionalProperties: false,
            properties: { to: name, text: { type: 'string', minLength: 1 } }
          }
        }
      },
      async (request) => {
        const body = request.body as { to: string; text: string }
        return { id: await chat.edit(checkName(body.to), (request.params as { id: string }).id, body.text) }
      }
    )
    app.post(
      '/v1/messages/:id/delete',
      { schema: { body: { type: 'object', required: ['to'], additionalProperties: false, properties: { to: name } } } },
      async (request) => {
        const body = request.body as { to: string }
        return { id: await chat.delete(checkName(body.to), (request.params as { id: string }).id) }
      }
    )
    app.post(
      '/v1/messages/read',
      {
        schema: {
          body: {
            type: 'object',
            required: ['from', 'ids'],
            additionalProperties: false,
            properties: { from: name, ids: { type: 'array', items: id, maxItems: LIMITS.chat.historyMaxLimit } }
          }
        }
      },
      async (request) => {
        const body = request.body as { from: string; ids: string[] }
        return { read: await chat.markRead(checkName(body.from), body.ids) }
      }
    )
    app.post(
      '/v1/typing',
      {
        schema: {
          body: {
            type: 'object',
            required: ['to', 'active'],
            additionalProperties: false,
            properties: { to: name, active: { type: 'boolean' } }
          }
        }
      },
      async (request) => {
        const body = request.body as { to: string; active: boolean }
        await chat.typing(checkName(body.to), body.active)
        return { ok: true }
      }
    )
    const members = { type: 'array', items: name, minItems: 1, maxItems: LIMITS.messaging.groupMaxMembers }
    app.get('/v1/groups', async () => ({ groups: chat.groups() }))
    app.post(
      '/v1/groups',
      {
        schema: {
          body: {
            type: 'object',
            required: ['name', 'members'],
            additionalProperties: false,
            properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, members }
          }
        }
      },
      async (request) => {
        const body = request.body as { name: string; members: string[] }
        return { group: await chat.createGroup(body.name, body.members.map(checkName)) }
      }
    )
    app.get('/v1/groups/:conv', async (request) => ({ group: chat.group((request.params as { conv: string }).conv) }))
    app.get('/v1/groups/:conv/history', async (request) => {
      const c = (request.params as { conv: string }).conv
      return { conv: c, messages: chat.groupHistory(c, limitOf(request.query, 50)) }
    })
    app.post(
      '/v1/groups/:conv/invite',
      { schema: { body: { type: 'object', required: ['members'], additionalProperties: false, properties: { members } } } },
      async (request) => {
        const body = request.body as { members: string[] }
        return { group: await chat.invite((request.params as { conv: string }).conv, body.members.map(checkName)) }
      }
    )
    app.post('/v1/groups/:conv/leave', async (request) => {
      await chat.leave((request.params as { conv: string }).conv)
      return { left: true }
    })
    app.put(
      '/v1/groups/:conv/topic',
      {
        schema: {
          body: {
            type: 'object',
            required: ['topic'],
            additionalProperties: false,
            properties: { topic: { type: 'string', maxLength: LIMITS.messaging.topicMaxBytes } }
          }
        }
      },
      async (request) => ({
        group: await chat.setTopic((request.params as { conv: string }).conv, (request.body as { topic: string }).topic)
      })
    )
    app.post(
      '/v1/groups/:conv/messages',
      {
        bodyLimit: LIMITS.messaging.envelopeMaxBytes,
        schema: {
          body: {
            type: 'object',
            required: ['text'],
            additionalProperties: false,
            properties: { text: { type: 'string', minLength: 1 }, replyTo: id }
          }
        }
      },
      async (request) => {
        const body = request.body as { text: string; replyTo?: string }
        const c = (request.params as { conv: string }).conv
        return await chat.groupMessage(c, body.text, body.replyTo === undefined ? {} : { replyTo: body.replyTo })
      }
    )
    app.get('/v1/history/:name', async (request) => {
      const who = checkName((request.params as { name: string }).name)
      return { name: who, messages: chat.history(who, limitOf(request.query, 50)) }
    })
    app.get('/v1/search', async (request) => {
      const q = (request.query as { q?: string }).q
      if (q === undefined || q.trim() === '' || q.length > 256)
        throw new ParleyError('INVALID_REQUEST', 'search needs q (1 to 256 characters)')
      return { messages: chat.search(q, limitOf(request.query, 20)) }
    })
  }
}
