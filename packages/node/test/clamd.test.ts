import assert from 'node:assert/strict'
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ClamdSizeLimitError, ClamdUnavailableError, parseClamdAddress, pingClamd, scanFile } from '../src/files/clamd.ts'
import { EICAR, EICAR_SIGNATURE, type RunningClamd, startClamd } from './clamd.ts'

// The clamd client against a real clamd (unix socket and TCP, one EICAR signature), and against servers that
// misbehave (never answer, never read).

let dir: string
let clamd: RunningClamd

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-clamd-test-'))
  clamd = await startClamd({ tcp: true, streamMaxLength: '2M' })
})

after(async () => {
  await clamd?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('the clamd client (zINSTREAM)', () => {
  it('reads addresses: an absolute socket path, HOST:PORT, [IPv6]:PORT; nothing else', () => {
    assert.deepEqual(parseClamdAddress('/run/clamav/clamd.ctl'), { path: '/run/clamav/clamd.ctl' })
    assert.deepEqual(parseClamdAddress('127.0.0.1:3310'), { host: '127.0.0.1', port: 3310 })
    assert.deepEqual(parseClamdAddress('[::1]:3310'), { host: '::1', port: 3310 })
    assert.deepEqual(parseClamdAddress('scanner.example:3310'), { host: 'scanner.example', port: 3310 })
    for (const bad of ['clamd.ctl', 'host', 'host:0', 'host:65536', 'a b:1', '']) assert.equal(parseClamdAddress(bad), undefined, bad)
  })

  it('finds the EICAR test file, passes a clean and an empty file, over the unix socket and over TCP', async () => {
    const eicar = join(dir, 'eicar.com')
    const clean = join(dir, 'clean.bin')
    const empty = join(dir, 'empty')
    await writeFile(eicar, EICAR)
    await writeFile(clean, Buffer.alloc(1024 * 1024 + 17, 7))
    await writeFile(empty, '')
    for (const address of [{ path: clamd.socket }, clamd.address]) {
      assert.equal(await pingClamd(address), true)
      assert.deepEqual(await scanFile(address, eicar), { clean: false, signature: `${EICAR_SIGNATURE}.UNOFFICIAL` })
      assert.deepEqual(await scanFile(address, clean), { clean: true })
      assert.deepEqual(await scanFile(address, empty), { clean: true })
    }
  })

  it('a file over clamd StreamMaxLength is a clear, lasting error (not a verdict)', async () => {
    const big = join(dir, 'big.bin')
    await writeFile(big, '')
    await truncate(big, 3 * 1024 * 1024)
    await assert.rejects(scanFile({ path: clamd.socket }, big), (err: Error) => {
      assert.ok(err instanceof ClamdSizeLimitError, `${err.name}: ${err.message}`)
      assert.match(err.message, /StreamMaxLength/)
      return true
    })
  })

  it('nothing listening, a clamd that never answers, or one that stops reading: unavailable, within the time given', async () => {
    const file = join(dir, 'some.bin')
    await writeFile(file, Buffer.alloc(8 * 1024 * 1024, 1))
    await assert.rejects(scanFile({ path: join(dir, 'no.sock') }, file), ClamdUnavailableError)
    await assert.rejects(scanFile({ host: '127.0.0.1', port: 1 }, file), ClamdUnavailableError)
    const sockets: Socket[] = []
    const start = async (onConnection: (s: Socket) => void): Promise<Server> => {
      const server = createServer((s) => {
        sockets.push(s)
        onConnection(s)
      })
      await new Promise<void>((resolve) => server.listen(join(dir, `fake-${sockets.length}-${Date.now()}.sock`), resolve))
      return server
    }
    // Reads everything, answers nothing.
    const mute = await start((s) => s.resume())
    const started = performance.now()
    await assert.rejects(scanFile({ path: mute.address() as string }, file, { answerMs: 300 }), /no verdict within 300 ms/)
    assert.ok(performance.now() - started < 5000)
    // Takes the connection and reads nothing: the socket's buffers fill and a piece is not taken.
    const deaf = await start((s) => s.pause())
    await assert.rejects(scanFile({ path: deaf.address() as string }, file, { stallMs: 300 }), /stopped reading/)
    for (const s of sockets) s.destroy()
    for (const server of [mute, deaf]) await new Promise((r) => server.close(r))
  })
})
