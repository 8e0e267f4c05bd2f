import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { isValidName, LIMITS, ParleyError } from '@parley/protocol'
import type { FastifyInstance } from 'fastify'
import { pathProblem } from './paths.ts'
import type { FileService } from './service.ts'
import { FINAL_STATES } from './store.ts'

/**
 * The file-transfer part of the local API: offer (files on this machine by
 * path, or a file the web client uploads), list, accept (into a folder),
 * decline, cancel. An uploaded file is kept in `uploads` (the profile's) while
 * its transfer may still need it, so that a transfer resumes from it too.
 */
export function fileRoutes(files: FileService, options: { uploads?: string } = {}): (app: FastifyInstance) => void {
  const idParam = { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{16,64}$' } } }
  const absolute = (path: string): string => {
    if (!isAbsolute(path)) throw new ParleyError('INVALID_REQUEST', `${path}: give an absolute path`)
    return path
  }
  const uploads = options.uploads
  /** Upload folders whose transfer has ended (or that never became one, after an hour) go. */
  const sweep = async (): Promise<void> => {
    if (uploads === undefined) return
    for (const entry of await readdir(uploads).catch(() => [] as string[])) {
      const folder = join(uploads, entry)
      const id = await readFile(join(folder, TRANSFER_FILE), 'utf8').catch(() => undefined)
      const t = id === undefined ? undefined : files.get(id.trim())
      const old = Date.now() - ((await stat(folder).catch(() => undefined))?.mtimeMs ?? 0) > 60 * 60_000
      if (t === undefined ? old : FINAL_STATES.has(t.state)) await rm(folder, { recursive: true, force: true })
    }
  }
  return (app) => {
    void sweep().catch(() => {})
    app.get('/v1/files', async () => ({ transfers: files.list() }))
    if (uploads !== undefined) {
      // The body is the file itself, streamed to disk (never held in memory), of any size the policy allows.
      app.register(async (scope) => {
        scope.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload))
        scope.post(
          '/v1/files/upload',
          {
            bodyLimit: Number.MAX_SAFE_INTEGER,
            schema: {
              querystring: {
                type: 'object',
                required: ['to', 'name'],
                additionalProperties: false,
                properties: {
                  to: { type: 'string', minLength: LIMITS.name.minLength, maxLength: LIMITS.name.maxLength },
                  name: { type: 'string', minLength: 1, maxLength: LIMITS.files.pathMaxBytes }
                }
              }
            }
          },
          async (request) => {
            const { to, name } = request.query as { to: string; name: string }
            if (!isValidName(to)) throw new ParleyError('INVALID_NAME', `${to} is not a user name`)
            const problem = pathProblem(name) ?? (name.includes('/') ? 'a folder in a file name' : undefined)
            if (problem !== undefined || name === '.' || name === '..')
              throw new ParleyError('INVALID_REQUEST', `not a file name: ${problem ?? JSON.stringify(name)}`)
            if (request.headers['content-type'] !== 'application/octet-stream')
              throw new ParleyError('UNSUPPORTED_MEDIA_TYPE', 'send the file itself as application/octet-stream')
            void sweep().catch(() => {})
            const folder = join(uploads, randomBytes(12).toString('hex'))
            await mkdir(folder, { recursive: true, mode: 0o700 })
            try {
              const path = join(folder, name)
              await pipeline(request.body as Readable, createWriteStream(path, { mode: 0o600 }))
              const transfer = await files.send(to, [path])
              await writeFile(join(folder, TRANSFER_FILE), transfer.id, { mode: 0o600 })
              return { transfer }
            } catch (err) {
              await rm(folder, { recursive: true, force: true })
              throw err
            }
          }
        )
      })
    }
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

/** In an upload's folder: the id of the transfer that offers it. */
const TRANSFER_FILE = '.transfer'
