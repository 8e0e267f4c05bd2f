/** Helpers shared by the `npm run bench` scripts: rounding for JSON output, percentiles, progress on stderr. */

/** Rates: whole numbers from 100 up, else 3 significant digits. */
export function rate(n: number): number {
  return n >= 100 ? Math.round(n) : Number(n.toPrecision(3))
}

/** Milliseconds, 3 significant digits. */
export function ms(n: number): number {
  return Number(n.toPrecision(3))
}

/** The p-th percentile (0-100) of an ascending array, nearest rank; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

/** A progress writer for one bench: `[name] message` on stderr, so stdout stays one JSON object. */
export function progressFor(name: string): (message: string) => void {
  return (message) => {
    process.stderr.write(`[${name}] ${message}\n`)
  }
}

/** `callers` callers, each making one call after another, for `durationMs`: how many calls, in how long. */
export async function runConcurrently(
  call: () => Promise<unknown>,
  callers: number,
  durationMs: number
): Promise<{ calls: number; elapsedMs: number }> {
  const start = performance.now()
  const end = start + durationMs
  let calls = 0
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        await call()
        calls++
      }
    })
  )
  return { calls, elapsedMs: performance.now() - start }
}

/** Times (ms) as a bench reports them: count, min, p50, p95, max and mean, rounded. */
export function timeSummary(times: number[]): {
  count: number
  minMs: number
  p50Ms: number
  p95Ms: number
  maxMs: number
  meanMs: number
} {
  const sorted = [...times].sort((a, b) => a - b)
  return {
    count: sorted.length,
    minMs: ms(sorted[0] ?? Number.NaN),
    p50Ms: ms(percentile(sorted, 50)),
    p95Ms: ms(percentile(sorted, 95)),
    maxMs: ms(sorted.at(-1) ?? Number.NaN),
    meanMs: ms(sorted.reduce((a, b) => a + b, 0) / sorted.length)
  }
}
