import { MailboxError } from './errors.ts'

/**
 * Big-endian binary fields for the mailbox's item and frames. A reader that
 * runs past the end, or a value out of range, is MALFORMED (never a
 * RangeError): decoders throw MailboxError only.
 */
export class ByteReader {
  readonly #bytes: Uint8Array
  readonly #view: DataView
  #offset = 0

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  get offset(): number {
    return this.#offset
  }

  get remaining(): number {
    return this.#bytes.length - this.#offset
  }

  #need(n: number, what: string): void {
    if (n > this.remaining) throw new MailboxError('MALFORMED', `truncated ${what}`)
  }

  u8(what = 'byte'): number {
    this.#need(1, what)
    return this.#bytes[this.#offset++] as number
  }

  u16(what = 'u16'): number {
    this.#need(2, what)
    const v = this.#view.getUint16(this.#offset)
    this.#offset += 2
    return v
  }

  u32(what = 'u32'): number {
    this.#need(4, what)
    const v = this.#view.getUint32(this.#offset)
    this.#offset += 4
    return v
  }

  /** A u64 that must fit a JS number exactly (times in ms, cursors). */
  u53(what = 'u64'): number {
    this.#need(8, what)
    const v = this.#view.getBigUint64(this.#offset)
    this.#offset += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MailboxError('MALFORMED', `${what} out of range`)
    return Number(v)
  }

  /** A view of the next n bytes (copy it to keep it). */
  bytes(n: number, what = 'bytes'): Uint8Array {
    this.#need(n, what)
    const out = this.#bytes.subarray(this.#offset, this.#offset + n)
    this.#offset += n
    return out
  }

  /** n bytes of printable ASCII matching `pattern`. */
  ascii(n: number, pattern: RegExp, what: string): string {
    const raw = this.bytes(n, what)
    let text = ''
    for (const b of raw) text += String.fromCharCode(b)
    if (!pattern.test(text)) throw new MailboxError('MALFORMED', `bad ${what}`)
    return text
  }

  /** n bytes of UTF-8 (invalid sequences are MALFORMED). */
  utf8(n: number, what: string): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.bytes(n, what))
    } catch (err) {
      if (err instanceof MailboxError) throw err
      throw new MailboxError('MALFORMED', `${what} is not UTF-8`)
    }
  }

  /** Everything not read yet. */
  rest(): Uint8Array {
    return this.bytes(this.remaining)
  }

  /** Nothing may follow: one byte string per value. */
  end(what: string): void {
    if (this.remaining !== 0) throw new MailboxError('MALFORMED', `trailing bytes after ${what}`)
  }
}

/** Builds a frame from fields; callers check ranges before writing. */
export class ByteWriter {
  readonly #parts: Uint8Array[] = []
  #length = 0

  get length(): number {
    return this.#length
  }

  #push(part: Uint8Array): this {
    this.#parts.push(part)
    this.#length += part.length
    return this
  }

  #fixed(n: number, set: (view: DataView) => void): this {
    const part = new Uint8Array(n)
    set(new DataView(part.buffer))
    return this.#push(part)
  }

  u8(v: number): this {
    return this.#fixed(1, (d) => d.setUint8(0, v))
  }

  u16(v: number): this {
    return this.#fixed(2, (d) => d.setUint16(0, v))
  }

  u32(v: number): this {
    return this.#fixed(4, (d) => d.setUint32(0, v))
  }

  u53(v: number): this {
    return this.#fixed(8, (d) => d.setBigUint64(0, BigInt(v)))
  }

  bytes(b: Uint8Array): this {
    return this.#push(b)
  }

  /** ASCII text (callers have checked its characters). */
  ascii(text: string): this {
    const out = new Uint8Array(text.length)
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i)
    return this.#push(out)
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length)
    let o = 0
    for (const p of this.#parts) {
      out.set(p, o)
      o += p.length
    }
    return out
  }
}
