import { readFile, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, extname, join, normalize, sep } from 'node:path'
import { LIMITS, ParleyError } from '@parley/protocol'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json'
}

/** Where the web client is built (`npm run build -w @parley/web`), if the package is installed beside this one. */
export function defaultWebRoot(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@parley/web/package.json')), 'dist')
  } catch {
    return undefined
  }
}

export interface WebAuth {
  isToken(given: string | undefined): boolean
  /** The cookie that carries the token (named by the API's port). */
  cookie(): string
}

/**
 * Serves the web client from `root` at every path outside `/v1/`: its files
 * as they are, `index.html` for the client's own routes. `?token=` (the
 * address the daemon printed) puts the token into an HttpOnly, SameSite=Strict
 * cookie and sends the browser on to the same page without it, so the token
 * leaves the address bar and the history at once and no script can read it.
 */
export function serveWebClient(app: FastifyInstance, root: string | undefined, auth: WebAuth): void {
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const [path = '/', query = ''] = request.url.split('?', 2)
    if (path.startsWith('/v1/') || path === '/v1') throw new ParleyError('NOT_FOUND', `no route ${request.method} ${path}`)
    secure(reply, request.headers.host ?? '')
    const token = new URLSearchParams(query).get('token')
    if (token !== null) {
      if (!auth.isToken(token)) {
        return reply
          .status(401)
          .type(TYPES['.html'] as string)
          .send(
            page(
              'This address has an old key',
              'The daemon was restarted since this address was printed. Open the address it printed last.'
            )
          )
      }
      reply.header('set-cookie', `${auth.cookie()}=${token}; HttpOnly; SameSite=Strict; Path=/`)
      return reply.redirect(path, 303)
    }
    if (root === undefined)
      return reply
        .status(404)
        .type(TYPES['.html'] as string)
        .send(notBuilt())
    const file = await fileFor(root, path)
    if (file === undefined) {
      // A missing asset is a 404; any other path is one of the client's own routes.
      if (extname(path) !== '') return reply.status(404).type('text/plain; charset=utf-8').send('not found')
      const index = await fileFor(root, '/index.html')
      if (index === undefined)
        return reply
          .status(404)
          .type(TYPES['.html'] as string)
          .send(notBuilt())
      return send(reply, index, false)
    }
    return send(reply, file, path.startsWith('/assets/'))
  }
  app.get('/*', handler)
  app.get('/', handler)
}

/** The headers every page of the client gets: no framing, no sniffing, no referrer, scripts and connections to this daemon only. */
function secure(reply: FastifyReply, host: string): void {
  reply.header(
    'content-security-policy',
    [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data: blob:",
      "media-src 'self' blob: mediastream:",
      `connect-src 'self' ws://${host}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'self'"
    ].join('; ')
  )
  reply.header('x-content-type-options', 'nosniff')
  reply.header('x-frame-options', 'DENY')
  reply.header('referrer-policy', 'no-referrer')
}

async function fileFor(root: string, path: string): Promise<{ path: string; size: number } | undefined> {
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    return undefined
  }
  if (decoded.includes('\0')) return undefined
  const full = normalize(join(root, decoded))
  if (full !== root && !full.startsWith(root.endsWith(sep) ? root : `${root}${sep}`)) return undefined
  try {
    const info = await stat(full)
    if (!info.isFile() || info.size > LIMITS.api.webFileMaxBytes) return undefined
    return { path: full, size: info.size }
  } catch {
    return undefined
  }
}

async function send(reply: FastifyReply, file: { path: string }, immutable: boolean): Promise<FastifyReply> {
  const bytes = await readFile(file.path)
  reply.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
  return reply.type(TYPES[extname(file.path).toLowerCase()] ?? 'application/octet-stream').send(bytes)
}

function page(title: string, text: string): string {
  return `<!doctype html><html lang="en"><meta charset="utf-8"><title>Parley: ${title}</title><body style="font:16px system-ui;max-width:40em;margin:4em auto;color:#1a1a1a"><h1>${title}</h1><p>${text}</p></body></html>`
}

function notBuilt(): string {
  return page('The web client is not built', 'Build it with <code>npm run build -w @parley/web</code> (npm start does it), then reload.')
}
