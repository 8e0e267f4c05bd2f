import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import type { TurnServer } from '@parley/calls'
import { CredentialVerifier } from '@parley/crypto'
import { LoginClient } from '@parley/login-client'
import { type CredentialGrant, LIMITS, ParleyError, type SessionView } from '@parley/protocol'
import { API_FILE, EventHub, type LocalApi, startLocalApi } from './api/local-api.ts'
import { callRoutes } from './calls/api.ts'
import { EchoService } from './calls/echo.ts'
import { CallService } from './calls/service.ts'
import { CallStore } from './calls/store.ts'
import { TurnService } from './calls/turn.ts'
import { chatRoutes } from './chat/api.ts'
import { PresenceService } from './chat/presence.ts'
import { ChatService } from './chat/service.ts'
import { ChatStore } from './chat/store.ts'
import { fileRoutes } from './files/api.ts'
import { FileService } from './files/service.ts'
import { FileStore } from './files/store.ts'
import { PublicRanges } from './nat/ranges.ts'
import { ParleyNode } from './node.ts'
import type { Role } from './overlay/libp2p.ts'
import { SupernodeLinks } from './overlay/links.ts'
import { RelayReservations } from './overlay/relays.ts'
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
  /** Address ranges (CIDR) this node treats as public. Default: the internet's. */
  publicRanges?: string[]
  /** Whether an ordinary node may become a supernode by itself. Default: true. */
  mayPromote?: boolean
  /** How long a publicly reachable node runs before it becomes a supernode. Default: 30 minutes. */
  promoteAfterMs?: number
  /** How often the NAT and firewall determination runs again. Default: 5 minutes. */
  natEveryMs?: number
  /** A TURN server beside this node (coturn with the same shared secret): as a supernode, it hands out credentials for it. */
  turn?: TurnServer
  /** Call media only through TURN relays (the other side never learns this device's addresses). */
  relayMediaOnly?: boolean
  /** Runs this user as the echo test contact: accepts every contact, answers calls and plays back what it heard. */
  echo?: boolean
  /** Sent to the login server with a sign-in from the local API (its version check). */
  clientVersion?: string
  /** A name the web client's sign-up form offers first (`parley up --users alice`). */
  nameHint?: string
  /** The built web client served at `/`. Default: @parley/web's dist folder, when built. */
  webRoot?: string
}

export type { SessionView } from '@parley/protocol'

