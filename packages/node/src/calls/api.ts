import { readFile, stat, writeFile } from 'node:fs/promises'
import { isAbsolute } from 'node:path'
import { readWavForCall, writeWav } from '@parley/calls'
import { isValidName, LIMITS, ParleyError } from '@parley/protocol'
import type { FastifyInstance } from 'fastify'
import type { CallMediaOptions, CallService, CallView } from './service.ts'

/**
 * The calls part of the local API. A call placed or answered here can play a
 * WAV file into the call and record the other side into one (headless use:
 * the command line, bots, tests); the files are the daemon's user's, named by
 * absolute paths. The web client does its media in the browser and uses the
 * same routes without them.
 */
export function callRoutes(calls: CallService): (app: FastifyInstance) => void {
  /** Recordings being written, by call: a call's view says `ended` only once its recording is on disk. */
  const saving = new Map<string, Promise<void>>()
  const media = {
    play: { type: 'string', minLength: 1, maxLength: 4096 },
    record: { type: 'string', minLength: 1, maxLength: 4096 },
    seconds: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.calls.maxSeconds },
    // 'browser': the web client brings its own media next (POST /v1/calls/:id/media); 'daemon' (default): files or silence.
    media: { type: 'string', enum: ['browser', 'daemon'] }
  }
  const idParam = { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{16,64}$' } } }

  async function mediaOptions(body: { play?: string; record?: string; seconds?: number }): Promise<CallMediaOptions> {
    for (const path of [body.play, body.record]) {
      if (path !== undefined && !isAbsolute(path)) throw new ParleyError('INVALID_REQUEST', `${path}: give an absolute path`)
    }
    const options: CallMediaOptions = {}
    if (body.seconds !== undefined) options.seconds = body.seconds
    if (body.play !== undefined) {
      let bytes: Uint8Array
      try {
        const { size } = await stat(body.play)
        if (size > LIMITS.calls.audio.wavMaxBytes)
          throw new ParleyError('PAYLOAD_TOO_LARGE', `${body.play} is larger than a call plays (${LIMITS.calls.audio.wavMaxBytes} bytes)`)
        bytes = await readFile(body.play)
      } catch (err) {
        if (err instanceof ParleyError) throw err
        throw new ParleyError('NOT_FOUND', `cannot read ${body.play}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      }
      try {
        options.play = readWavForCall(bytes)
      } catch (err) {
        throw new ParleyError('INVALID_REQUEST', `${body.play} is not audio a call can play: ${(err as Error).message}`)
      }
    }
    return options
  }

  function keep(view: CallView, record: string | undefined): void {
    if (record === undefined) return
    saving.set(
      view.id,
      calls.ended(view.id).then(async () => {
        const samples = calls.recording(view.id) ?? new Int16Array(0)
        await writeFile(record, writeWav({ samples, sampleRate: LIMITS.calls.audio.sampleRate, channels: 1 }))
      })
    )
    while (saving.size > 64) saving.delete(saving.keys().next().value as string)
  }

  async function viewOf(id: string): Promise<CallView> {
    const view = calls.get(id)
    if (view === undefined) throw new ParleyError('NOT_FOUND', `no call ${id}`)
    if (view.state === 'ended') {
      await saving.get(id)?.catch((err: unknown) => {
        throw new ParleyError('INTERNAL', `the recording could not be written: ${(err as Error).message}`)
      })
    }
    return view
  }

  return (app) => {
    app.get('/v1/calls', async (request) => {
      const raw = Number((request.query as { limit?: string }).limit ?? 50)
      const limit = Number.isInteger(raw) && raw > 0 ? Math.min(raw, LIMITS.calls.historyMax) : 50
      return { calls: calls.calls(), history: calls.history(limit) }
    })
    app.post(
      '/v1/calls',
      {
        schema: {
          body: {
            type: 'object',
            required: ['to'],
            additionalProperties: false,
            properties: {
              to: { type: 'string', minLength: LIMITS.name.minLength, maxLength: LIMITS.name.maxLength },
              // A call in progress here: the new one joins it as a conference this device hosts.
              conference: { type: 'string', pattern: '^[A-Za-z0-9_-]{16,64}$' },
              ...media
            }
          }
        }
      },
      async (request) => {
        const body = request.body as { to: string; conference?: string; play?: string; record?: string; seconds?: number }
        if (!isValidName(body.to)) throw new ParleyError('INVALID_NAME', `${body.to} is not a user name`)
        const options = await mediaOptions(body)
        if (body.conference !== undefined) options.conference = body.conference
        const view = await calls.call(body.to, options)
        keep(view, body.record)
        return { call: view }
      }
    )
    app.post(
      '/v1/calls/next',
      {
        schema: {
          body: {
            type: 'object',
            additionalProperties: false,
            properties: {
              from: { type: 'string', minLength: LIMITS.name.minLength, maxLength: LIMITS.name.maxLength },
              timeoutMs: { type: 'integer', minimum: 0, maximum: LIMITS.calls.maxSeconds * 1000 }
            }
          }
        }
      },
      async (request) => {
        const body = request.body as { from?: string; timeoutMs?: number }
        // Given up when the time is over, or when the client that asked goes away.
        const gone = new AbortController()
        const onClose = (): void => gone.abort(new Error('the client went away'))
        request.socket.once('close', onClose)
        try {
          const signal = AbortSignal.any([AbortSignal.timeout(body.timeoutMs ?? LIMITS.calls.noAnswerMs), gone.signal])
          return { call: await calls.nextIncoming({ ...(body.from === undefined ? {} : { from: body.from }), signal }) }
        } finally {
          request.socket.off('close', onClose)
        }
      }
    )
    app.get('/v1/calls/:id', { schema: { params: idParam } }, async (request) => ({
      call: await viewOf((request.params as { id: string }).id)
    }))
    app.post(
      '/v1/calls/:id/answer',
      { schema: { params: idParam, body: { type: 'object', additionalProperties: false, properties: media } } },
      async (request) => {
        const body = (request.body ?? {}) as { play?: string; record?: string; seconds?: number }
        const options = await mediaOptions(body)
        const view = await calls.answer((request.params as { id: string }).id, options)
        keep(view, body.record)
        return { call: view }
      }
    )
    app.post('/v1/calls/:id/decline', { schema: { params: idParam } }, async (request) => {
      await calls.decline((request.params as { id: string }).id)
      return { declined: true }
    })
    // The web client's media leg: its SDP offer in, the daemon's answer out (see BrowserLeg).
    app.post(
      '/v1/calls/:id/media',
      {
        schema: {
          params: idParam,
          body: {
            type: 'object',
            required: ['sdp'],
            additionalProperties: false,
            properties: { sdp: { type: 'string', minLength: 1, maxLength: LIMITS.calls.sdpMaxBytes } }
          }
        }
      },
      async (request) => await calls.attachBrowser((request.params as { id: string }).id, (request.body as { sdp: string }).sdp)
    )
    app.post('/v1/calls/:id/hangup', { schema: { params: idParam } }, async (request) => ({
      call: await calls.hangUp((request.params as { id: string }).id)
    }))
    // Voicemail: left after a call that did not connect (or for someone offline), listed and played by the callee.
    app.post(
      '/v1/voicemail',
      {
        schema: {
          body: {
            type: 'object',
            required: ['to', 'play'],
            additionalProperties: false,
            properties: {
              to: { type: 'string', minLength: LIMITS.name.minLength, maxLength: LIMITS.name.maxLength },
              call: { type: 'string', pattern: '^[A-Za-z0-9_-]{16,64}$' },
              play: media.play
            }
          }
        }
      },
      async (request) => {
        const body = request.body as { to: string; call?: string; play: string }
        if (!isValidName(body.to)) throw new ParleyError('INVALID_NAME', `${body.to} is not a user name`)
        const options = await mediaOptions({ play: body.play })
        return { voicemail: await calls.leaveVoicemail(body.to, options.play as Int16Array, body.call) }
      }
    )
    app.get('/v1/voicemail', async () => ({ voicemail: calls.voicemails() }))
    app.get('/v1/voicemail/:id', { schema: { params: idParam } }, async (request, reply) => {
      const audio = calls.voicemailAudio((request.params as { id: string }).id)
      if (audio === undefined) throw new ParleyError('NOT_FOUND', 'no such voicemail here (or not all of it yet)')
      return reply.type('audio/wav').send(Buffer.from(writeWav({ samples: audio, sampleRate: LIMITS.calls.audio.sampleRate, channels: 1 })))
    })
    app.put(
      '/v1/calls/:id/video',
      {
        schema: {
          params: idParam,
          body: {
            type: 'object',
            additionalProperties: false,
            minProperties: 1,
            properties: { camera: { type: 'boolean' }, screen: { type: 'boolean' } }
          }
        }
      },
      async (request) => {
        const id = (request.params as { id: string }).id
        const body = request.body as { camera?: boolean; screen?: boolean }
        if (body.camera !== undefined) await calls.video(id, 'camera', body.camera)
        if (body.screen !== undefined) await calls.video(id, 'screen', body.screen)
        return { call: calls.get(id) }
      }
    )
    app.put(
      '/v1/calls/:id/mute',
      {
        schema: {
          params: idParam,
          body: { type: 'object', required: ['muted'], additionalProperties: false, properties: { muted: { type: 'boolean' } } }
        }
      },
      async (request) => ({
        call: await calls.mute((request.params as { id: string }).id, (request.body as { muted: boolean }).muted)
      })
    )
    app.put(
      '/v1/calls/:id/hold',
      {
        schema: {
          params: idParam,
          body: { type: 'object', required: ['held'], additionalProperties: false, properties: { held: { type: 'boolean' } } }
        }
      },
      async (request) => ({
        call: await calls.hold((request.params as { id: string }).id, (request.body as { held: boolean }).held)
      })
    )
  }
}
