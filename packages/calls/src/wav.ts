import { CallsError } from './errors.ts'
import { LIMITS } from './limits.ts'
import { downmix, resample } from './resample.ts'

const AUDIO = LIMITS.calls.audio

/** 16-bit PCM audio: `samples` interleaved when `channels` is 2. */
export interface PcmAudio {
  sampleRate: number
  channels: number
  samples: Int16Array
}

export interface WavOptions {
  /** Longer audio is refused as TOO_LARGE. Default `LIMITS.calls.audio.maxDurationMs` (3 minutes). */
  maxDurationMs?: number
}

const WAVE_FORMAT_PCM = 0x0001
const WAVE_FORMAT_EXTENSIBLE = 0xfffe
/** The tail of the KSDATAFORMAT_SUBTYPE_PCM GUID (its first two bytes are the format code, 0x0001). */
const PCM_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]

function malformed(message: string): never {
  throw new CallsError('MALFORMED', `not a valid WAV file: ${message}`)
}

function unsupported(message: string): never {
  throw new CallsError('UNSUPPORTED', `unsupported WAV file: ${message}`)
}

function fourcc(view: DataView, at: number): string {
  return String.fromCharCode(view.getUint8(at), view.getUint8(at + 1), view.getUint8(at + 2), view.getUint8(at + 3))
}

function durationMs(frames: number, sampleRate: number): number {
  return (frames * 1000) / sampleRate
}

function checkDuration(frames: number, sampleRate: number, options: WavOptions): void {
  const max = options.maxDurationMs ?? AUDIO.maxDurationMs
  const ms = durationMs(frames, sampleRate)
  if (ms > max) throw new CallsError('TOO_LARGE', `${(ms / 1000).toFixed(1)} s of audio, more than the ${max / 1000} s allowed`)
}

interface Format {
  channels: number
  sampleRate: number
}

function parseFormat(view: DataView, at: number, size: number): Format {
  if (size < 16) malformed(`a 'fmt ' chunk of ${size} bytes (at least 16)`)
  const tag = view.getUint16(at, true)
  const channels = view.getUint16(at + 2, true)
  const sampleRate = view.getUint32(at + 4, true)
  const byteRate = view.getUint32(at + 8, true)
  const blockAlign = view.getUint16(at + 12, true)
  const bits = view.getUint16(at + 14, true)
  if (channels === 0) malformed('no channels')
  if (sampleRate === 0) malformed('a sample rate of 0')
  if (bits === 0 || bits % 8 !== 0) malformed(`${bits} bits per sample`)
  if (blockAlign !== channels * (bits / 8)) malformed(`a block of ${blockAlign} bytes for ${channels} channels of ${bits} bits`)
  if (byteRate !== sampleRate * blockAlign) malformed(`${byteRate} bytes per second for ${sampleRate} blocks of ${blockAlign} bytes`)
  if (tag === WAVE_FORMAT_EXTENSIBLE) {
    if (size < 40) malformed(`an extensible 'fmt ' chunk of ${size} bytes (at least 40)`)
    const extra = view.getUint16(at + 16, true)
    if (extra < 22) malformed(`an extensible format with ${extra} extra bytes (at least 22)`)
    const validBits = view.getUint16(at + 18, true)
    const subformat = view.getUint16(at + 24, true)
    const pcm = subformat === WAVE_FORMAT_PCM && PCM_GUID_TAIL.every((b, i) => view.getUint8(at + 26 + i) === b)
    if (!pcm) unsupported('an extensible format other than integer PCM')
    if (validBits !== bits) unsupported(`${validBits} valid bits in ${bits}-bit samples`)
  } else if (tag !== WAVE_FORMAT_PCM) {
    unsupported(`format ${tag} (only integer PCM, format 1)`)
  }
  if (bits !== 16) unsupported(`${bits}-bit samples (only 16-bit)`)
  if (channels > AUDIO.wavMaxChannels) unsupported(`${channels} channels (mono or stereo)`)
  if (sampleRate < AUDIO.wavMinSampleRate || sampleRate > AUDIO.wavMaxSampleRate) {
    unsupported(`a sample rate of ${sampleRate} Hz (${AUDIO.wavMinSampleRate} to ${AUDIO.wavMaxSampleRate})`)
  }
  return { channels, sampleRate }
}

/**
 * Reads a RIFF/WAVE file of 16-bit integer PCM, mono or stereo, 8 to 96 kHz
 * (format 1, or WAVE_FORMAT_EXTENSIBLE with the PCM subformat). Every header
 * field is checked against the others and against the file's length: a file
 * that is not such a WAV is MALFORMED, a valid WAV in another format
 * UNSUPPORTED, a longer one than allowed TOO_LARGE (all `CallsError`).
 * Chunks other than `fmt ` and `data` are skipped; bytes after the RIFF chunk
 * are ignored.
 */
