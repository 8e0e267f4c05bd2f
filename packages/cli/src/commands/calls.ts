import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { LIMITS, ParleyError } from '@parley/protocol'
import { type Command, type CommandContext, stringFlag } from '../context.ts'
import { UsageError } from '../output.ts'
import { callDaemon, fetchDaemonBytes } from './node.ts'

interface CallView {
  id: string
  peer: string
  state: string
  outcome: string | null
  reason: string | null
  setupMs: number | null
  seconds: number
  path: string | null
  summary?: { mos: number | null; rttMs: number | null; jitterMs: number | null; lossFraction: number | null } | null
}

const OUTCOME_WORDS: Record<string, string> = {
  'no-answer': 'nobody answered',
  declined: 'declined',
  busy: 'busy',
  cancelled: 'cancelled',
  unavailable: 'no device of theirs could be reached',
  failed: 'the call failed',
  missed: 'missed',
  'answered-elsewhere': 'answered on another device'
}

function secondsFlag(ctx: CommandContext, name: string): number | undefined {
  const raw = stringFlag(ctx, name)
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0 || n > LIMITS.calls.maxSeconds)
    throw new UsageError(`--${name} takes seconds (up to ${LIMITS.calls.maxSeconds})`)
  return n
}

/** --play and --record as absolute paths (the daemon reads and writes them), --seconds. */
function mediaBody(ctx: CommandContext): { play?: string; record?: string; seconds?: number } {
  const play = stringFlag(ctx, 'play')
  const record = stringFlag(ctx, 'record')
  const seconds = secondsFlag(ctx, 'seconds')
  return {
    ...(play === undefined ? {} : { play: resolve(play) }),
    ...(record === undefined ? {} : { record: resolve(record) }),
    ...(seconds === undefined ? {} : { seconds })
  }
}

/** Follows a call until it has ended (its recording written). */
async function untilEnded(ctx: CommandContext, id: string): Promise<CallView> {
  for (;;) {
    const { call } = (await callDaemon(ctx, `/v1/calls/${id}`)) as { call: CallView }
    if (call.state === 'ended') return call
    await new Promise((r) => setTimeout(r, 100))
  }
}

function connectedOrFail(call: CallView): void {
  if (call.outcome === 'completed') return
  const words = OUTCOME_WORDS[call.outcome ?? ''] ?? call.outcome
  throw new ParleyError(
    'CALL_NOT_CONNECTED',
    `the call with ${call.peer} did not connect: ${words}${call.reason ? ` (${call.reason})` : ''}`
  )
}

export const callCommand: Command = {
  path: ['call'],
  usage: 'parley call NAME [--play IN.wav] [--record OUT.wav] [--seconds N]',
  summary: 'a voice call from the command line (plays IN.wav, records the other side into OUT.wav)',
  options: { play: { type: 'string' }, record: { type: 'string' }, seconds: { type: 'string' } },
  positionals: 1,
  async run(ctx) {
    const to = ctx.positionals[0] as string
    const { call } = (await callDaemon(ctx, '/v1/calls', { method: 'POST', body: { to, ...mediaBody(ctx) } })) as { call: CallView }
    const end = await untilEnded(ctx, call.id)
    connectedOrFail(end)
    ctx.out.result(
      { id: end.id, state: end.outcome, setupMs: end.setupMs, seconds: end.seconds, path: end.path, quality: end.summary ?? null },
      `called ${to}: ${end.seconds.toFixed(1)} s${end.setupMs === null ? '' : `, first audio after ${end.setupMs} ms`}${end.path === null ? '' : `, ${end.path}`}`
    )
  }
}

export const answerCommand: Command = {
  path: ['answer'],
  usage: 'parley answer [--from NAME] [--play IN.wav] [--record OUT.wav] [--seconds N] [--timeout S]',
  summary: 'waits for the next incoming call and answers it',
  options: {
    from: { type: 'string' },
    play: { type: 'string' },
    record: { type: 'string' },
    seconds: { type: 'string' },
    timeout: { type: 'string' }
  },
  positionals: 0,
  async run(ctx) {
    const from = stringFlag(ctx, 'from')
    const timeoutMs = Math.round((secondsFlag(ctx, 'timeout') ?? 60) * 1000)
    const body = mediaBody(ctx)
    const { call } = (await callDaemon(ctx, '/v1/calls/next', {
      method: 'POST',
      body: { ...(from === undefined ? {} : { from }), timeoutMs },
      timeoutMs: timeoutMs + 5_000
    })) as { call: CallView }
    await callDaemon(ctx, `/v1/calls/${call.id}/answer`, { method: 'POST', body })
    const end = await untilEnded(ctx, call.id)
    connectedOrFail(end)
    ctx.out.result(
      { id: end.id, state: end.outcome, from: end.peer, seconds: end.seconds, path: end.path, quality: end.summary ?? null },
      `answered ${end.peer}: ${end.seconds.toFixed(1)} s${end.path === null ? '' : `, ${end.path}`}`
    )
  }
}

interface VoicemailView {
  call: string
  from: string
  at: number
  seconds: number
  complete: boolean
}

const VOICEMAIL_USAGE = 'parley voicemail list | leave NAME --play IN.wav | get ID --out OUT.wav'

export const voicemailCommand: Command = {
  path: ['voicemail'],
  usage: VOICEMAIL_USAGE,
  summary: 'voicemail: leave one (up to 3 minutes), list those left for you, save one as a WAV file',
  options: { play: { type: 'string' }, out: { type: 'string' } },
  positionals: [1, 2],
  async run(ctx) {
    const [action, which] = ctx.positionals as [string, string | undefined]
    if (action === 'list' && which === undefined) {
      const { voicemail } = (await callDaemon(ctx, '/v1/voicemail')) as { voicemail: VoicemailView[] }
      ctx.out.result(
        { voicemail },
        voicemail.length === 0
          ? 'no voicemail'
          : voicemail
              .map(
                (v) =>
                  `${new Date(v.at).toISOString().slice(0, 16).replace('T', ' ')}  ${v.from}  ${v.seconds.toFixed(1)} s  ${v.call}${v.complete ? '' : '  (still arriving)'}`
              )
              .join('\n')
      )
    } else if (action === 'leave' && which !== undefined) {
      const play = stringFlag(ctx, 'play')
      if (play === undefined) throw new UsageError(`usage: ${VOICEMAIL_USAGE}`)
      const { voicemail } = (await callDaemon(ctx, '/v1/voicemail', { method: 'POST', body: { to: which, play: resolve(play) } })) as {
        voicemail: { call: string; state: string }
      }
      ctx.out.result(
        voicemail,
        `voicemail for ${which}: ${voicemail.state === 'stored' ? `stored for ${which} (fetched when they come online)` : voicemail.state}`
      )
    } else if (action === 'get' && which !== undefined) {
      const out = stringFlag(ctx, 'out')
      if (out === undefined) throw new UsageError(`usage: ${VOICEMAIL_USAGE}`)
      const bytes = await fetchDaemonBytes(ctx, `/v1/voicemail/${encodeURIComponent(which)}`)
      await writeFile(resolve(out), bytes)
      ctx.out.result({ call: which, out: resolve(out), bytes: bytes.length }, `saved to ${resolve(out)}`)
    } else {
      throw new UsageError(`usage: ${VOICEMAIL_USAGE}`)
    }
  }
}
