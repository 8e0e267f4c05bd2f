import { writeFile } from 'node:fs/promises'
import { keyIdOf } from '@parley/crypto'
import { LoginClient } from '@parley/login-client'
import { fromBase64Url, type NetworkFile, ParleyError } from '@parley/protocol'
import { type Command, stringFlag } from '../context.ts'
import { UsageError } from '../output.ts'

export const networkInit: Command = {
  path: ['network', 'init'],
  usage: 'parley network init --login URL --out FILE [--seed MULTIADDR ...]',
  summary: 'writes a network file: the login server, its trusted keys, the seed supernodes',
  options: { login: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string', multiple: true } },
  positionals: 0,
  async run(ctx) {
    const login = stringFlag(ctx, 'login')
    const out = stringFlag(ctx, 'out')
    if (login === undefined || out === undefined) throw new UsageError('network init needs --login URL and --out FILE')
    try {
      const url = new URL(login)
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http')
    } catch {
      throw new UsageError(`--login must be an http(s) URL, not ${JSON.stringify(login)}`)
    }
    const { keys } = await new LoginClient({ url: login }).keys()
    // Trust only keys whose id really is derived from the key.
    for (const k of keys) {
      const raw = fromBase64Url(k.publicKey)
      if (raw?.length !== 32 || keyIdOf(raw) !== k.id)
        throw new ParleyError('BAD_CONFIG', `the login server published a key whose id ${k.id} does not match it`)
    }
    const seeds = (ctx.flags.seed as string[] | undefined) ?? []
    const network: NetworkFile = {
      version: 1,
      login: login.replace(/\/+$/, ''),
      keys: keys.map((k) => ({ id: k.id, publicKey: k.publicKey })),
      seeds
    }
    await writeFile(out, `${JSON.stringify(network, null, 2)}\n`)
    ctx.out.result(
      { file: out, ...network },
      `wrote ${out}: login ${network.login}, ${keys.length} trusted key(s), ${seeds.length} seed(s)`
    )
  }
}
