import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { LIMITS } from '@parley/protocol'
import { percentile, testNetwork } from '@parley/testing'
import type { ParleyNode } from '../src/index.ts'
import { buildSimulation, closestSupernodes, type SimClient, type Simulation } from './simulation-network.ts'

/**
 * Issue 3, tests 2 and 4: a 300-node overlay (30 supernodes, 270 clients) in
 * one process on libp2p's memory transport. Every client publishes its
 * record, 1,000 random lookups find the right device; then 30% of the
 * supernodes go away while lookups keep running: at least 99% of them still
 * succeed within 3 s, and every client that lost a supernode is back to 3
 * within 2 s (SupernodeLinks refills from its host cache).
 */
const NODES = 300
const SUPERNODES = 30
const LOOKUPS = 1000
const KILLED = Math.round(SUPERNODES * 0.3)
/** The supernodes go one after another, this far apart: churn, not a single blackout. */
const KILL_EVERY_MS = 1_500
/** Lookups go on all along, at a steady rate: this many lookers, each starting one this often. */
const CHURN_LOOKERS = 1
const LOOK_EVERY_MS = 100
const LOOKUP_LIMIT_MS = 3_000
const REFILL_LIMIT_MS = 2_000

const replicas = LIMITS.overlay.recordReplicas
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))
const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)] as T
const round = (n: number): number => Math.round(n * 10) / 10

