import { randomBytes, timingSafeEqual } from 'node:crypto'
import { join } from 'node:path'
import { writeSecretFile } from '@parley/crypto/keyfile'
import { httpStatusOf, isValidName, LIMITS, ParleyError } from '@parley/protocol'
import Fastify, { type FastifyInstance } from 'fastify'

/** Where a running daemon tells the CLI how to reach it: `<profile>/api.json` (0600). */
export const API_FILE = 'api.json'

export interface ApiHandlers {
  whoami(): Promise<object>
  net(): Promise<object>
  whois(name: string): Promise<object>
}

export interface LocalApi {
  url: string
  close(): Promise<void>
}

/**
 * The daemon's local API: the one front door for the CLI (and later the web
 * client). Loopback only; every request carries the profile's random token
 * (`Authorization: Bearer …`), and the Host header must name this server, so
 * another site in a browser cannot reach it through DNS rebinding.
 */
export async function startLocalApi(dataDir: string, listen: { host: string; port: number }, handlers: ApiHandlers): Promise<LocalApi> {
  const token = randomBytes(32).toString('base64url')
  const app: FastifyInstance = Fastify({ logger: false, bodyLimit: LIMITS.httpBodyBytes })
  let allowedHosts = new Set<string>()
  app.addHook('onRequest', async (request) => {
    if (!allowedHosts.has(request.headers.host ?? '')) throw new ParleyError('UNAUTHENTICATED', 'wrong Host for the local API')
    const given = Buffer.from(request.headers.authorization ?? '')
    const wanted = Buffer.from(`Bearer ${token}`)
    if (given.length !== wanted.length || !timingSafeEqual(given, wanted))
      throw new ParleyError('UNAUTHENTICATED', 'the local API needs the profile token')
  })
  app.setErrorHandler((err, _request, reply) => {
    const e = err instanceof ParleyError ? err : new ParleyError('INTERNAL', 'internal error')
    void reply.status(httpStatusOf(e.code)).send(e.toBody())
  })
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send(new ParleyError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`).toBody())
  })
  app.get('/v1/whoami', async () => await handlers.whoami())
  app.get('/v1/net', async () => await handlers.net())
  app.get('/v1/whois/:name', async (request) => {
    const { name } = request.params as { name: string }
    if (!isValidName(name)) throw new ParleyError('INVALID_NAME', `${name} is not a user name`)
    return await handlers.whois(name)
  })
  await app.listen(listen)
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('local API has no TCP address')
  const url = `http://${address.address}:${address.port}`
  allowedHosts = new Set([`${address.address}:${address.port}`, `localhost:${address.port}`])
  await writeSecretFile(join(dataDir, API_FILE), `${JSON.stringify({ url, token, pid: process.pid }, null, 2)}\n`)
  return {
    url,
    async close() {
      await app.close()
    }
  }
}
