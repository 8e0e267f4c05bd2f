import { isAbsolute } from 'node:path'
import { isValidName, LIMITS, ParleyError } from '@parley/protocol'
import type { FastifyInstance } from 'fastify'
import type { FileService } from './service.ts'

/** The file-transfer part of the local API: offer, list, accept (into a folder), decline, cancel. */
export function fileRoutes(files: FileService): (app: FastifyInstance) => void {
  const idParam = { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{16,64}$' } } }
  const absolute = (path: string): string => {
    if (!isAbsolute(path)) throw new ParleyError('INVALID_REQUEST', `${path}: give an absolute path`)
    return path
  }
  return (app) => {
    app.get('/v1/files', async () => ({ transfers: files.list() }))
    app.post(
      '/v1/files',
      {
        schema: {
          body: {
            type: 'object',
            required: ['to', 'paths'],
            additionalProperties: false,
            properties: {
              to: { type: 'string', minLength: LIMITS.name.minLength, maxLength: LIMITS.name.maxLength },
              paths: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 4096 } }
            }
          }
        }
      },
      async (request) => {
        const body = request.body as { to: string; paths: string[] }
        if (!isValidName(body.to)) throw new ParleyError('INVALID_NAME', `${body.to} is not a user name`)
        return { transfer: await files.send(body.to, body.paths.map(absolute)) }
      }
    )
    app.get('/v1/files/:id', { schema: { params: idParam } }, async (request) => {
      const t = files.get((request.params as { id: string }).id)
      if (t === undefined) throw new ParleyError('NOT_FOUND', 'no such transfer')
      return { transfer: t }
    })
    app.post(
      '/v1/files/:id/accept',
      {
        schema: {
          params: idParam,
          body: {
            type: 'object',
            required: ['folder'],
            additionalProperties: false,
            properties: { folder: { type: 'string', minLength: 1, maxLength: 4096 } }
          }
        }
      },
      async (request) => ({
        transfer: await files.accept((request.params as { id: string }).id, absolute((request.body as { folder: string }).folder))
      })
    )
    app.post('/v1/files/:id/decline', { schema: { params: idParam } }, async (request) => ({
      transfer: await files.decline((request.params as { id: string }).id)
    }))
    app.post('/v1/files/:id/cancel', { schema: { params: idParam } }, async (request) => ({
      transfer: await files.cancel((request.params as { id: string }).id)
    }))
  }
}