describe(`a ${NODES}-node overlay in one process (memory transport)`, () => {
  let sim: Simulation

  before(
    async () => {
      sim = await buildSimulation(testNetwork(), { nodes: NODES, supernodes: SUPERNODES })
    },
    { timeout: 240_000 }
  )
  after(async () => {
    await sim?.stop()
  })

  it('builds: every client holds 3 supernodes and a host cache of more', (t) => {
    t.diagnostic(`${NODES} nodes (${SUPERNODES} supernodes) built in ${Math.round(sim.buildMs)} ms`)
    assert.equal(sim.clients.length, NODES - SUPERNODES)
    for (const c of sim.clients) {
      assert.equal(c.links.linked.length, 3, `${c.name} holds ${c.links.linked.length} supernodes`)
      assert.ok(c.cache.size > 3, `${c.name}'s host cache has ${c.cache.size} supernodes`)
    }
  })

  it('publishes every client on the 3 supernodes closest to its name', async (t) => {
    const started = performance.now()
    const results = await Promise.all(
      sim.clients.map(async (c) => await c.node.records.publish({ addrs: c.node.addresses, presence: 'online' }))
    )
    t.diagnostic(`${sim.clients.length} publishes in ${Math.round(performance.now() - started)} ms`)
    sim.clients.forEach((c, i) => {
      assert.deepEqual(
        [...(results[i]?.supernodes ?? [])].sort(),
        closestSupernodes(c.name, sim.supernodes, replicas).sort(),
        `${c.name} went to the closest supernodes`
      )
    })
    const stored = sim.supernodes.reduce((sum, s) => sum + s.records.store.size, 0)
    assert.equal(stored, sim.clients.length * replicas, 'three replicas each, no more')
  })

  it(`finds the right device in ${LOOKUPS} random lookups`, async (t) => {
    const times: number[] = []
    const hops: number[] = []
    for (let i = 0; i < LOOKUPS; i++) {
      const asker = pick(sim.clients)
      const target = pick(sim.clients)
      const started = performance.now()
      const found = await asker.node.records.whois(target.name)
      times.push(performance.now() - started)
      hops.push(found.hops)
      assert.deepEqual(
        found.devices.map((d) => d.peerId),
        [target.node.peerId],
        `${asker.name} looking up ${target.name}`
      )
    }
    times.sort((a, b) => a - b)
    const histogram = new Map<number, number>()
    for (const h of hops) histogram.set(h, (histogram.get(h) ?? 0) + 1)
    t.diagnostic(
      `whois: p50 ${round(percentile(times, 50))} ms, p99 ${round(percentile(times, 99))} ms, max ${round(times.at(-1) ?? 0)} ms; ` +
        `hops mean ${round(hops.reduce((a, b) => a + b, 0) / hops.length)} (${[...histogram]
          .sort((a, b) => a[0] - b[0])
          .map(([h, n]) => `${h}: ${n}`)
          .join(', ')})`
    )
  })

  it(`keeps finding users while ${KILLED} of ${SUPERNODES} supernodes go away`, async (t) => {
    const outcomes: Array<{ ok: boolean; ms: number }> = []
    let running = true
    const look = async (): Promise<void> => {
      while (running) {
        const alive = sim.clients
        const asker = pick(alive)
        const target = pick(alive)
        const started = performance.now()
        let ok = false
        try {
          const found = await asker.node.records.whois(target.name, { signal: AbortSignal.timeout(LOOKUP_LIMIT_MS) })
          ok = found.devices.some((d) => d.peerId === target.node.peerId)
        } catch {
          // Timed out: a failure.
        }
        const ms = performance.now() - started
        outcomes.push({ ok: ok && ms <= LOOKUP_LIMIT_MS, ms })
        await sleep(Math.max(0, LOOK_EVERY_MS - ms))
      }
    }
    // Each client's links: when one goes, and when it is back to its target.
    const lost = new Map<SimClient, number>()
    const refills: Array<{ client: SimClient; ms: number }> = []
    const watchers = sim.clients.map((client) => {
      // Timed from its latest loss (a replacement may be the next supernode to go).
      const onUnlinked = (): void => {
        lost.set(client, performance.now())
      }
      const onLinked = (): void => {
        const since = lost.get(client)
        if (since === undefined || client.links.linked.length < client.links.target) return
        refills.push({ client, ms: performance.now() - since })
        lost.delete(client)
      }
      client.links.addEventListener('unlinked', onUnlinked)
      client.links.addEventListener('linked', onLinked)
      return () => {
        client.links.removeEventListener('unlinked', onUnlinked)
        client.links.removeEventListener('linked', onLinked)
      }
    })
    const lookers = Array.from({ length: CHURN_LOOKERS }, look)
    await sleep(1_000)
    const victims: ParleyNode[] = [...sim.supernodes].sort(() => Math.random() - 0.5).slice(0, KILLED)
    const killedAt = performance.now()
    for (const victim of victims) {
      await sim.kill(victim)
      await sleep(KILL_EVERY_MS)
    }
    // Lookups go on a while after the last one went.
    await sleep(3_000)
    running = false
    await Promise.all(lookers)
    for (const stop of watchers) stop()

    const failed = outcomes.filter((o) => !o.ok).length
    const rate = (outcomes.length - failed) / outcomes.length
    const slowest = Math.max(...outcomes.map((o) => o.ms))
    const refillTimes = refills.map((r) => r.ms).sort((a, b) => a - b)
    t.diagnostic(
      `churn: ${KILLED} supernodes stopped over ${Math.round(performance.now() - killedAt - 3_000)} ms; ` +
        `${outcomes.length} lookups, ${failed} failed or over ${LOOKUP_LIMIT_MS} ms (${round(rate * 100)}% ok), slowest ${Math.round(slowest)} ms; ` +
        `${refills.length} refills, p50 ${round(percentile(refillTimes, 50))} ms, max ${round(refillTimes.at(-1) ?? 0)} ms, ${lost.size} clients still short`
    )
    assert.ok(outcomes.length >= 50, `only ${outcomes.length} lookups ran`)
    assert.ok(rate >= 0.99, `${failed} of ${outcomes.length} lookups failed or took over ${LOOKUP_LIMIT_MS} ms`)
    assert.equal(lost.size, 0, `${lost.size} clients are not back to 3 supernodes`)
    assert.ok(refills.length >= KILLED, `${refills.length} refills for ${KILLED} supernodes gone`)
    for (const r of refills) assert.ok(r.ms <= REFILL_LIMIT_MS, `${r.client.name} took ${Math.round(r.ms)} ms to get back to 3 supernodes`)
    const dead = new Set(victims.map((v) => v.peerId))
    for (const c of sim.clients) {
      assert.equal(c.links.linked.length, 3, `${c.name} holds ${c.links.linked.length} supernodes`)
      assert.ok(!c.links.linked.some((l) => dead.has(l.peerId)), `${c.name} still counts a stopped supernode`)
    }
    // After the churn, every user is found again (their records moved to live supernodes).
    const misses: string[] = []
    for (const target of sim.clients) {
      const found = await pick(sim.clients).node.records.whois(target.name)
      if (!found.devices.some((d) => d.peerId === target.node.peerId)) misses.push(target.name)
    }
    assert.deepEqual(misses, [], 'users not found after the churn')
  })
})
