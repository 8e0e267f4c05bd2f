/**
 * An in-place iterative radix-2 complex FFT (Cooley-Tukey) with its tables
 * made once per size. Internal: compare.ts uses it for cross-correlation
 * and short-time spectra.
 */
export class Fft {
  readonly size: number
  private readonly cos: Float64Array
  private readonly sin: Float64Array
  private readonly reversed: Uint32Array

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 2 || (size & (size - 1)) !== 0)
      throw new RangeError(`an FFT size must be a power of two, not ${size}`)
    this.size = size
    this.cos = new Float64Array(size / 2)
    this.sin = new Float64Array(size / 2)
    for (let i = 0; i < size / 2; i++) {
      this.cos[i] = Math.cos((2 * Math.PI * i) / size)
      this.sin[i] = Math.sin((2 * Math.PI * i) / size)
    }
    const bits = Math.log2(size)
    this.reversed = new Uint32Array(size)
    for (let i = 0; i < size; i++) {
      let r = 0
      for (let b = 0; b < bits; b++) r |= ((i >>> b) & 1) << (bits - 1 - b)
      this.reversed[i] = r
    }
  }

  /** X[k] = Σ x[n]·e^(-2πikn/N), in place. */
  forward(re: Float64Array, im: Float64Array): void {
    this.transform(re, im, -1)
  }

  /** The inverse, scaled by 1/N, in place. */
  inverse(re: Float64Array, im: Float64Array): void {
    this.transform(re, im, 1)
    const n = this.size
    for (let i = 0; i < n; i++) {
      re[i]! /= n
      im[i]! /= n
    }
  }

  private transform(re: Float64Array, im: Float64Array, sign: 1 | -1): void {
    const n = this.size
    if (re.length !== n || im.length !== n) throw new RangeError(`expected ${n} points`)
    const rev = this.reversed
    for (let i = 0; i < n; i++) {
      const j = rev[i]!
      if (j > i) {
        const tr = re[i]!
        re[i] = re[j]!
        re[j] = tr
        const ti = im[i]!
        im[i] = im[j]!
        im[j] = ti
      }
    }
    const { cos, sin } = this
    for (let half = 1; half < n; half *= 2) {
      const stride = n / (2 * half)
      for (let start = 0; start < n; start += 2 * half) {
        for (let k = 0; k < half; k++) {
          const wr = cos[k * stride]!
          const wi = sign * sin[k * stride]!
          const a = start + k
          const b = a + half
          const xr = re[b]! * wr - im[b]! * wi
          const xi = re[b]! * wi + im[b]! * wr
          re[b] = re[a]! - xr
          im[b] = im[a]! - xi
          re[a]! += xr
          im[a]! += xi
        }
      }
    }
  }
}

/** The smallest power of two at least n. */
export function nextPowerOfTwo(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}