export interface RunningDaemon {
  node: ParleyNode
  links: SupernodeLinks
  relays: RelayReservations
  chat: ChatService
  presence: PresenceService
  calls: CallService
  files: FileService
  api: LocalApi
  /** The daemon's events (`GET /v1/events`). */
  events: EventHub
  /** Runs the NAT and firewall determination now and applies it (role, relays, record). */
  checkNat(): Promise<void>
  /** This device's session: signed in or not, as whom. */
  session(): Promise<SessionView>
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
  // Signed out (never logged in, or logged out) the daemon still serves the local API and the web client, whose
  // sign-in brings it online; it stays off the overlay until then.
  let grant: CredentialGrant | undefined = await profile.credential()
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
    publicRanges: PublicRanges.of(init.publicRanges ?? []),
    // A supernode keeps the mailboxes it holds on disk: a restart loses no acknowledged item.
    mailbox: { path: join(profile.dir, 'mailbox.sqlite') },
    ...(init.listen === undefined ? {} : { listen: init.listen })
  })
  await node.start()
  const cache = new HostCache(join(profile.dir, 'node.sqlite'))
  const targetFor = (role: Role): number => init.targetSupernodes ?? (role === 'supernode' ? 8 : 3)
  const links = new SupernodeLinks(node, cache, {
    target: targetFor(init.role),
    seeds: network.seeds,
    online: () => valid() !== undefined
  })
  await links.start()
  const relays = new RelayReservations(node, links)

  // What the local API's event stream carries about the network.
  const events = new EventHub()
  let echo: EchoService | undefined
  const emit = (type: string, data: object): void => {
    try {
      events.publish(type, data)
    } catch {
      // The hub closes with the daemon; nothing to tell then.
    }
    echo?.onEvent(type, data)
  }
  links.addEventListener('linked', (e) => emit('net.supernode-linked', (e as CustomEvent<object>).detail))
  links.addEventListener('unlinked', (e) => emit('net.supernode-unlinked', { peerId: (e as CustomEvent<string>).detail }))
  node.addEventListener('role', (e) => emit('net.role', { role: (e as CustomEvent<Role>).detail }))
  node.nat.addEventListener('verdict', (e) => emit('net.reachability', (e as CustomEvent<object>).detail))

  // The record carries the addresses others can use: relay addresses behind NAT or a firewall, direct ones otherwise.
  const advertised = (): string[] => {
    const { reachability } = node.nat.verdict
    const behind = node.role === 'client' && (reachability === 'nat' || reachability === 'firewalled')
    const addrs = node.addresses.filter((a) => a.includes('/p2p-circuit') === behind)
    return addrs.length > 0 ? addrs : node.addresses
  }
  let published = ''
  const publish = async (force = true): Promise<void> => {
    if (valid() === undefined) return
    const addrs = advertised()
    if (!force && addrs.join(' ') === published) return
    published = addrs.join(' ')
    await node.records.publish({ addrs, presence: 'online' }).catch(() => {})
  }
  await publish()
  const republish = setInterval(() => void publish(), init.republishMs ?? 10 * 60_000)
  republish.unref()
  let addrsChanged: ReturnType<typeof setTimeout> | undefined
  const onAddrs = (): void => {
    if (addrsChanged !== undefined) clearTimeout(addrsChanged)
    addrsChanged = setTimeout(() => void publish(false), 100)
    addrsChanged.unref()
  }
  node.libp2p.addEventListener('self:peer:update', onAddrs)

  // Roles: a node found publicly reachable, up long enough and allowed becomes a supernode by itself,
  // and steps back when any of that stops being true. `parley supernode` forces the role.
  const forced = init.role === 'supernode'
  const startedAt = Date.now()
  const promoteAfterMs = init.promoteAfterMs ?? 30 * 60_000
  let promotion: ReturnType<typeof setTimeout> | undefined
  const decideRole = async (): Promise<void> => {
    if (forced) return
    const eligible = init.mayPromote !== false && node.nat.verdict.reachability === 'public'
    if (node.role === 'client' && eligible) {
      const wait = startedAt + promoteAfterMs - Date.now()
      if (wait > 0) {
        if (promotion === undefined) {
          promotion = setTimeout(() => {
            promotion = undefined
            void decideRole().catch(() => {})
          }, wait)
          promotion.unref()
        }
        return
      }
      await node.setRole('supernode')
      await relays.want(false)
      links.target = targetFor('supernode')
    } else if (node.role === 'supernode' && !eligible) {
      await node.setRole('client')
      links.target = targetFor('client')
    }
  }
  let checking: Promise<void> | undefined
  const checkNat = async (): Promise<void> => {
    checking ??= (async () => {
      const verdict = await node.nat.determine(links.linked.map((s) => peerIdFromString(s.peerId)))
      await relays.want(node.role === 'client' && (verdict.reachability === 'nat' || verdict.reachability === 'firewalled'))
      await decideRole()
      await publish(false)
    })().finally(() => {
      checking = undefined
    })
    await checking
  }
  const natTimer = setInterval(() => void checkNat().catch(() => {}), init.natEveryMs ?? 5 * 60_000)
  natTimer.unref()
  // Until some supernode has answered, every new link is a chance to learn.
  const onLinked = (): void => {
    if (node.nat.verdict.answered === 0) void checkNat().catch(() => {})
  }
  links.addEventListener('linked', onLinked)
  void checkNat().catch(() => {})

  // Renewal at half-life; on failure, again in a minute.
  let renewal: ReturnType<typeof setTimeout> | undefined
  const scheduleRenewal = (): void => {
    if (grant === undefined) return
    const wait = Math.max(1_000, Date.parse(grant.renewAt) - Date.now())
    renewal = setTimeout(() => void renew(), Math.min(wait, 2 ** 31 - 1))
    renewal.unref()
  }
  const renew = async (): Promise<void> => {
    const current = grant
    try {
      if (current === undefined) return
      const next = await login.renew({ device, credential: current.credential })
      if (!verifier.verify(next.credential, { deviceKey: device.publicKey }).ok) throw new Error('renewed credential does not verify')
      // Signed out (or in again) while the renewal was under way: that newer session stands.
      if (grant !== current) return
      grant = next
      await profile.saveCredential(next)
      emit('credential.renewed', { expiresAt: next.expiresAt })
      await publish()
      scheduleRenewal()
    } catch {
      if (grant !== current) return
      renewal = setTimeout(() => void renew(), 60_000)
      renewal.unref()
    }
  }
  scheduleRenewal()

  // Contacts, presence and messages: the chat database, the services, their routes.
  const chatStore = new ChatStore(join(profile.dir, 'chat.sqlite'))
  const me = (): string | undefined => (valid() === undefined ? undefined : grant?.name)
  const chat = new ChatService({ node, store: chatStore, device, me, emit })
  const presence = new PresenceService({ node, store: chatStore, chat, me, emit })
  await chat.start()
  await presence.start()
  void chat.collect().catch(() => {})
  // A new device (or one back after a while) gets what the user's other devices have.
  void chat.catchUp().catch(() => {})
  void chat.drain().catch(() => {})

  // Calls: signalling over the overlay, media over WebRTC; STUN from the linked supernodes.
  const callStore = new CallStore(join(profile.dir, 'calls.sqlite'))
  // TURN: supernodes with a coturn beside them hand out credentials; every node asks its linked supernodes.
  const turn = new TurnService(node, init.turn)
  await turn.start()
  const calls = new CallService({
    node,
    chat,
    store: callStore,
    me,
    emit,
    iceServers: async () => [
      ...node.nat.stunServers.map((s) => ({ urls: `stun:${s.address.includes(':') ? `[${s.address}]` : s.address}:${s.port}` })),
      ...(await turn.iceServers(links.linked.map((l) => peerIdFromString(l.peerId))).catch(() => []))
    ],
    // Through TURN only when asked to, or when this device is behind a symmetric NAT and TURN is at hand: its
    // mappings differ per destination, so its own candidates reach nobody, and libwebrtc's fallback pair (the
    // other side's relay reached from a fresh mapping) carried only the first second of audio in the NAT tests.
    iceTransportPolicy: () => (init.relayMediaOnly === true || (node.nat.verdict.natClass === 'symmetric' && turn.known) ? 'relay' : 'all')
  })
  await calls.start()
  if (init.echo === true) echo = new EchoService({ chat, calls, me })

  // Files: offers and transfers between this user's devices and their contacts'.
  const fileStore = new FileStore(join(profile.dir, 'files.sqlite'))
  const files = new FileService({ node, chat, store: fileStore, me, emit })
  await files.start()

  // The session: the web client signs up, in and out here (the command line's login goes through here too while
  // this daemon runs). Whose the profile is, read once: only a sign-in here changes it.
  let owner = await profile.owner()
  const session = async (): Promise<SessionView> => {
    const signedIn = valid() !== undefined
    return {
      signedIn,
      name: signedIn ? (grant?.name ?? null) : null,
      displayName: signedIn && owner?.name === grant?.name ? (owner?.displayName ?? null) : null,
      peerId: node.peerId,
      login: network.login,
      suggestedName: owner?.name ?? init.nameHint ?? null,
      expiresAt: signedIn ? (grant?.expiresAt ?? null) : null
    }
  }
  let switching: Promise<unknown> = Promise.resolve()
  /** One sign-in or sign-out at a time. */
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const next = switching.then(work, work)
    switching = next.catch(() => {})
    return next
  }
  const signIn = (name: string, password: string, displayName: string | null): Promise<SessionView> =>
    serially(async () => {
      if (owner !== undefined && owner.name !== name)
        throw new ParleyError(
          'NOT_ALLOWED',
          `this device's profile belongs to ${owner.name}: sign in as ${owner.name}, or run another daemon with its own --data folder`
        )
      const next = await login.login({
        name,
        password,
        device,
        ...(init.clientVersion === undefined ? {} : { clientVersion: init.clientVersion })
      })
      const verdict = verifier.verify(next.credential, { deviceKey: device.publicKey })
      if (!verdict.ok)
        throw new ParleyError(verdict.reason, `the login server's credential does not verify with the network file: ${verdict.message}`)
      owner = { name: next.name, displayName: displayName ?? owner?.displayName ?? null }
      await profile.setOwner(owner)
      await profile.saveCredential(next)
      grant = next
      if (renewal !== undefined) clearTimeout(renewal)
      scheduleRenewal()
      // Online: hellos to the peers already connected, supernode links, the record, what others kept for this user.
      await node.hello.greetAll()
      await links.fill().catch(() => {})
      await publish()
      void checkNat().catch(() => {})
      void presence.push().catch(() => {})
      void chat.collect().catch(() => {})
      void chat.catchUp().catch(() => {})
      void chat.drain().catch(() => {})
      const view = await session()
      emit('session.changed', view)
      return view
    })
  const signOut = (): Promise<SessionView> =>
    serially(async () => {
      const current = grant
      if (current !== undefined) {
        for (const call of calls.calls()) await calls.hangUp(call.id).catch(() => {})
        // Out of the directory while the credential still signs: lookups stop finding this device at once.
        await node.records.withdraw({ signal: AbortSignal.timeout(LIMITS.overlay.withdrawTimeoutMs) }).catch(() => {})
        // The login server forgets the session (when it cannot be told, the credential expires by itself).
        await login.logout({ device, credential: current.credential }).catch(() => {})
        grant = undefined
        if (renewal !== undefined) clearTimeout(renewal)
        await profile.forgetCredential()
        // Off the overlay: peers forget this device's hello with the connections.
        node.hello.forgetAll()
        await Promise.all(node.libp2p.getConnections().map((c) => c.close().catch(() => {})))
      }
      const view = await session()
      emit('session.changed', view)
      return view
    })

  const api = await startLocalApi(
    profile.dir,
    init.api ?? { host: '127.0.0.1', port: 0 },
    {
      session,
      signedIn: () => valid() !== undefined,
      async register(body) {
        await login.register({
          name: body.name,
          password: body.password,
          ...(body.email === undefined ? {} : { email: body.email }),
          ...(body.displayName === undefined ? {} : { displayName: body.displayName })
        })
        return await signIn(body.name, body.password, body.displayName ?? null)
      },
      async login(body) {
        return await signIn(body.name, body.password, null)
      },
      logout: signOut,
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
        const verdict = node.nat.verdict
        return {
          role: node.role,
          reachability: verdict.reachability,
          natClass: verdict.natClass,
          observed: verdict.observed,
          mapped: verdict.mapped,
          checkedAt: verdict.answered > 0 ? verdict.at : null,
          addrs: advertised(),
          relays: relays.relays,
          supernodes: links.linked,
          hostCache: cache.size,
          direct: node.direct.stats
        }
      },
      async whois(name) {
        return await node.records.whois(name)
      },
      async directory(query, limit) {
        const current = grant
        if (current === undefined) throw new ParleyError('NOT_LOGGED_IN', 'sign in to search the directory')
        return await login.search(query, { device, credential: current.credential }, { limit })
      },
      async peer(name) {
        const found = await node.records.whois(name)
        const devices = await Promise.all(
          found.devices
            .filter((d) => d.peerId !== node.peerId)
            .map(async (d) => {
              try {
                return { peerId: d.peerId, ...(await node.reach(d.peerId, d.addrs)) }
              } catch (err) {
                return { peerId: d.peerId, path: node.pathTo(d.peerId), error: (err as Error).message }
              }
            })
        )
        return { name: found.name, devices }
      }
    },
    {
      events,
      routes: [chatRoutes(chat, presence), callRoutes(calls), fileRoutes(files, { uploads: join(profile.dir, 'uploads') })],
      ...(init.webRoot === undefined ? {} : { webRoot: init.webRoot })
    }
  )

  let stopped: Promise<void> | undefined
  return {
    node,
    links,
    relays,
    chat,
    presence,
    calls,
    files,
    api,
    events,
    checkNat,
    session,
    async stop() {
      stopped ??= (async () => {
        clearInterval(republish)
        clearInterval(natTimer)
        if (promotion !== undefined) clearTimeout(promotion)
        if (addrsChanged !== undefined) clearTimeout(addrsChanged)
        node.libp2p.removeEventListener('self:peer:update', onAddrs)
        links.removeEventListener('linked', onLinked)
        relays.stop()
        await checking?.catch(() => {})
        if (renewal !== undefined) clearTimeout(renewal)
        await api.close()
        events.close()
        await rm(join(profile.dir, API_FILE), { force: true })
        echo?.stop()
        await files.stop()
        await calls.stop()
        await turn.stop()
        await presence.stop()
        await chat.stop()
        await links.stop()
        await node.stop()
        cache.close()
        chatStore.close()
        callStore.close()
        fileStore.close()
      })()
      await stopped
    }
  }
}
