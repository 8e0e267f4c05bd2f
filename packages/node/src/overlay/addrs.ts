import type { Multiaddr } from '@multiformats/multiaddr'

export interface HostPort {
  host: string
  port: number
  transport: 'tcp' | 'udp'
}

/** The IP host and TCP/UDP port at the start of a multiaddr (/ip4|ip6/…/tcp|udp/…), or undefined (memory, DNS, relay-only). */
export function hostPort(addr: Multiaddr): HostPort | undefined {
  const [ip, transport] = addr.getComponents()
  if (ip === undefined || transport === undefined || (ip.name !== 'ip4' && ip.name !== 'ip6')) return undefined
  if (transport.name !== 'tcp' && transport.name !== 'udp') return undefined
  const port = Number(transport.value)
  if (ip.value === undefined || !Number.isInteger(port)) return undefined
  return { host: ip.value, port, transport: transport.name }
}

/** Whether the address goes through a circuit relay. */
export function isRelayed(addr: Multiaddr): boolean {
  return addr.getComponents().some((c) => c.name === 'p2p-circuit')
}
