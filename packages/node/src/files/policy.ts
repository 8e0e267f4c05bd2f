import { readFileSync } from 'node:fs'
import { type ClamdAddress, parseClamdAddress } from './clamd.ts'

/**
 * The machine's file-transfer policy (the report's registry key): a JSON file
 * the administrator writes and the user cannot override, by default
 * `/etc/parley/policy.json` (`PARLEY_POLICY` names another, for tests):
 * `{"files": {"enabled": false}}` turns file transfer off, `{"files":
 * {"maxBytes": N}}` caps the size of one offer, `{"files": {"clamd":
 * "/run/clamav/clamd.ctl"}}` (or `"HOST:PORT"`) has every received file
 * scanned by that clamd before it is moved into place (required: while clamd
 * cannot give a verdict, files stay out of place). Missing: no limits, no
 * scanning. Broken: file transfer is off (a policy that cannot be read is not
 * ignored).
 */
export interface FilePolicy {
  enabled: boolean
  maxBytes: number | null
  /** The clamd every received file must pass; absent or null: no scanning. */
  clamd?: ClamdAddress | null
  /** Where it came from, for the words of a refusal. */
  source: string
}

export const DEFAULT_POLICY_PATH = '/etc/parley/policy.json'

export function readFilePolicy(path = process.env.PARLEY_POLICY ?? DEFAULT_POLICY_PATH): FilePolicy {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { enabled: true, maxBytes: null, clamd: null, source: path }
    return { enabled: false, maxBytes: null, clamd: null, source: `${path} (unreadable)` }
  }
  try {
    const files = (JSON.parse(text) as { files?: { enabled?: unknown; maxBytes?: unknown; clamd?: unknown } }).files ?? {}
    const maxBytes = files.maxBytes === undefined ? null : Number(files.maxBytes)
    if (maxBytes !== null && !(Number.isSafeInteger(maxBytes) && maxBytes >= 0)) throw new Error('maxBytes')
    if (files.enabled !== undefined && typeof files.enabled !== 'boolean') throw new Error('enabled')
    let clamd: ClamdAddress | null = null
    if (files.clamd !== undefined && files.clamd !== null) {
      clamd = (typeof files.clamd === 'string' ? parseClamdAddress(files.clamd) : undefined) ?? null
      if (clamd === null) throw new Error('clamd')
    }
    return { enabled: files.enabled !== false, maxBytes, clamd, source: path }
  } catch {
    return { enabled: false, maxBytes: null, clamd: null, source: `${path} (malformed)` }
  }
}
