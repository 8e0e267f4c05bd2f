import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { LIMITS } from '@parley/protocol'
import { CallError, decodeSignal, encodeSignal, type Signal } from './signal.ts'

/**
 * One call's signalling stream with one device: messages out in order, and
 * every message in decoded and checked. A malformed message is answered with
 * `refused` (MALFORMED or TOO_LARGE) and dropped; the stream goes on. Past
 * LIMITS.calls.signalsPerCall messages in, the stream is closed.
 */
export class SignalChannel {
  readonly device: string
  readonly #stream: Stream
  readonly #lp: ReturnType<typeof lpStream>
  #writing: Promise<void> = Promise.resolve()
  #closed = false
  #received = 0

  constructor(stream: Stream, device: string) {
    this.#stream = stream
    this.device = device
    this.#lp = lpStream(stream, { maxDataLength: LIMITS.calls.signalMaxBytes })
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Sends a message after those sent before; never throws (a closed stream drops it). */
  send(signal: Signal): Promise<void> {
    if (this.#closed) return Promise.resolve()
    const frame = encodeSignal(signal)
    this.#writing = this.#writing
      .then(async () => {
        await this.#lp.write(frame, { signal: AbortSignal.timeout(LIMITS.calls.inviteTimeoutMs) })
      })
      .catch(() => {
        this.close()
      })
    return this.#writing
  }

  /** The next message (checked), or undefined when the stream ends. Within `timeoutMs` when given. */
  async next(timeoutMs?: number): Promise<Signal | undefined> {
    for (;;) {
      if (this.#closed) return undefined
      let frame: Uint8Array
      try {
        frame = (await this.#lp.read(timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(timeoutMs) })).subarray()
      } catch {
        this.close()
        return undefined
      }
      if (++this.#received > LIMITS.calls.signalsPerCall) {
        await this.send({ t: 'refused', code: 'TOO_LARGE', message: `at most ${LIMITS.calls.signalsPerCall} messages in a call` })
        this.close()
        return undefined
      }
      try {
        return decodeSignal(frame)
      } catch (err) {
        const e = err instanceof CallError ? err : new CallError('MALFORMED', String(err))
        await this.send({ t: 'refused', code: e.code, message: e.message })
      }
    }
  }

  /** Reads every message into `handle` until the stream ends; then `onEnd`. */
  pump(handle: (signal: Signal) => void | Promise<void>, onEnd: () => void): void {
    void (async () => {
      for (;;) {
        const signal = await this.next()
        if (signal === undefined) break
        try {
          await handle(signal)
        } catch {
          // A message that cannot be applied now (a candidate for a closed connection) changes nothing.
        }
      }
      onEnd()
    })()
  }

  /** Closes after what was sent has gone out. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    void this.#writing.finally(() => {
      this.#stream.close({ signal: AbortSignal.timeout(1_000) }).catch(() => this.#stream.abort(new Error('closed')))
    })
  }
}
