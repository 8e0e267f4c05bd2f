import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CallsError, delayImpairment, eModel, G711_PLC, lossImpairment, mosFromR, OPUS } from '../src/index.ts'

describe('eModel (ITU-T G.107, simplified)', () => {
  it('rates a clean, near connection at the top of the narrowband scale (MOS 4.4)', () => {
    const e = eModel({ rttMs: 20, jitterMs: 2, lossFraction: 0 })
    assert.ok(Math.abs(e.r - 93.36) < 0.01, `R ${e.r}`)
    assert.ok(e.mos >= 4.0 && e.mos <= 4.5, `MOS ${e.mos}`)
    assert.ok(Math.abs(e.mos - 4.41) < 0.01, `MOS ${e.mos}`)
    assert.equal(e.idd, 0)
    assert.equal(e.ieEff, 0)
    assert.equal(e.delayMs, 10 + 4 + 26.5)
  })

  it('keeps Opus above MOS 3.6 at 5 % random loss (its concealment), far below without it', () => {
    const opus = eModel({ rttMs: 40, jitterMs: 5, lossFraction: 0.05 })
    assert.ok(opus.mos >= 3.6, `MOS ${opus.mos}`)
    assert.ok(opus.mos < 4.2, `MOS ${opus.mos}`)
    // Ie,eff = 95·5 / (5 + 25.1) = 15.78
    assert.ok(Math.abs(opus.ieEff - 15.78) < 0.01, `Ie,eff ${opus.ieEff}`)
    const noConcealment = eModel({ rttMs: 40, jitterMs: 5, lossFraction: 0.05, codec: { ie: 0, bpl: 4.3 } })
    assert.ok(noConcealment.mos < 2.5, `MOS ${noConcealment.mos}`)
    // Bursty loss hurts more than random loss at the same rate.
    assert.ok(eModel({ lossFraction: 0.05, burstR: 2 }).mos < eModel({ lossFraction: 0.05 }).mos)
  })

  it('rates huge delays low, and falls steadily with delay', () => {
    const huge = eModel({ oneWayDelayMs: 1_000, lossFraction: 0 })
    assert.ok(huge.mos < 3, `MOS ${huge.mos} at 1 s one way`)
    assert.ok(eModel({ oneWayDelayMs: 2_000, lossFraction: 0.05 }).mos < 2.5)
    let previous = Number.POSITIVE_INFINITY
    for (let d = 0; d <= 1_500; d += 50) {
      const { mos } = eModel({ oneWayDelayMs: d })
      assert.ok(mos <= previous + 1e-12, `MOS rose at ${d} ms`)
      previous = mos
    }
    // Below 100 ms mouth to ear (G.107's mT) delay costs nothing.
    assert.equal(delayImpairment(100), 0)
    assert.ok(delayImpairment(200) > 3 && delayImpairment(200) < 6, `Idd(200) ${delayImpairment(200)}`)
    assert.ok(delayImpairment(400) > 15 && delayImpairment(400) < 25, `Idd(400) ${delayImpairment(400)}`)
  })

  it('counts the jitter buffer: measured, or twice the jitter', () => {
    assert.equal(eModel({ rttMs: 100, jitterMs: 30 }).delayMs, 50 + 60 + 26.5)
    assert.equal(eModel({ rttMs: 100, jitterMs: 30, jitterBufferMs: 80 }).delayMs, 50 + 80 + 26.5)
    assert.equal(eModel({ rttMs: 100, oneWayDelayMs: 70, codecDelayMs: 0 }).delayMs, 70)
  })

  it('maps R to MOS as G.107 Annex B does', () => {
    assert.equal(mosFromR(-5), 1)
    assert.equal(mosFromR(0), 1)
    assert.equal(mosFromR(100), 4.5)
    assert.equal(mosFromR(120), 4.5)
    assert.ok(Math.abs(mosFromR(50) - 2.58) < 0.01)
    assert.ok(Math.abs(mosFromR(70) - 3.6) < 0.01)
    assert.ok(Math.abs(mosFromR(80) - 4.02) < 0.01)
    assert.ok(Math.abs(mosFromR(93.2) - 4.41) < 0.01)
    assert.ok(mosFromR(3) >= 1)
  })

  it('Ie,eff: the codec impairment without loss, 95 at total loss', () => {
    assert.equal(lossImpairment(0, OPUS), 0)
    assert.equal(lossImpairment(0, { ie: 11, bpl: 19 }), 11)
    assert.ok(Math.abs(lossImpairment(100, G711_PLC) - 95 * (100 / 125.1)) < 1e-9)
    assert.ok(eModel({ lossFraction: 1 }).mos < 1.5)
  })

  it('refuses figures out of range', () => {
    for (const input of [{ rttMs: -1 }, { lossFraction: 1.5 }, { jitterMs: Number.NaN }, { burstR: 0.5 }, { advantage: 30 }]) {
      assert.throws(
        () => eModel(input),
        (e: unknown) => e instanceof CallsError && e.code === 'INVALID_ARGUMENT'
      )
    }
  })
})
