import { randomBytes } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { isIP } from 'node:net'
import { LIMITS } from '@parley/protocol'

/**
 * A STUN Binding server and client (RFC 5389, the part ICE and NAT
 * determination need): a node asks "which address do you see?" and the
 * server answers with XOR-MAPPED-ADDRESS. Supernodes serve it on two UDP
 * ports, so that one supernode can tell a NAT that keeps one mapping for
 * every destination ("cone") from one that makes a new mapping per
 * destination ("symmetric").
 */

const MAGIC_COOKIE = 0x2112a442
const BINDING_REQUEST = 0x0001
const BINDING_SUCCESS = 0x0101
const XOR_MAPPED_ADDRESS = 0x0020
const HEADER_BYTES = 20

export interface MappedAddress {
  address: string
  port: number
}

export type StunRefusal = 'TOO_SHORT' | 'TOO_LONG' | 'NOT_STUN' | 'NOT_A_BINDING_REQUEST' | 'BAD_LENGTH'

/** Checks a datagram; the reason it is not a Binding request, or undefined. */
export function checkBindingRequest(message: Uint8Array): StunRefusal | undefined {
  if (message.length < HEADER_BYTES) return 'TOO_SHORT'
  if (message.length > LIMITS.overlay.nat.stunMaxBytes) return 'TOO_LONG'
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength)
  if ((message[0] as number) >> 6 !== 0 || view.getUint32(4) !== MAGIC_COOKIE) return 'NOT_STUN'
  const length = view.getUint16(2)
  if (length !== message.length - HEADER_BYTES || length % 4 !== 0) return 'BAD_LENGTH'
  if (view.getUint16(0) !== BINDING_REQUEST) return 'NOT_A_BINDING_REQUEST'
  return undefined
}

export function bindingRequest(transactionId: Uint8Array = randomBytes(12)): Uint8Array {
  const message = new Uint8Array(HEADER_BYTES)
  const view = new DataView(message.buffer)
  view.setUint16(0, BINDING_REQUEST)
  view.setUint16(2, 0)
  view.setUint32(4, MAGIC_COOKIE)
  message.set(transactionId, 8)
  return message
}

export function bindingSuccess(request: Uint8Array, mapped: MappedAddress): Uint8Array {
  const family = isIP(mapped.address)
  const addressBytes = family === 6 ? ipv6Bytes(mapped.address) : ipv4Bytes(mapped.address)
  const message = new Uint8Array(HEADER_BYTES + 4 + 4 + addressBytes.length)
  const view = new DataView(message.buffer)
  view.setUint16(0, BINDING_SUCCESS)
  view.setUint16(2, message.length - HEADER_BYTES)
  message.set(request.subarray(4, HEADER_BYTES), 4)
  view.setUint16(20, XOR_MAPPED_ADDRESS)
  view.setUint16(22, 4 + addressBytes.length)
  view.setUint8(25, family === 6 ? 2 : 1)
  view.setUint16(26, mapped.port ^ (MAGIC_COOKIE >>> 16))
  const key = message.subarray(4, 4 + addressBytes.length)
  for (let i = 0; i < addressBytes.length; i++) message[28 + i] = (addressBytes[i] as number) ^ (key[i] as number)
  return message
}

/** The XOR-MAPPED-ADDRESS of a Binding success answering `transactionId`, or undefined. */
export function parseBindingSuccess(message: Uint8Array, transactionId: Uint8Array): MappedAddress | undefined {
  if (message.length < HEADER_BYTES || message.length > LIMITS.overlay.nat.stunMaxBytes) return undefined
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength)
  if (view.getUint16(0) !== BINDING_SUCCESS || view.getUint32(4) !== MAGIC_COOKIE) return undefined
  if (!equalBytes(message.subarray(8, 20), transactionId)) return undefined
  let offset = HEADER_BYTES
  while (offset + 4 <= message.length) {
    const type = view.getUint16(offset)
    const length = view.getUint16(offset + 2)
    const value = offset + 4
    if (value + length > message.length) return undefined
    if (type === XOR_MAPPED_ADDRESS && length >= 8) {
      const family = view.getUint8(value + 1)
      const port = view.getUint16(value + 2) ^ (MAGIC_COOKIE >>> 16)
      const size = family === 2 ? 16 : 4
      if (length < 4 + size) return undefined
      const key = message.subarray(4, 4 + size)
      const bytes = message.subarray(value + 4, value + 4 + size).map((b, i) => b ^ (key[i] as number))
      return { address: family === 2 ? ipv6Text(bytes) : [...bytes].join('.'), port }
    }
    offset = value + length + ((4 - (length % 4)) % 4)
  }
  return undefined
}

