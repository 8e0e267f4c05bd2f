import { credentialToString, parseRequestProof, type SignedCredential, signCredential, verifyRequestProof } from '@parley/crypto'
import {
  createAccount,
  type Db,
  DbUnavailableError,
  getAccount,
  loginFailed,
  loginLookup,
  loginSucceeded,
  logoutDevice,
  renewCredential,
  searchDirectory
} from '@parley/db'
import {
  type CredentialGrant,
  clientErrorOf,
  DIRECTORY_QUERY_SCHEMA,
  type DirectoryResponse,
  directoryLimit,
  emailProblem,
  fromBase64Url,
  httpStatusOf,
  isValidName,
  type KeysResponse,
  LIMITS,
  nameProblem,
  ParleyError,
  passwordProblem,
  type VersionResponse
} from '@parley/protocol'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import { compareVersions, type LoginServerConfig } from './config.ts'
import type { KeyRing } from './keyring.ts'
import { Passwords } from './passwords.ts'
import { KeyedMutex, RateLimiter, retryAfterMs } from './throttle.ts'

export interface LoginServerComponents {
  db: Db
  keys: KeyRing
  logger: FastifyBaseLogger
}

const NAME = { type: 'string', minLength: 1, maxLength: LIMITS.name.maxLength } as const
const PASSWORD = { type: 'string', minLength: 1, maxLength: LIMITS.password.maxLength * 4 } as const
const DEVICE_KEY = { type: 'string', minLength: 43, maxLength: 43, pattern: '^[A-Za-z0-9_-]+$' } as const
const VERSION = { type: 'string', maxLength: 32, pattern: '^\\d{1,6}\\.\\d{1,6}\\.\\d{1,6}$' } as const

/**
 * The login server's HTTP API (docs/login-api.md). Stateless over the
 * database: any number can run side by side. Throttling state is in the
 * database; the per-address token buckets are per instance.
 */
