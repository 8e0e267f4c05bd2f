import { CallsError } from './errors.ts'

/**
 * IMA ADPCM (the IMA/DVI 4-bit scheme): 16-bit samples as 4-bit codes, a
 * quarter of the size, with a quality speech keeps well at 16 kHz (64 kbit/s).
 * For voicemail, which travels as sealed chat envelopes through the
 * mailboxes: three minutes are 1.44 MB instead of 5.8 MB. Each block starts
 * with its own predictor and step index (4 bytes: int16 LE, index, 0), so a
 * block decodes alone; two codes per byte, low nibble first.
 */

const INDEX_TABLE = [-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8]
const STEP_TABLE = [
  7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173,
  190, 209, 230, 253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066,
  2272, 2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442, 11487, 12635, 13899, 15289, 16818,
  18500, 20350, 22385, 24623, 27086, 29794, 32767
]

/** Samples per block (an even number): one header of 4 bytes, then half a byte per sample. */
export const ADPCM_BLOCK_SAMPLES = 2048
const BLOCK_BYTES = 4 + ADPCM_BLOCK_SAMPLES / 2

const clamp16 = (v: number): number => Math.min(32767, Math.max(-32768, v))

/** Encodes 16-bit samples (any count; the last block is padded with silence). */
export function encodeAdpcm(samples: Int16Array): Uint8Array {
  const blocks = Math.ceil(samples.length / ADPCM_BLOCK_SAMPLES)
  const out = new Uint8Array(blocks * BLOCK_BYTES)
  let predictor = 0
  let index = 0
  for (let b = 0; b < blocks; b++) {
    const base = b * BLOCK_BYTES
    const first = b * ADPCM_BLOCK_SAMPLES
    predictor = samples[first] ?? 0
    out[base] = predictor & 0xff
    out[base + 1] = (predictor >> 8) & 0xff
    out[base + 2] = index
    out[base + 3] = 0
    for (let i = 0; i < ADPCM_BLOCK_SAMPLES; i++) {
      const sample = samples[first + i] ?? 0
      const step = STEP_TABLE[index] as number
      let diff = sample - predictor
      let code = 0
      if (diff < 0) {
        code = 8
        diff = -diff
      }
      let delta = step >> 3
      if (diff >= step) {
        code |= 4
        diff -= step
        delta += step
      }
      if (diff >= step >> 1) {
        code |= 2
        diff -= step >> 1
        delta += step >> 1
      }
      if (diff >= step >> 2) {
        code |= 1
        delta += step >> 2
      }
      predictor = clamp16(code & 8 ? predictor - delta : predictor + delta)
      index = Math.min(88, Math.max(0, index + (INDEX_TABLE[code] as number)))
      const at = base + 4 + (i >> 1)
      out[at] = (out[at] as number) | (i & 1 ? code << 4 : code)
    }
  }
  return out
}

/** Decodes what `encodeAdpcm` made: `samples` of them (the padding is dropped). */
export function decodeAdpcm(bytes: Uint8Array, samples: number): Int16Array {
  if (bytes.length % BLOCK_BYTES !== 0) throw new CallsError('MALFORMED', `ADPCM data is whole blocks of ${BLOCK_BYTES} bytes`)
  const blocks = bytes.length / BLOCK_BYTES
  if (!Number.isSafeInteger(samples) || samples < 0 || samples > blocks * ADPCM_BLOCK_SAMPLES)
    throw new CallsError('MALFORMED', `${samples} samples do not fit in ${blocks} ADPCM blocks`)
  const out = new Int16Array(samples)
  for (let b = 0; b < blocks; b++) {
    const base = b * BLOCK_BYTES
    let predictor = (((bytes[base] as number) | ((bytes[base + 1] as number) << 8)) << 16) >> 16
    let index = bytes[base + 2] as number
    if (index > 88) throw new CallsError('MALFORMED', `an ADPCM block with step index ${index}`)
    for (let i = 0; i < ADPCM_BLOCK_SAMPLES; i++) {
      const at = b * ADPCM_BLOCK_SAMPLES + i
      if (at >= samples) return out
      const byte = bytes[base + 4 + (i >> 1)] as number
      const code = i & 1 ? byte >> 4 : byte & 0x0f
      const step = STEP_TABLE[index] as number
      let delta = step >> 3
      if (code & 4) delta += step
      if (code & 2) delta += step >> 1
      if (code & 1) delta += step >> 2
      predictor = clamp16(code & 8 ? predictor - delta : predictor + delta)
      index = Math.min(88, Math.max(0, index + (INDEX_TABLE[code] as number)))
      out[at] = predictor
    }
  }
  return out
}
