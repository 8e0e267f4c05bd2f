import { LIMITS } from '@parley/protocol'
import type { ChatService } from '../chat/service.ts'
import type { CallService } from './service.ts'

/**
 * The echo test contact (the report's "sound test service"): a user whose
 * daemon accepts every contact request, answers every call, records what the
 * caller says for a few seconds, plays it back, and hangs up; and answers a
 * chat line by repeating it. `parley up` runs one so that a newcomer can try
 * a call alone. It hooks into the daemon's events (`onEvent`).
 */
export class EchoService {
  readonly #chat: ChatService
  readonly #calls: CallService
  readonly #recordMs: number
  #stopped = false

  readonly #me: () => string | undefined

  constructor(init: { chat: ChatService; calls: CallService; me: () => string | undefined; recordMs?: number }) {
    this.#me = init.me
    this.#chat = init.chat
    this.#calls = init.calls
    this.#recordMs = init.recordMs ?? LIMITS.calls.echoRecordMs
  }

  stop(): void {
    this.#stopped = true
  }

  /** Called with every event the daemon publishes. */
  onEvent(type: string, data: object): void {
    if (this.#stopped) return
    const d = data as Record<string, unknown>
    if (type === 'contacts.changed' && d.state === 'incoming' && typeof d.name === 'string') {
      void this.#chat.acceptContact(d.name).catch(() => {})
    } else if (type === 'message.received' && typeof d.from === 'string' && typeof d.text === 'string') {
      // Lines from others in one-to-one chats; never its own, never another echo's (two echoes would talk forever).
      const mine = d.from.toLowerCase() === this.#me()?.toLowerCase()
      if (!mine && !String(d.conv).startsWith('g:') && !d.text.startsWith('echo: '))
        void this.#chat.message(d.from, `echo: ${d.text}`.slice(0, 4_000)).catch(() => {})
    } else if (type === 'call.incoming' && typeof d.id === 'string') {
      void this.#echo(d.id).catch(() => {})
    }
  }

  async #echo(id: string): Promise<void> {
    await this.#calls.answer(id)
    // Wait for the call to connect, then listen, then play back what was heard.
    const connectedBy = Date.now() + LIMITS.calls.connectTimeoutMs
    while (this.#calls.get(id)?.state !== 'active') {
      if (this.#calls.get(id)?.state === 'ended' || Date.now() > connectedBy) return
      await new Promise((r) => setTimeout(r, 50))
    }
    await new Promise((r) => setTimeout(r, this.#recordMs))
    if (this.#calls.get(id)?.state !== 'active') return
    const heard = this.#calls.heard(id)
    await this.#calls.play(id, heard)
    await new Promise((r) => setTimeout(r, 500))
    if (this.#calls.get(id)?.state === 'active') await this.#calls.hangUp(id)
  }
}