export function buildLoginServer(components: LoginServerComponents, config: LoginServerConfig): FastifyInstance {
  const { db, keys } = components
  const passwords = new Passwords(config.argon2)
  const perName = new KeyedMutex()
  const rates = {
    register: new RateLimiter(config.rates.register.perMinute, config.rates.register.burst),
    search: new RateLimiter(config.rates.search.perMinute, config.rates.search.burst),
    renew: new RateLimiter(config.rates.renew.perMinute, config.rates.renew.burst)
  }

  const app = Fastify({
    loggerInstance: components.logger,
    bodyLimit: LIMITS.httpBodyBytes,
    trustProxy: config.trustProxy,
    return503OnClosing: false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } }
  })

  app.setErrorHandler((err, request, reply) => {
    let pe: ParleyError
    const client = clientErrorOf(err, LIMITS.httpBodyBytes)
    if (err instanceof ParleyError) {
      pe = err
    } else if (err instanceof DbUnavailableError) {
      request.log.warn({ err: err.message }, 'database unavailable')
      pe = new ParleyError('UNAVAILABLE', 'the account database is unavailable: try again shortly')
    } else if (client !== undefined) {
      pe = client
    } else {
      request.log.error({ err }, 'internal error')
      pe = new ParleyError('INTERNAL', 'internal error')
    }
    const status = httpStatusOf(pe.code)
    if (pe.retryAfterMs !== undefined) void reply.header('retry-after', Math.ceil(pe.retryAfterMs / 1000))
    void reply.status(status).send(pe.toBody())
  })
  // Shutting down: answer what is under way, then close every connection (no keep-alive holds up the exit);
  // anything new on a kept-alive connection is told to try again, in our own error shape.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onRequest', async (_request, reply) => {
    if (closing) {
      void reply.header('connection', 'close')
      throw new ParleyError('UNAVAILABLE', 'the login server is shutting down: try again')
    }
  })
  app.addHook('onSend', async (_request, reply) => {
    if (closing) void reply.header('connection', 'close')
  })

  // Paths we serve, to tell a wrong method (405) from a wrong path (404).
  const paths: Array<{ pattern: RegExp; methods: string[] }> = []
  app.addHook('onRoute', (route) => {
    const pattern = new RegExp(`^${route.url.replace(/:[^/]+/g, '[^/]+')}$`)
    const methods = [route.method].flat()
    const known = paths.find((p) => p.pattern.source === pattern.source)
    if (known === undefined) paths.push({ pattern, methods })
    else known.methods.push(...methods)
  })
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? ''
    const known = paths.find((p) => p.pattern.test(path))
    if (known !== undefined) {
      const allowed = [...new Set(known.methods)].join(', ')
      void reply
        .status(405)
        .header('allow', allowed)
        .send(new ParleyError('METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path} (allowed: ${allowed})`).toBody())
      return
    }
    void reply.status(404).send(new ParleyError('NOT_FOUND', `no route ${request.method} ${path}`).toBody())
  })

  const limit = (limiter: RateLimiter, request: FastifyRequest, what: string): void => {
    const wait = limiter.take(request.ip)
    if (wait > 0)
      throw new ParleyError('THROTTLED', `too many ${what} requests from this address: try again in ${Math.ceil(wait / 1000)} s`, {
        retryAfterMs: wait
      })
  }

  const grant = (c: SignedCredential): CredentialGrant => ({
    credential: credentialToString(c),
    name: c.name,
    keyId: c.keyId,
    serial: c.serial.toString(),
    issuedAt: new Date(c.issuedAt).toISOString(),
    expiresAt: new Date(c.expiresAt).toISOString(),
    renewAt: new Date(c.issuedAt + Math.floor((c.expiresAt - c.issuedAt) / 2)).toISOString()
  })

  const issue = (name: string, deviceKey: Uint8Array, serial: bigint): SignedCredential => {
    const key = keys.active
    const now = Date.now()
    return signCredential(
      { version: 1, name, deviceKey, issuedAt: now, expiresAt: now + config.credentialLifetimeMs, serial, keyId: key.id },
      key.pair.handle
    )
  }

  /** Checks a signed request; returns the credential it carries. */
  const authenticate = (request: FastifyRequest, options: { allowExpired?: boolean } = {}): SignedCredential => {
    const header = request.headers.authorization
    const proof = parseRequestProof(header)
    if (proof === undefined)
      throw new ParleyError('UNAUTHENTICATED', 'this request needs a signed "Authorization: Parley cred=..., ts=..., sig=..." header')
    const now = Date.now()
    let verdict = keys.verifier.verify(proof.credential, { now })
    if (!verdict.ok && verdict.reason === 'EXPIRED' && options.allowExpired === true) {
      verdict = keys.verifier.verify(proof.credential, { now: 0, clockSkewMs: Number.MAX_SAFE_INTEGER })
    }
    if (!verdict.ok) throw new ParleyError(verdict.reason, verdict.message)
    if (Math.abs(now - proof.ts) > LIMITS.requestProof.maxAgeMs) {
      throw new ParleyError('STALE_REQUEST', "the request is too old or from the future: check this machine's clock")
    }
    const body = request.body === undefined ? '' : ((request as FastifyRequest & { rawBody?: string }).rawBody ?? '')
    if (!verifyRequestProof({ method: request.method, path: request.url, body }, proof, verdict.credential.deviceKey)) {
      throw new ParleyError('DEVICE_KEY_MISMATCH', "the request is not signed by the credential's device key")
    }
    return verdict.credential
  }

  // JSON only (no text/plain, which a signed request's body check would not see), and keep the raw
  // body: signed requests sign the bytes, not a re-serialization.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    ;(request as FastifyRequest & { rawBody?: string }).rawBody = body as string
    if (body === '') {
      done(null, {})
      return
    }
    try {
      done(null, JSON.parse(body as string))
    } catch {
      done(new ParleyError('INVALID_REQUEST', 'the body is not valid JSON'), undefined)
    }
  })

  app.get('/v1/health', async () => ({ ok: true, db: db.kind }))

  app.get('/v1/keys', async (): Promise<KeysResponse> => ({ keys: keys.published() }))

  app.get(
    '/v1/version',
    {
      schema: {
        querystring: {
          type: 'object',
          required: ['current'],
          properties: { current: VERSION, event: { type: 'string', enum: ['installed', 'startup'] } },
          additionalProperties: false
        }
      }
    },
    async (request): Promise<VersionResponse> => {
      const q = request.query as { current: string; event?: string }
      const current = q.current
      // The report's first-run "installed" request and the start-up check; counted in the log, nothing about the user kept.
      request.log.info({ event: q.event ?? 'startup', version: current }, 'version check')
      return {
        latest: config.versions.latest,
        minimum: config.versions.minimum,
        updateAvailable: compareVersions(current, config.versions.latest) < 0,
        updateRequired: compareVersions(current, config.versions.minimum) < 0
      }
    }
  )

  app.post(
    '/v1/accounts',
    {
      schema: {
        body: {
          type: 'object',
          required: ['name', 'password'],
          properties: {
            name: { type: 'string', maxLength: 256 },
            password: PASSWORD,
            email: { type: 'string', maxLength: LIMITS.email.maxLength },
            displayName: { type: 'string', minLength: 1, maxLength: LIMITS.displayName.maxLength }
          },
          additionalProperties: false
        }
      }
    },
    async (request, reply) => {
      limit(rates.register, request, 'registration')
      const body = request.body as { name: string; password: string; email?: string; displayName?: string }
      const nameWhy = nameProblem(body.name)
      if (nameWhy !== undefined) throw new ParleyError('INVALID_NAME', nameWhy)
      if (body.email !== undefined) {
        const emailWhy = emailProblem(body.email)
        if (emailWhy !== undefined) throw new ParleyError('INVALID_EMAIL', emailWhy)
      }
      const displayName = body.displayName?.trim()
      if (displayName !== undefined && (displayName === '' || /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(displayName))) {
        throw new ParleyError('INVALID_REQUEST', 'a display name has at least one visible character and no control characters')
      }
      const weak = passwordProblem(body.password, body.name)
      if (weak !== undefined) throw new ParleyError('WEAK_PASSWORD', `password too weak: ${weak}`)
      const passwordHash = await passwords.hash(body.password)
      const result = await createAccount(db, {
        name: body.name,
        passwordHash,
        ...(displayName === undefined ? {} : { displayName }),
        ...(body.email === undefined ? {} : { email: body.email })
      })
      if (result.status === 'name_taken') throw new ParleyError('NAME_TAKEN', `the name ${body.name} is taken`)
      request.log.info({ user: result.name }, 'account created')
      return await reply.status(201).send({ name: result.name, displayName: result.displayName })
    }
  )

  app.post(
    '/v1/sessions',
    {
      schema: {
        body: {
          type: 'object',
          required: ['name', 'password', 'deviceKey'],
          properties: { name: NAME, password: PASSWORD, deviceKey: DEVICE_KEY, clientVersion: VERSION },
          additionalProperties: false
        }
      }
    },
    async (request): Promise<CredentialGrant> => {
      const body = request.body as { name: string; password: string; deviceKey: string; clientVersion?: string }
      if (body.clientVersion !== undefined && compareVersions(body.clientVersion, config.versions.minimum) < 0) {
        throw new ParleyError(
          'UPGRADE_REQUIRED',
          `this network needs Parley ${config.versions.minimum} or newer (this is ${body.clientVersion}): please update`
        )
      }
      const deviceKey = fromBase64Url(body.deviceKey)
      if (deviceKey?.length !== 32) throw new ParleyError('INVALID_REQUEST', 'deviceKey must be a 32-byte Ed25519 key in base64url')
      if (!isValidName(body.name)) throw new ParleyError('INVALID_CREDENTIALS', 'wrong name or password')
      const address = request.ip
      const policy = config.throttle
      // One password check per name at a time on this instance: parallel guesses cannot outrun the counter here
      // (across instances the window is one request per instance).
      return await perName.run(body.name.toLowerCase(), async () => {
        const found = await loginLookup(db, { name: body.name, address, windowMs: policy.windowMs })
        const wait = Math.max(
          retryAfterMs(found.nameFailures, found.nameLastFailure, found.now, policy.freeFailuresPerName, policy),
          retryAfterMs(found.addressFailures, found.addressLastFailure, found.now, policy.freeFailuresPerAddress, policy)
        )
        if (wait > 0) {
          throw new ParleyError('THROTTLED', `too many failed logins: try again in ${Math.ceil(wait / 1000)} s`, { retryAfterMs: wait })
        }
        const ok =
          found.passwordHash === undefined
            ? await passwords.verifyNothing(body.password)
            : await passwords.verify(found.passwordHash, body.password)
        if (!ok) {
          await loginFailed(db, { name: body.name, address, windowMs: policy.windowMs })
          request.log.info({ user: body.name }, 'login failed')
          throw new ParleyError('INVALID_CREDENTIALS', 'wrong name or password')
        }
        const done = await loginSucceeded(db, { name: body.name, deviceKey })
        if (done.status !== 'ok') throw new ParleyError('INVALID_CREDENTIALS', 'wrong name or password')
        request.log.info({ user: done.name, serial: done.serial.toString() }, 'credential issued')
        return grant(issue(done.name, deviceKey, done.serial))
      })
    }
  )

  app.post('/v1/sessions/renew', async (request): Promise<CredentialGrant> => {
    limit(rates.renew, request, 'renewal')
    const current = authenticate(request)
    const result = await renewCredential(db, { name: current.name, deviceKey: current.deviceKey, serial: current.serial })
    switch (result.status) {
      case 'ok':
        return grant(issue(result.name, current.deviceKey, result.serial))
      case 'stale':
        throw new ParleyError('STALE_CREDENTIAL', 'this credential was already renewed or replaced: use the newest one, or log in again')
      case 'logged_out':
      case 'no_account':
        throw new ParleyError('LOGGED_OUT', 'this device is logged out: log in again')
    }
  })

  app.delete('/v1/sessions', async (request) => {
    const current = authenticate(request, { allowExpired: true })
    const result = await logoutDevice(db, { name: current.name, deviceKey: current.deviceKey })
    return { ok: true, wasLoggedIn: result.status === 'ok' }
  })

  app.get(
    '/v1/accounts/:name',
    {
      schema: { params: { type: 'object', properties: { name: NAME }, required: ['name'] } }
    },
    async (request) => {
      authenticate(request)
      const { name } = request.params as { name: string }
      if (!isValidName(name)) throw new ParleyError('INVALID_NAME', nameProblem(name) ?? 'bad name')
      const account = await getAccount(db, { name })
      if (account === undefined) throw new ParleyError('NOT_FOUND', `no user ${name}`)
      return { name: account.name, displayName: account.displayName }
    }
  )

  app.get(
    '/v1/directory',
    {
      schema: { querystring: DIRECTORY_QUERY_SCHEMA }
    },
    async (request): Promise<DirectoryResponse> => {
      limit(rates.search, request, 'search')
      authenticate(request)
      const q = request.query as { q: string; limit?: string }
      const query = q.q.trim()
      if (query === '') throw new ParleyError('INVALID_REQUEST', 'search for at least one character that is not a space')
      return { results: await searchDirectory(db, { query, limit: directoryLimit(q.limit) }) }
    }
  )

  return app
}
