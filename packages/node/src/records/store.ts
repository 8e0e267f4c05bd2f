import { LIMITS } from '@parley/protocol'
import type { CheckedRecord } from './record.ts'

export type StoreOutcome = 'stored' | 'unchanged' | 'REPLAYED' | 'FULL'

/**
 * A supernode's share of the directory: for each user, the newest record of
 * each device (by seq). Older or equal-but-different records are replays and
 * are refused; expired records are dropped when read and swept periodically.
 */
export class RecordStore {
  readonly #byUser = new Map<string, Map<string, CheckedRecord>>()
  #count = 0

  get size(): number {
    return this.#count
  }

  put(checked: CheckedRecord, now = Date.now()): StoreOutcome {
    const user = checked.name.toLowerCase()
    let devices = this.#byUser.get(user)
    const device = checked.peerId
    const existing = devices?.get(device)
    if (existing !== undefined && existing.record.expiresAt > now) {
      if (checked.record.seq < existing.record.seq) return 'REPLAYED'
      if (checked.record.seq === existing.record.seq) return existing.signed.sig === checked.signed.sig ? 'unchanged' : 'REPLAYED'
    }
    if (devices === undefined) {
      if (this.#count >= LIMITS.overlay.recordsPerSupernode) {
        this.sweep(now)
        if (this.#count >= LIMITS.overlay.recordsPerSupernode) return 'FULL'
      }
      devices = new Map()
      this.#byUser.set(user, devices)
    }
    if (existing === undefined) {
      this.#drop(devices, now)
      if (devices.size >= LIMITS.overlay.devicesPerUser) {
        // The device whose record expires first gives way.
        const oldest = [...devices.entries()].sort((a, b) => a[1].record.expiresAt - b[1].record.expiresAt)[0]
        if (oldest !== undefined) {
          devices.delete(oldest[0])
          this.#count--
        }
      }
      this.#count++
    }
    devices.set(device, checked)
    return 'stored'
  }

  /** The live records of a user's devices. */
  get(name: string, now = Date.now()): CheckedRecord[] {
    const devices = this.#byUser.get(name.toLowerCase())
    if (devices === undefined) return []
    this.#drop(devices, now)
    return [...devices.values()]
  }

  /** Drops every expired record. */
  sweep(now = Date.now()): void {
    for (const [user, devices] of this.#byUser) {
      this.#drop(devices, now)
      if (devices.size === 0) this.#byUser.delete(user)
    }
  }

  #drop(devices: Map<string, CheckedRecord>, now: number): void {
    for (const [device, r] of devices) {
      if (r.record.expiresAt <= now) {
        devices.delete(device)
        this.#count--
      }
    }
  }
}