export interface StunServerStats {
  answered: number
  refused: Partial<Record<StunRefusal, number>>
}

/** Answers Binding requests on two UDP ports of one address. */
export class StunServer {
  readonly #sockets: Socket[] = []
  readonly stats: StunServerStats = { answered: 0, refused: {} }

  /** The two ports, once started. */
  get ports(): number[] {
    return this.#sockets.map((s) => s.address().port)
  }

  async start(host: string): Promise<void> {
    if (this.#sockets.length > 0) return
    const type = isIP(host) === 6 ? 'udp6' : 'udp4'
    for (let i = 0; i < 2; i++) {
      const socket = createSocket({ type })
      socket.on('message', (message, remote) => this.#answer(socket, message, remote))
      socket.on('error', () => {})
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject)
        socket.bind(0, host, () => {
          socket.off('error', reject)
          resolve()
        })
      })
      this.#sockets.push(socket)
    }
  }

  async stop(): Promise<void> {
    const sockets = this.#sockets.splice(0)
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }

  #answer(socket: Socket, message: Buffer, remote: { address: string; port: number }): void {
    const refusal = checkBindingRequest(message)
    if (refusal !== undefined) {
      // No answer to what is not a Binding request: a UDP server must not be a reflector.
      this.stats.refused[refusal] = (this.stats.refused[refusal] ?? 0) + 1
      return
    }
    this.stats.answered++
    socket.send(bindingSuccess(message, { address: remote.address, port: remote.port }), remote.port, remote.address)
  }
}

/**
 * Asks a STUN server which address it sees for `socket`; retries on loss,
 * undefined when no answer came.
 */
export async function stunBinding(socket: Socket, server: MappedAddress): Promise<MappedAddress | undefined> {
  const { stunTimeoutMs, stunTries } = LIMITS.overlay.nat
  const transactionId = randomBytes(12)
  const request = bindingRequest(transactionId)
  return await new Promise<MappedAddress | undefined>((resolve) => {
    let tries = 0
    let timer: ReturnType<typeof setTimeout> | undefined
    const done = (mapped: MappedAddress | undefined): void => {
      if (timer !== undefined) clearTimeout(timer)
      socket.off('message', onMessage)
      resolve(mapped)
    }
    const onMessage = (message: Buffer): void => {
      const mapped = parseBindingSuccess(message, transactionId)
      if (mapped !== undefined) done(mapped)
    }
    const send = (): void => {
      if (tries++ >= stunTries) {
        done(undefined)
        return
      }
      socket.send(request, server.port, server.address)
      timer = setTimeout(send, stunTimeoutMs)
    }
    socket.on('message', onMessage)
    send()
  })
}

function ipv4Bytes(address: string): Uint8Array {
  return Uint8Array.from(address.split('.').map(Number))
}

function ipv6Bytes(address: string): Uint8Array {
  const [head = '', tail] = address.split('::')
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)))
  const front = groups(head)
  const back = tail === undefined ? [] : groups(tail)
  const all = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back]
  const bytes = new Uint8Array(16)
  all.forEach((g, i) => {
    bytes[2 * i] = g >> 8
    bytes[2 * i + 1] = g & 0xff
  })
  return bytes
}

function ipv6Text(bytes: Uint8Array): string {
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16))
  return groups.join(':')
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i])
}
