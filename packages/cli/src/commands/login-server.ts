import { join } from 'node:path'
import { KeyRing, startLoginServer } from '@parley/login-server'
import { DEFAULT_PROFILE_DIR } from '@parley/node/profile'
import { type Command, stringFlag } from '../context.ts'
import { UsageError } from '../output.ts'

const DEFAULT_DATA = join(DEFAULT_PROFILE_DIR, 'login-server')

export const loginServer: Command = {
  path: ['login-server'],
  usage: 'parley login-server --data DIR [--listen HOST:PORT] [--db postgres://...]',
  summary: 'runs the login server (embedded database in DIR unless --db)',
  options: { listen: { type: 'string' }, db: { type: 'string' } },
  positionals: 0,
  async run(ctx) {
    const dbUrl = stringFlag(ctx, 'db')
    if (dbUrl !== undefined && !/^postgres(ql)?:\/\//.test(dbUrl)) throw new UsageError('--db takes a postgres://... URL')
    const server = await startLoginServer({
      dataDir: stringFlag(ctx, 'data') ?? DEFAULT_DATA,
      listen: stringFlag(ctx, 'listen') ?? '127.0.0.1:7070',
      ...(dbUrl === undefined ? {} : { dbUrl })
    })
    process.stdout.write(
      `${JSON.stringify({ event: 'ready', url: server.url, keys: server.keys.map((k) => ({ id: k.id, publicKey: k.publicKey, active: k.active })), db: server.db.kind })}\n`
    )
    await ctx.waitForStop()
    await server.close()
  }
}

export const loginServerKeys: Command = {
  path: ['login-server', 'keys'],
  usage: 'parley login-server keys list|add|activate ID|rotate|remove ID --data DIR',
  summary: "manages the login server's signing keys (restart the server after a change)",
  options: {},
  positionals: [1, 2],
  async run(ctx) {
    const ring = await KeyRing.open(stringFlag(ctx, 'data') ?? DEFAULT_DATA)
    const [action, id] = ctx.positionals
    const needId = (): string => {
      if (id === undefined) throw new UsageError(`${action} needs a key ID`)
      return id
    }
    switch (action) {
      case 'list':
        break
      case 'add': {
        const key = await ring.add()
        ctx.out.info(
          `published key ${key.id}, not signing with it yet: restart the server, let clients refresh their network file, then "keys activate ${key.id}"`
        )
        break
      }
      case 'activate':
        await ring.activate(needId())
        break
      case 'rotate': {
        const key = await ring.rotate()
        ctx.out.info(
          `new active key ${key.id}; older keys stay trusted until removed. Restart the server; clients need a fresh network file to trust it`
        )
        break
      }
      case 'remove':
        await ring.remove(needId())
        break
      default:
        throw new UsageError(`unknown keys action ${JSON.stringify(action)}`)
    }
    const keys = ring.published()
    ctx.out.result({ keys }, keys.map((k) => `${k.id}  ${k.active ? 'active ' : 'retired'}  ${k.createdAt}  ${k.publicKey}`).join('\n'))
  }
}
