import { readFileSync } from 'node:fs'

/**
 * The machine's file-transfer policy (the report's registry key): a JSON file
 * the administrator writes and the user cannot override, by default
 * `/etc/parley/policy.json` (`PARLEY_POLICY` names another, for tests):
 * `{"files": {"enabled": false}}` turns file transfer off, `{"files":
 * {"maxBytes": N}}` caps the size of one offer. Missing: no limits. Broken:
 * file transfer is off (a policy that cannot be read is not ignored).
 */
export interface FilePolicy {
  enabled: boolean
  maxBytes: number | null
  /** Where it came from, for the words of a refusal. */
  source: string
}

export const DEFAULT_POLICY_PATH = '/etc/parley/policy.json'

export function readFilePolicy(path = process.env.PARLEY_POLICY ?? DEFAULT_POLICY_PATH): FilePolicy {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { enabled: true, maxBytes: null, source: path }
    return { enabled: false, maxBytes: null, source: `${path} (unreadable)` }
  }
  try {
    const files = (JSON.parse(text) as { files?: { enabled?: unknown; maxBytes?: unknown } }).files ?? {}
    const maxBytes = files.maxBytes === undefined ? null : Number(files.maxBytes)
    if (maxBytes !== null && !(Number.isSafeInteger(maxBytes) && maxBytes >= 0)) throw new Error('maxBytes')
    if (files.enabled !== undefined && typeof files.enabled !== 'boolean') throw new Error('enabled')
    return { enabled: files.enabled !== false, maxBytes, source: path }
  } catch {
    return { enabled: false, maxBytes: null, source: `${path} (malformed)` }
  }
}
