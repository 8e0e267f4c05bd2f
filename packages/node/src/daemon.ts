import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { CredentialVerifier } from '@parley/crypto'
import { LoginClient } from '@parley/login-client'
import { type CredentialGrant, ParleyError } from '@parley/protocol'
import { API_FILE, type LocalApi, startLocalApi } from './api/local-api.ts'
import { ParleyNode } from './node.ts'
import type { Role } from './overlay/libp2p.ts'
import { SupernodeLinks } from './overlay/links.ts'
import { HostCache } from './store/host-cache.ts'
import { Profile } from './store/profile.ts'

export interface DaemonInit {
  dataDir: string
  /** A network file; the profile remembers it. */
  networkFile?: string
  role: Role
  /** Multiaddrs to listen on. Default: TCP on a free loopback port. */
  listen?: string[]
  /** The local API's HOST:PORT. Default: 127.0.0.1:0. */
  api?: { host: string; port: number }
  /** Supernodes a client stays attached to. Default: 3. */
  targetSupernodes?: number
  /** Republish the user record this often. Default: 10 minutes. */
  republishMs?: number
}

export interface RunningDaemon {
  node: ParleyNode
  links: SupernodeLinks
  api: LocalApi
  stop(): Promise<void>
}

const PRIVATE_HOSTS = /^\/ip[46]\/(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|::1\/|fd|fe80)/

/**
 * A user's node (client role) or a supernode: the profile's device key is its
 * identity, its credential is presented in every hello and renewed in the
 * background at half-life, it stays attached to supernodes from the host
 * cache and the seeds, publishes its user record, and serves the local API.
 */
export async function startDaemon(init: DaemonInit): Promise<RunningDaemon> {
  const profile = new Profile(init.dataDir)
  const network = await profile.network(init.networkFile)
  const device = await profile.deviceKey()
  const verifier = new CredentialVerifier(network.keys)
  const login = new LoginClient({ url: network.login })
  let grant: CredentialGrant | undefined = await profile.credential()
  if (grant === undefined)
    throw new ParleyError(
      'NOT_LOGGED_IN',
      `the profile ${profile.dir} is not logged in: run "parley login NAME --data ${profile.dir}" first`
    )
  const valid = (): string | undefined =>
    grant !== undefined && verifier.verify(grant.credential, { deviceKey: device.publicKey }).ok ? grant.credential : undefined
  // A network whose seeds are all private or loopback addresses is a private deployment: keep such addresses in the DHT.
  const privateAddresses = network.seeds.length === 0 || network.seeds.every((s) => PRIVATE_HOSTS.test(s))
  const node = await ParleyNode.create({
    role: init.role,
    deviceSeed: device.seed,
    trustedKeys: network.keys,
    credential: valid,
    privateAddresses,
    ...(init.listen === undefined ? {} : { listen: init.listen })
  })
  await node.start()
  const cache = new HostCache(join(profile.dir, 'node.sqlite'))
  const links = new SupernodeLinks(node, cache, {
    target: init.targetSupernodes ?? (init.role === 'supernode' ? 8 : 3),
    seeds: network.seeds
  })
  await links.start()

  const publish = async (): Promise<void> => {
    if (valid() === undefined) return
    await node.records.publish({ addrs: node.addresses, presence: 'online' }).catch(() => {})
  }
  await publish()
  const republish = setInterval(() => void publish(), init.republishMs ?? 10 * 60_000)
  republish.unref()

  // Renewal at half-life; on failure, again in a minute.
  let renewal: ReturnType<typeof setTimeout> | undefined
  const scheduleRenewal = (): void => {
    if (grant === undefined) return
    const wait = Math.max(1_000, Date.parse(grant.renewAt) - Date.now())
    renewal = setTimeout(() => void renew(), Math.min(wait, 2 ** 31 - 1))
    renewal.unref()
  }
  const renew = async (): Promise<void> => {
    try {
      if (grant === undefined) return
      const next = await login.renew({ device, credential: grant.credential })
      if (!verifier.verify(next.credential, { deviceKey: device.publicKey }).ok) throw new Error('renewed credential does not verify')
      grant = next
      await profile.saveCredential(next)
      await publish()
      scheduleRenewal()
    } catch {
      renewal = setTimeout(() => void renew(), 60_000)
      renewal.unref()
    }
  }
  scheduleRenewal()

  const api = await startLocalApi(profile.dir, init.api ?? { host: '127.0.0.1', port: 0 }, {
    async whoami() {
      const credential = valid()
      return {
        name: grant?.name ?? null,
        peerId: node.peerId,
        online: credential !== undefined,
        expiresAt: grant?.expiresAt ?? null,
        role: node.role
      }
    },
    async net() {
      return {
        role: node.role,
        // Parley's own NAT and firewall determination is not built yet.
        reachability: 'unknown',
        addrs: node.addresses,
        supernodes: links.linked,
        hostCache: cache.size
      }
    },
    async whois(name) {
      return await node.records.whois(name)
    }
  })

  let stopped: Promise<void> | undefined
  return {
    node,
    links,
    api,
    async stop() {
      stopped ??= (async () => {
        clearInterval(republish)
        if (renewal !== undefined) clearTimeout(renewal)
        await api.close()
        await rm(join(profile.dir, API_FILE), { force: true })
        await links.stop()
        await node.stop()
        cache.close()
      })()
      await stopped
    }
  }
}
