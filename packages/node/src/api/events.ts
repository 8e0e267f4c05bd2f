import { randomBytes } from 'node:crypto'
import { LIMITS } from '@parley/protocol'

/**
 * One event of the daemon, as the local API's event stream carries it: a
 * sequence number that only grows (per daemon run, from 1), a dotted type
 * (`presence.changed`), the time and a JSON payload.
 */
export interface ApiEvent<T = unknown> {
  seq: number
  type: string
  /** ISO 8601. */
  at: string
  data: T
}

/** An event as stored: the object and its JSON, serialized once for every subscriber. */
export interface StoredEvent {
  event: ApiEvent
  json: string
}

export interface EventHubInit {
  /** Recent events kept for `subscribe({ since })`. Default: LIMITS.api.eventRingLength. */
  ringLength?: number
  /** Live events a subscriber may fall behind by before it is cut off. Default: LIMITS.api.eventQueueLength. */
  queueLength?: number
  /** Default: Date.now. */
  now?: () => number
}

export interface SubscribeOptions {
  /** Replay the kept events after this sequence number first. */
  since?: number
  signal?: AbortSignal
}

/** A subscriber fell more than `queueLength` live events behind: its subscription ends with this. */
export class SlowConsumerError extends Error {
  override name = 'SlowConsumerError'
  readonly queueLength: number
  constructor(queueLength: number) {
    super(`fell more than ${queueLength} events behind`)
    this.queueLength = queueLength
  }
}

/** The subscription ended because the hub closed (the daemon is stopping). */
export class HubClosedError extends Error {
  override name = 'HubClosedError'
}

const TYPE_PATTERN = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/

/**
 * The daemon's events, fanned out to local API clients. `publish` never
 * blocks and never throws because of a subscriber: each subscriber has its
 * own bounded queue of live events and is cut off (SlowConsumerError) when it
 * overflows, rather than buffering without limit. A ring of recent events lets
 * a client that reconnects with the last `seq` it saw get what it missed.
 */
export class EventHub {
  /** A random id for this run: `seq` starts again at 1 when the daemon restarts, `run` tells the runs apart. */
  readonly run = randomBytes(8).toString('hex')
  readonly ringLength: number
  readonly queueLength: number
  readonly #now: () => number
  readonly #ring: StoredEvent[] = []
  readonly #subscribers = new Set<EventSubscription>()
  #seq = 0
  #closed = false

  constructor(init: EventHubInit = {}) {
    this.ringLength = init.ringLength ?? LIMITS.api.eventRingLength
    this.queueLength = init.queueLength ?? LIMITS.api.eventQueueLength
    if (!Number.isSafeInteger(this.ringLength) || this.ringLength < 1) throw new RangeError('ringLength must be a positive integer')
    if (!Number.isSafeInteger(this.queueLength) || this.queueLength < 1) throw new RangeError('queueLength must be a positive integer')
    this.#now = init.now ?? Date.now
  }

  /** The sequence number of the latest event; 0 before the first. */
  get seq(): number {
    return this.#seq
  }

  /** The sequence number of the oldest event still kept; `seq + 1` when none is. */
  get oldest(): number {
    return this.#ring[0]?.event.seq ?? this.#seq + 1
  }

  get subscribers(): number {
    return this.#subscribers.size
  }

  /**
   * Publishes an event to every subscriber. `type` is dotted lower case
   * (`call.ringing`); `data` must survive JSON (no bigint, no cycles): the
   * publisher learns of a bad payload by a TypeError here, never a subscriber.
   */
  publish<T>(type: string, data: T): ApiEvent<T> {
    if (!TYPE_PATTERN.test(type)) throw new TypeError(`event type ${JSON.stringify(type)} is not dotted lower case`)
    if (this.#closed) throw new HubClosedError('the event hub is closed')
    const event: ApiEvent<T> = { seq: this.#seq + 1, type, at: new Date(this.#now()).toISOString(), data }
    let json: string
    try {
      json = JSON.stringify(event)
    } catch (err) {
      throw new TypeError(`event ${type}: data is not JSON (${(err as Error).message})`, { cause: err })
    }
    this.#seq = event.seq
    const stored: StoredEvent = { event, json }
    this.#ring.push(stored)
    if (this.#ring.length > this.ringLength) this.#ring.shift()
    for (const subscriber of this.#subscribers) subscriber.push(stored)
    return event
  }

  /**
   * A subscription: the kept events after `since` (when given), then every
   * new one, in order. `missed` tells whether events after `since` are no
   * longer kept (or `since` is from another run), so the client must refetch.
   */
  subscribe(options: SubscribeOptions = {}): EventSubscription {
    if (this.#closed) throw new HubClosedError('the event hub is closed')
    const since = options.since
    const replay = since === undefined ? [] : this.#ring.filter((e) => e.event.seq > since)
    const missed = since !== undefined && (since > this.#seq || since + 1 < this.oldest)
    const subscription = new EventSubscription(replay, missed, this.queueLength, () => this.#subscribers.delete(subscription))
    this.#subscribers.add(subscription)
    if (options.signal !== undefined) {
      if (options.signal.aborted) subscription.close()
      else options.signal.addEventListener('abort', () => subscription.close(), { once: true })
    }
    return subscription
  }

  /** Ends every subscription (HubClosedError) and refuses new events; safe twice. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const subscriber of this.#subscribers) subscriber.fail(new HubClosedError('the event hub is closed'))
    this.#subscribers.clear()
  }
}

/**
 * One subscriber's view of the hub: an async iterable of stored events. The
 * replay is bounded by the ring, the live queue by `queueLength`; iteration
 * ends on `close()` and throws SlowConsumerError when the queue overflowed.
 */
export class EventSubscription implements AsyncIterable<StoredEvent> {
  /** The client asked for events that are gone: it must refetch its state. */
  readonly missed: boolean
  readonly #replay: StoredEvent[]
  readonly #live: StoredEvent[] = []
  readonly #queueLength: number
  readonly #detach: () => void
  #wake: (() => void) | undefined
  #ended = false
  #error: Error | undefined

  constructor(replay: StoredEvent[], missed: boolean, queueLength: number, detach: () => void) {
    this.#replay = replay
    this.missed = missed
    this.#queueLength = queueLength
    this.#detach = detach
  }

  /** Events waiting to be taken (replay and live). */
  get pending(): number {
    return this.#replay.length + this.#live.length
  }

  /** For the hub: a new live event. Overflow cuts the subscriber off; the publisher never waits. */
  push(event: StoredEvent): void {
    if (this.#ended) return
    if (this.#live.length >= this.#queueLength) {
      this.fail(new SlowConsumerError(this.#queueLength))
      return
    }
    this.#live.push(event)
    this.#signal()
  }

  /** Ends the subscription with an error, dropping what is queued. */
  fail(error: Error): void {
    if (this.#ended) return
    this.#error = error
    this.#end()
  }

  /** Ends the subscription; iteration stops after the events already taken. Safe twice. */
  close(): void {
    if (this.#ended) return
    this.#end()
  }

  #end(): void {
    this.#ended = true
    this.#replay.length = 0
    this.#live.length = 0
    this.#detach()
    this.#signal()
  }

  #signal(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StoredEvent> {
    try {
      while (true) {
        if (this.#error !== undefined) throw this.#error
        if (this.#ended) return
        const next = this.#replay.shift() ?? this.#live.shift()
        if (next !== undefined) {
          yield next
          continue
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
      }
    } finally {
      this.close()
    }
  }
}
