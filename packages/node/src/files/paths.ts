import { posix, resolve, sep } from 'node:path'
import { LIMITS } from '@parley/protocol'

/** Names Windows keeps for devices: never a file name, on any system a file may be copied to later. */
const RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i
const encoder = new TextEncoder()

/**
 * Why `path` (from an offer: POSIX, relative, as the sender named the file in
 * its folder) may not be written under a target folder, or undefined when it
 * may. Refused: empty, absolute, `..` or `.` parts, backslashes, control
 * characters, NUL, reserved device names, names ending in a dot or a space,
 * and anything over LIMITS.files.pathMaxBytes / partMaxBytes.
 */
export function pathProblem(path: unknown): string | undefined {
  if (typeof path !== 'string' || path === '') return 'an empty name'
  if (encoder.encode(path).length > LIMITS.files.pathMaxBytes) return `a name over ${LIMITS.files.pathMaxBytes} bytes`
  if (!path.isWellFormed()) return 'a name that is not well-formed text'
  if (path.startsWith('/')) return `an absolute path (${JSON.stringify(path)})`
  if (path.includes('\\')) return `a backslash in ${JSON.stringify(path)}`
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return `a control character in ${JSON.stringify(path)}`
  }
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..') return `a path that leaves its folder (${JSON.stringify(path)})`
    if (encoder.encode(part).length > LIMITS.files.partMaxBytes) return `a name part over ${LIMITS.files.partMaxBytes} bytes`
    if (RESERVED.test(part)) return `a reserved device name (${part})`
    if (/[. ]$/.test(part)) return `a name ending in a dot or a space (${JSON.stringify(part)})`
  }
  return undefined
}

/** Where a checked offer path goes under `folder`: always inside it. */
export function placeUnder(folder: string, path: string): string {
  const problem = pathProblem(path)
  if (problem !== undefined) throw new Error(problem)
  const root = resolve(folder)
  const target = resolve(root, ...posix.normalize(path).split('/'))
  if (!target.startsWith(root + sep)) throw new Error(`${path} leaves ${root}`)
  return target
}
