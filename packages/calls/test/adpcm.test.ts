import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { ADPCM_BLOCK_SAMPLES, CallsError, compareAudio, decodeAdpcm, decodeVoicemail, encodeAdpcm, encodeVoicemail } from '../src/index.ts'
import { speech } from './support.ts'

describe('IMA ADPCM and voicemail', () => {
  it('round-trips speech at a quarter of the size, close enough that the comparison passes', async () => {
    const words = await speech('Leave a message after the tone, and I will call you back.')
    const { parts, seconds } = encodeVoicemail(words)
    assert.ok(Math.abs(seconds - words.length / 48_000) < 0.01)
    const bytes = parts.reduce((n, p) => n + p.data.length, 0)
    assert.ok(bytes < (words.length / 3) * 2 * 0.26, `${bytes} bytes for ${words.length / 3} 16 kHz samples`)
    const back = decodeVoicemail(parts)
    const comparison = compareAudio(words, back)
    assert.ok(comparison.pass && comparison.similarity > 0.9, JSON.stringify(comparison))
  })

  it('keeps every block independent and exact in length; refuses broken data and over-long audio', () => {
    const samples = Int16Array.from({ length: ADPCM_BLOCK_SAMPLES * 2 + 100 }, (_, i) => Math.round(10_000 * Math.sin(i / 7)))
    const encoded = encodeAdpcm(samples)
    assert.equal(decodeAdpcm(encoded, samples.length).length, samples.length)
    assert.throws(() => decodeAdpcm(encoded.subarray(1), samples.length), CallsError)
    assert.throws(() => decodeAdpcm(encoded, samples.length + ADPCM_BLOCK_SAMPLES), CallsError)
    assert.throws(
      () => encodeVoicemail(new Int16Array(48_000 * 181)),
      (e: unknown) => e instanceof CallsError && e.code === 'TOO_LARGE'
    )
    assert.throws(() => encodeVoicemail(new Int16Array(0)), CallsError)
  })

  it('decodes any bytes of whole blocks without throwing anything but CallsError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 3 * 1028 }), fc.nat(8000), (bytes, n) => {
        try {
          decodeAdpcm(bytes, n)
        } catch (err) {
          assert.ok(err instanceof CallsError)
        }
      }),
      { numRuns: 2_000 }
    )
  })
})
