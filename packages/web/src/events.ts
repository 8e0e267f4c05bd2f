import type { EventFrame } from './types.ts'

/** The subprotocol of `GET /v1/events`. */
export const EVENTS_PROTOCOL = 'parley.events.v1'

export type StreamStatus = 'connecting' | 'open' | 'reconnecting'

export interface EventStreamHandlers {
  /** A daemon event (`message.received`, `call.state`…). */
  onEvent(frame: EventFrame): void
  /**
   * The stream (re)started and events may have been missed (first connection,
   * a restarted daemon, or a gap longer than the daemon keeps): refetch state.
   */
  onResync(): void
  onStatus(status: StreamStatus): void
}

const PING_EVERY_MS = 20_000
const MAX_BACKOFF_MS = 10_000

/**
 * The daemon's event WebSocket: `{"type":"ping"}` keepalives (browsers cannot
 * send WebSocket pings), reconnection with backoff and `?since=SEQ` so that
 * nothing is lost across a short break; when the daemon says events were
 * missed (or it is a new run of the daemon) the client is told to resync.
 */
export class EventStream {
  readonly #handlers: EventStreamHandlers
  #socket: WebSocket | undefined
  #seq: number | undefined
  #run: string | undefined
  #closed = false
  #attempt = 0
  #ping: ReturnType<typeof setInterval> | undefined
  #retry: ReturnType<typeof setTimeout> | undefined

  constructor(handlers: EventStreamHandlers) {
    this.#handlers = handlers
  }

  start(): void {
    this.#closed = false
    this.#connect()
  }

  close(): void {
    this.#closed = true
    if (this.#retry !== undefined) clearTimeout(this.#retry)
    if (this.#ping !== undefined) clearInterval(this.#ping)
    this.#socket?.close(1000)
    this.#socket = undefined
  }

  #url(): string {
    const url = new URL('/v1/events', window.location.href)
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
    if (this.#seq !== undefined) url.searchParams.set('since', String(this.#seq))
    return url.toString()
  }

  #connect(): void {
    if (this.#closed) return
    this.#handlers.onStatus(this.#attempt === 0 && this.#seq === undefined ? 'connecting' : 'reconnecting')
    let socket: WebSocket
    try {
      socket = new WebSocket(this.#url(), [EVENTS_PROTOCOL])
    } catch {
      this.#scheduleRetry()
      return
    }
    this.#socket = socket
    socket.onmessage = (message) => {
      let frame: EventFrame
      try {
        frame = JSON.parse(String(message.data)) as EventFrame
      } catch {
        return
      }
      if (frame.type === 'stream.start') {
        this.#attempt = 0
        this.#handlers.onStatus('open')
        const data = frame.data as { run: string; seq: number; missed: boolean }
        const newRun = this.#run !== undefined && this.#run !== data.run
        const first = this.#run === undefined
        this.#run = data.run
        if (first || newRun || data.missed) {
          this.#seq = data.seq
          this.#handlers.onResync()
        }
        return
      }
      if (frame.type.startsWith('stream.')) return
      if (typeof frame.seq === 'number') this.#seq = frame.seq
      try {
        this.#handlers.onEvent(frame)
      } catch (err) {
        console.error('event handler failed', frame.type, err)
      }
    }
    socket.onopen = () => {
      if (this.#ping !== undefined) clearInterval(this.#ping)
      this.#ping = setInterval(() => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'ping' }))
      }, PING_EVERY_MS)
    }
    socket.onclose = () => {
      if (this.#ping !== undefined) clearInterval(this.#ping)
      if (this.#socket === socket) this.#socket = undefined
      this.#scheduleRetry()
    }
  }

  #scheduleRetry(): void {
    if (this.#closed) return
    this.#handlers.onStatus('reconnecting')
    const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.#attempt) * (0.75 + Math.random() * 0.5)
    this.#attempt++
    this.#retry = setTimeout(() => this.#connect(), wait)
  }
}
