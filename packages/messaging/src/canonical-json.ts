import { MessagingError } from './errors.ts'

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace,
 * numbers and strings as `JSON.stringify` writes them (the shortest form that
 * reads back to the same value), well-formed strings only. This is RFC 8785
 * (JCS) for the values Parley puts in envelopes. Properties whose value is
 * `undefined` are left out, as JSON.stringify does.
 *
 * One byte string per value: a decoder re-encodes what it parsed and refuses
 * input that differs, so a signature covers exactly one meaning.
 *
 * @throws MessagingError('MALFORMED') for values JSON cannot hold, or nested deeper than `maxDepth`.
 */
export function canonicalJson(value: unknown, maxDepth: number): string {
  return write(value, maxDepth)
}

function write(value: unknown, depthLeft: number): string {
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) throw new MessagingError('MALFORMED', 'a string holds a lone surrogate')
      return JSON.stringify(value)
    case 'number':
      if (!Number.isFinite(value)) throw new MessagingError('MALFORMED', 'a number is not finite')
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object': {
      if (value === null) return 'null'
      if (depthLeft <= 0) throw new MessagingError('MALFORMED', 'nested too deeply')
      if (Array.isArray(value)) {
        let out = '['
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ','
          const item: unknown = value[i]
          if (item === undefined) throw new MessagingError('MALFORMED', 'an array holds undefined')
          out += write(item, depthLeft - 1)
        }
        return out + ']'
      }
      const proto: unknown = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) throw new MessagingError('MALFORMED', 'only plain objects are JSON')
      const record = value as Record<string, unknown>
      let out = '{'
      let first = true
      for (const key of Object.keys(record).sort()) {
        const item = record[key]
        if (item === undefined) continue
        if (!key.isWellFormed()) throw new MessagingError('MALFORMED', 'a key holds a lone surrogate')
        out += (first ? '' : ',') + JSON.stringify(key) + ':' + write(item, depthLeft - 1)
        first = false
      }
      return out + '}'
    }
    default:
      throw new MessagingError('MALFORMED', `${typeof value} is not JSON`)
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
