import { BlockList, isIP } from 'node:net'

/**
 * Address ranges that are not the internet's: IANA's special-purpose
 * registries (RFC 6890 and successors) — loopback, RFC 1918, CGNAT,
 * link-local, benchmarking, the documentation TEST-NETs, multicast, reserved.
 */
export const RESERVED_RANGES = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  '::ffff:0:0/96',
  '64:ff9b::/96',
  '100::/64',
  '2001:db8::/32',
  'fc00::/7',
  'fe80::/10',
  'ff00::/8'
] as const

/**
 * The addresses a node treats as public: by default the internet's (every
 * address outside RESERVED_RANGES); a deployment or a test may name its own
 * (`--public-ranges 10.99.0.0/16`), since everything a test may use is reserved.
 */
export class PublicRanges {
  /** One list per family: a BlockList matches IPv4 addresses against IPv4-mapped IPv6 ranges too. */
  readonly #v4 = new BlockList()
  readonly #v6 = new BlockList()
  readonly #inverted: boolean
  readonly ranges: readonly string[]

  private constructor(ranges: readonly string[], inverted: boolean) {
    this.ranges = ranges
    this.#inverted = inverted
    for (const range of ranges) {
      const [net, bits] = parseCidr(range)
      if (isIP(net) === 6) this.#v6.addSubnet(net, bits, 'ipv6')
      else this.#v4.addSubnet(net, bits, 'ipv4')
    }
  }

  /** Everything but the reserved ranges. */
  static internet(): PublicRanges {
    return new PublicRanges(RESERVED_RANGES, true)
  }

  /** Exactly these CIDR ranges; throws a clear error on a malformed one. */
  static of(ranges: readonly string[]): PublicRanges {
    if (ranges.length === 0) return PublicRanges.internet()
    return new PublicRanges(ranges, false)
  }

  /** 'internet' or the comma-separated ranges, as given to `of`. */
  describe(): string {
    return this.#inverted ? 'internet' : this.ranges.join(',')
  }

  isPublic(ip: string): boolean {
    const family = isIP(ip)
    if (family === 0) return false
    const listed = family === 6 ? this.#v6.check(ip, 'ipv6') : this.#v4.check(ip, 'ipv4')
    return this.#inverted ? !listed : listed
  }
}

function parseCidr(range: string): [string, number] {
  const [net, bitsText, extra] = range.split('/')
  const family = isIP(net ?? '')
  const bits = Number(bitsText)
  if (net === undefined || extra !== undefined || family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32))
    throw new TypeError(`"${range}" is not an address range (CIDR such as 10.99.0.0/16)`)
  return [net, bits]
}
