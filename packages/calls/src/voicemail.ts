import { LIMITS } from '@parley/protocol'
import { ADPCM_BLOCK_SAMPLES, decodeAdpcm, encodeAdpcm } from './adpcm.ts'
import { CallsError } from './errors.ts'
import { resample } from './resample.ts'

/** The rate voicemail is kept at: wideband speech. */
export const VOICEMAIL_RATE = 16_000
/** ADPCM bytes per block (a 4-byte header and half a byte per sample). */
const BLOCK_BYTES = 4 + ADPCM_BLOCK_SAMPLES / 2

export interface VoicemailPart {
  /** Samples (at VOICEMAIL_RATE) in this part. */
  samples: number
  /** IMA ADPCM, whole blocks. */
  data: Uint8Array
}

/**
 * A voicemail from call audio (48 kHz mono): 16 kHz IMA ADPCM in parts of at
 * most LIMITS.messaging.voicemailPartBytes (whole blocks each), at most
 * LIMITS.calls.audio.maxDurationMs long.
 */
export function encodeVoicemail(samples48k: Int16Array): { seconds: number; rate: number; parts: VoicemailPart[] } {
  const maxSamples = (LIMITS.calls.audio.maxDurationMs / 1000) * LIMITS.calls.audio.sampleRate
  if (samples48k.length === 0) throw new CallsError('INVALID_ARGUMENT', 'a voicemail needs some audio')
  if (samples48k.length > maxSamples)
    throw new CallsError('TOO_LARGE', `a voicemail is at most ${LIMITS.calls.audio.maxDurationMs / 60_000} minutes`)
  const pcm = resample(samples48k, LIMITS.calls.audio.sampleRate, VOICEMAIL_RATE)
  const blocksPerPart = Math.floor(LIMITS.messaging.voicemailPartBytes / BLOCK_BYTES)
  const samplesPerPart = blocksPerPart * ADPCM_BLOCK_SAMPLES
  const parts: VoicemailPart[] = []
  for (let at = 0; at < pcm.length; at += samplesPerPart) {
    const chunk = pcm.subarray(at, Math.min(pcm.length, at + samplesPerPart))
    parts.push({ samples: chunk.length, data: encodeAdpcm(chunk) })
  }
  if (parts.length > LIMITS.messaging.voicemailMaxParts) throw new CallsError('TOO_LARGE', 'the voicemail does not fit its parts')
  return { seconds: samples48k.length / LIMITS.calls.audio.sampleRate, rate: VOICEMAIL_RATE, parts }
}

/** The audio of a voicemail (48 kHz mono) from its parts, in order. */
export function decodeVoicemail(parts: VoicemailPart[], rate: number = VOICEMAIL_RATE): Int16Array {
  const pieces = parts.map((p) => decodeAdpcm(p.data, p.samples))
  const total = pieces.reduce((n, p) => n + p.length, 0)
  const pcm = new Int16Array(total)
  let at = 0
  for (const piece of pieces) {
    pcm.set(piece, at)
    at += piece.length
  }
  return resample(pcm, rate, LIMITS.calls.audio.sampleRate)
}