export function readWav(bytes: Uint8Array, options: WavOptions = {}): PcmAudio {
  if (bytes.length > AUDIO.wavMaxBytes)
    throw new CallsError('TOO_LARGE', `a WAV file of ${bytes.length} bytes (at most ${AUDIO.wavMaxBytes})`)
  if (bytes.length < 12) malformed(`${bytes.length} bytes, shorter than a RIFF header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (fourcc(view, 0) !== 'RIFF') malformed('no RIFF header')
  if (fourcc(view, 8) !== 'WAVE') malformed('a RIFF file but not WAVE')
  const riffSize = view.getUint32(4, true)
  if (riffSize < 4) malformed(`a RIFF size of ${riffSize}`)
  if (riffSize + 8 > bytes.length) malformed(`truncated: the header says ${riffSize + 8} bytes, the file has ${bytes.length}`)
  const end = riffSize + 8

  let format: Format | undefined
  let data: { at: number; size: number } | undefined
  let otherBytes = 0
  let at = 12
  while (at < end) {
    if (at + 8 > end) malformed(`a chunk header cut off at byte ${at}`)
    const id = fourcc(view, at)
    const size = view.getUint32(at + 4, true)
    const body = at + 8
    if (body + size > end) malformed(`the '${id}' chunk runs ${body + size - end} bytes past the end of the RIFF chunk`)
    if (id === 'fmt ') {
      if (format !== undefined) malformed("two 'fmt ' chunks")
      format = parseFormat(view, body, size)
    } else if (id === 'data') {
      if (format === undefined) malformed("a 'data' chunk before the 'fmt ' chunk")
      if (data !== undefined) malformed("two 'data' chunks")
      data = { at: body, size }
    } else {
      otherBytes += size
      if (otherBytes > AUDIO.wavMaxOtherChunkBytes) {
        throw new CallsError('TOO_LARGE', `more than ${AUDIO.wavMaxOtherChunkBytes} bytes of chunks other than audio`)
      }
    }
    // Chunks are padded to an even length; a missing pad byte on the last chunk is common and harmless.
    at = body + size + (size % 2)
  }
  if (format === undefined) malformed("no 'fmt ' chunk")
  if (data === undefined) malformed("no 'data' chunk")
  const blockAlign = format.channels * 2
  if (data.size % blockAlign !== 0) malformed(`${data.size} bytes of audio, not a whole number of ${blockAlign}-byte frames`)
  const frames = data.size / blockAlign
  checkDuration(frames, format.sampleRate, options)
  const samples = new Int16Array(frames * format.channels)
  for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(data.at + 2 * i, true)
  return { sampleRate: format.sampleRate, channels: format.channels, samples }
}

/** A canonical 44-byte-header WAV file of 16-bit PCM (`samples` interleaved when `channels` is 2). */
export function writeWav(audio: PcmAudio, options: WavOptions = {}): Uint8Array {
  const { sampleRate, channels, samples } = audio
  if (!Number.isInteger(sampleRate) || sampleRate < AUDIO.wavMinSampleRate || sampleRate > AUDIO.wavMaxSampleRate) {
    throw new CallsError('INVALID_ARGUMENT', `a sample rate of ${sampleRate} Hz (${AUDIO.wavMinSampleRate} to ${AUDIO.wavMaxSampleRate})`)
  }
  if (channels !== 1 && channels !== 2) throw new CallsError('INVALID_ARGUMENT', `${channels} channels (mono or stereo)`)
  if (samples.length % channels !== 0)
    throw new CallsError('INVALID_ARGUMENT', `${samples.length} samples are not whole frames of ${channels} channels`)
  checkDuration(samples.length / channels, sampleRate, options)
  const dataBytes = samples.length * 2
  const bytes = new Uint8Array(44 + dataBytes)
  const view = new DataView(bytes.buffer)
  const ascii = (at: number, s: string): void => {
    for (let i = 0; i < 4; i++) view.setUint8(at + i, s.charCodeAt(i))
  }
  ascii(0, 'RIFF')
  view.setUint32(4, 36 + dataBytes, true)
  ascii(8, 'WAVE')
  ascii(12, 'fmt ')
  view.setUint32(16, 16, true)
  view.setUint16(20, WAVE_FORMAT_PCM, true)
  view.setUint16(22, channels, true)
  view.setUint32(24, sampleRate, true)
  view.setUint32(28, sampleRate * channels * 2, true)
  view.setUint16(32, channels * 2, true)
  view.setUint16(34, 16, true)
  ascii(36, 'data')
  view.setUint32(40, dataBytes, true)
  for (let i = 0; i < samples.length; i++) view.setInt16(44 + 2 * i, samples[i]!, true)
  return bytes
}

/** Any readable WAV file as what calls send: mono, 48 kHz (`readWav`, then downmix and resample). */
export function readWavForCall(bytes: Uint8Array, options: WavOptions = {}): Int16Array {
  const audio = readWav(bytes, options)
  const mono = downmix(audio.samples, audio.channels)
  return audio.sampleRate === AUDIO.sampleRate ? mono : resample(mono, audio.sampleRate, AUDIO.sampleRate)
}
