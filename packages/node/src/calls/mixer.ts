import { LIMITS } from '@parley/protocol'

/**
 * The audio of a conference this device hosts (as in the report: each
 * participant has its own encrypted call with the host, who mixes): what each
 * participant says goes to every other participant, with the host's own
 * audio, and never back to the one who said it. Audio arrives from each
 * participant's recorder (`push`) and leaves through each participant's
 * player, which pulls one 10 ms frame at a time (`pull`): the mix for that
 * participant is the sum of everyone else's next 10 ms, clipped to 16 bits.
 * A source that falls behind adds silence; one that runs ahead is trimmed to
 * LIMITS.calls.mixBacklogMs so that delay cannot build up.
 */
export class Mixer {
  /** Per listener, per source: samples waiting to be mixed. */
  readonly #queues = new Map<string, Map<string, SampleQueue>>()
  static readonly HOST = '(host)'
  /** The host as a listener (a host whose user is in the conference through the web client hears everyone). */
  static readonly HOST_EAR = '(host ear)'

  get participants(): string[] {
    return [...this.#queues.keys()]
  }

  add(participant: string): void {
    if (this.#queues.has(participant)) return
    this.#queues.set(participant, new Map())
  }

  remove(participant: string): void {
    this.#queues.delete(participant)
    for (const sources of this.#queues.values()) sources.delete(participant)
  }

  /** Audio a participant said (48 kHz mono): queued for everyone else. */
  push(source: string, chunk: Int16Array): void {
    const cap = Math.round((LIMITS.calls.mixBacklogMs * LIMITS.calls.audio.sampleRate) / 1000)
    for (const [listener, sources] of this.#queues) {
      if (listener === source) continue
      let queue = sources.get(source)
      if (queue === undefined) {
        queue = new SampleQueue()
        sources.set(source, queue)
      }
      queue.push(chunk)
      queue.trimTo(cap)
    }
  }

  /**
   * The host's own audio, to every participant: a file played into the
   * conference is kept whole; a live voice (`live`) is trimmed like any
   * participant's. The host never hears it back.
   */
  hostSays(samples: Int16Array, options: { live?: boolean } = {}): void {
    const cap = Math.round((LIMITS.calls.mixBacklogMs * LIMITS.calls.audio.sampleRate) / 1000)
    for (const [listener, sources] of this.#queues) {
      if (listener === Mixer.HOST_EAR) continue
      let queue = sources.get(Mixer.HOST)
      if (queue === undefined) {
        queue = new SampleQueue()
        sources.set(Mixer.HOST, queue)
      }
      queue.push(samples)
      if (options.live === true) queue.trimTo(cap)
    }
  }

  /** Fills one frame of what `listener` hears: everyone else's next samples, summed and clipped. */
  pull(listener: string, frame: Int16Array): void {
    const sources = this.#queues.get(listener)
    if (sources === undefined) return
    const sum = new Int32Array(frame.length)
    for (const queue of sources.values()) queue.takeInto(sum)
    for (let i = 0; i < frame.length; i++) frame[i] = Math.max(-32768, Math.min(32767, sum[i] as number))
  }
}

/** Samples in arrival order, taken from the front. */
export class SampleQueue {
  readonly #chunks: Int16Array[] = []
  #offset = 0
  #length = 0

  get length(): number {
    return this.#length
  }

  push(chunk: Int16Array): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#length += chunk.length
  }

  /** Drops the oldest samples past `max`. */
  trimTo(max: number): void {
    while (this.#length > max && this.#chunks.length > 0) {
      const head = this.#chunks[0] as Int16Array
      const drop = Math.min(head.length - this.#offset, this.#length - max)
      this.#offset += drop
      this.#length -= drop
      if (this.#offset === head.length) {
        this.#chunks.shift()
        this.#offset = 0
      }
    }
  }

  /** Adds the next `into.length` samples into `into` (fewer when there are fewer). */
  takeInto(into: Int32Array): void {
    let at = 0
    while (at < into.length && this.#chunks.length > 0) {
      const head = this.#chunks[0] as Int16Array
      const n = Math.min(into.length - at, head.length - this.#offset)
      for (let i = 0; i < n; i++) into[at + i] = (into[at + i] as number) + (head[this.#offset + i] as number)
      at += n
      this.#offset += n
      this.#length -= n
      if (this.#offset === head.length) {
        this.#chunks.shift()
        this.#offset = 0
      }
    }
  }
}
