import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { AudioPeer, compareAudio, type IceServer, TurnSecret, turnUrls, VideoCounter, VideoPattern } from '@parley/calls'
import { generateKeyPair, type KeyPair } from '@parley/crypto'
import { type RunningCoturn, speech, startCoturn, testNetwork } from '@parley/testing'
import fc from 'fast-check'
import {
  CALL_PROTOCOL,
  CallError,
  CallService,
  CallStore,
  type CallView,
  ChatService,
  ChatStore,
  decodeSignal,
  EchoService,
  encodeSignal,
  fingerprintsOf,
  ParleyNode,
  type Signal,
  SignalChannel,
  TurnService
} from '../src/index.ts'
import { befriend, startLoopbackNode, until } from './support.ts'

// Calls between in-process peers on loopback TCP: real libp2p signalling, real
// libwebrtc media (Opus over DTLS-SRTP), speech made by espeak-ng.

const network = testNetwork()

interface Peer {
  name: string
  device: KeyPair
  node: ParleyNode
  chat: ChatService
  calls: CallService
  events: Array<{ type: string; data: Record<string, unknown> }>
  /** The ICE servers its calls use (none: host candidates). */
  turnServers: () => Promise<IceServer[]>
  stop(): Promise<void>
}

const peers: Peer[] = []
let seed: ParleyNode

async function startPeer(
  name: string,
  options: {
    noAnswerMs?: number
    iceTransportPolicy?: () => 'all' | 'relay'
    echoRecordMs?: number
    /** The same device and chat database again (a restart). */
    device?: KeyPair
    chatStore?: ChatStore
  } = {}
): Promise<Peer> {
  const { echoRecordMs, device: given, chatStore, ...callOptions } = options
  let echo: EchoService | undefined
  const device = given ?? generateKeyPair()
  const node = await startLoopbackNode(network, name, { seed, device })
  const events: Peer['events'] = []
  const emit = (type: string, data: object): void => {
    events.push({ type, data: data as Record<string, unknown> })
    echo?.onEvent(type, data)
  }
  const chat = new ChatService({ node, store: chatStore ?? new ChatStore(':memory:'), device, me: () => name, emit })
  const calls = new CallService({
    node,
    chat,
    store: new CallStore(':memory:'),
    me: () => name,
    emit,
    iceServers: async () => await peer.turnServers(),
    ...callOptions
  })
  if (echoRecordMs !== undefined) echo = new EchoService({ chat, calls, me: () => name, recordMs: echoRecordMs })
  await chat.start()
  await calls.start()
  const peer: Peer = {
    name,
    device,
    node,
    chat,
    calls,
    events,
    turnServers: async () => [],
    async stop() {
      await calls.stop()
      await chat.stop()
      await node.stop()
    }
  }
  peers.push(peer)
  return peer
}

before(async () => {
  seed = await startLoopbackNode(network, 'calls_supernode')
})

after(async () => {
  for (const p of peers) await p.stop().catch(() => {})
  await seed.stop()
})

describe('a voice call between two devices', () => {
  let ann: Peer
  let ben: Peer

  before(async () => {
    ann = await startPeer('ann_call')
    ben = await startPeer('ben_call')
    await befriend(ann, ben)
  })

  it('carries speech from the caller to the callee, who records it; both keep it in their call history', async () => {
    const words = await speech()
    const seconds = words.length / 48_000 + 1.5
    const incoming = ben.calls.nextIncoming({ from: 'ann_call', signal: AbortSignal.timeout(10_000) })
    const placed = await ann.calls.call('ben_call', { play: words, seconds })
    const ringing = await incoming
    assert.equal(ringing.id, placed.id)
    assert.equal(ringing.peer, 'ann_call')
    await ben.calls.answer(ringing.id)
    const [callerEnd, calleeEnd] = await Promise.all([ann.calls.ended(placed.id), ben.calls.ended(placed.id)])
    assert.equal(callerEnd.outcome, 'completed')
    assert.equal(calleeEnd.outcome, 'completed')
    assert.ok(calleeEnd.seconds > words.length / 48_000, `connected ${calleeEnd.seconds} s`)
    assert.equal(callerEnd.path, 'host/host')
    const recording = ben.calls.recording(placed.id)
    assert.ok(recording !== undefined)
    const comparison = compareAudio(words, recording)
    assert.ok(comparison.pass, `the recording matches the speech: ${JSON.stringify(comparison)}`)
    assert.equal(ann.calls.history()[0]?.outcome, 'completed')
    assert.equal(ben.calls.history()[0]?.direction, 'incoming')
    assert.ok(ben.events.some((e) => e.type === 'call.incoming'))
  })
})

describe('when a call is not taken', () => {
  let cal: Peer
  let dee: Peer
  let eli: Peer

  before(async () => {
    cal = await startPeer('cal_call', { noAnswerMs: 1_500 })
    dee = await startPeer('dee_call', { noAnswerMs: 1_500 })
    eli = await startPeer('eli_call', { noAnswerMs: 1_500 })
    await befriend(cal, dee)
    await befriend(eli, dee)
  })

  it('declined: the caller hears declined', async () => {
    const incoming = dee.calls.nextIncoming({ signal: AbortSignal.timeout(5_000) })
    const placed = await cal.calls.call('dee_call')
    await dee.calls.decline((await incoming).id)
    assert.equal((await cal.calls.ended(placed.id)).outcome, 'declined')
    assert.equal(dee.calls.history()[0]?.outcome, 'declined')
  })

  it('cancelled while ringing: a missed call for the callee', async () => {
    const incoming = dee.calls.nextIncoming({ signal: AbortSignal.timeout(5_000) })
    const placed = await cal.calls.call('dee_call')
    await incoming
    await cal.calls.hangUp(placed.id)
    assert.equal((await dee.calls.ended(placed.id)).outcome, 'missed')
    assert.equal((await cal.calls.ended(placed.id)).outcome, 'cancelled')
    assert.ok(dee.events.some((e) => e.type === 'call.missed' && e.data.id === placed.id))
  })

  it('no answer: the caller gives up after the timeout, and the callee has a missed call', async () => {
    const placed = await cal.calls.call('dee_call')
    const started = performance.now()
    const end = await cal.calls.ended(placed.id)
    assert.equal(end.outcome, 'no-answer')
    assert.ok(performance.now() - started >= 1_400)
    await until('dee has the missed call', () => dee.calls.history()[0]?.id === placed.id)
    assert.equal(dee.calls.history()[0]?.outcome, 'missed')
  })

  it('busy: a second caller while the callee is in a call', async () => {
    const incoming = dee.calls.nextIncoming({ from: 'cal_call', signal: AbortSignal.timeout(5_000) })
    const first = await cal.calls.call('dee_call')
    await dee.calls.answer((await incoming).id)
    const second = await eli.calls.call('dee_call')
    assert.equal((await eli.calls.ended(second.id)).outcome, 'busy')
    await cal.calls.hangUp(first.id)
    assert.equal((await dee.calls.ended(first.id)).outcome, 'completed')
    assert.ok(dee.calls.history().some((r) => r.id === second.id && r.outcome === 'missed'))
  })

  it('a blocked caller never rings: the caller learns nothing but that nobody took it', async () => {
    dee.chat.block('eli_call')
    const before = dee.events.length
    const placed = await eli.calls.call('dee_call')
    const end = await eli.calls.ended(placed.id)
    assert.equal(end.outcome, 'unavailable')
    assert.equal(dee.events.slice(before).filter((e) => e.type.startsWith('call.')).length, 0)
    assert.equal(
      dee.calls.history().some((r) => r.id === placed.id),
      false
    )
  })

  it('contacts only: a stranger is declined', async () => {
    const stranger = await startPeer('fay_call')
    dee.chat.privacy = 'contacts'
    try {
      const placed = await stranger.calls.call('dee_call')
      const end = await stranger.calls.ended(placed.id)
      assert.equal(end.outcome, 'declined')
      assert.match(end.reason ?? '', /contacts only/)
    } finally {
      dee.chat.privacy = 'anyone'
    }
  })
})

describe('a callee on two devices', () => {
  it('rings both; the first to answer wins and the other stops ringing', async () => {
    const gus = await startPeer('gus_call')
    const phone = await startPeer('hal_call')
    const laptop = await startPeer('hal_call')
    const onPhone = phone.calls.nextIncoming({ signal: AbortSignal.timeout(5_000) })
    const onLaptop = laptop.calls.nextIncoming({ signal: AbortSignal.timeout(5_000) })
    const placed = await gus.calls.call('hal_call')
    await Promise.all([onPhone, onLaptop])
    await laptop.calls.answer(placed.id)
    assert.equal((await phone.calls.ended(placed.id)).outcome, 'answered-elsewhere')
    await until('the call is connected', () => gus.calls.get(placed.id)?.state === 'active', 10_000)
    await gus.calls.hangUp(placed.id)
    assert.equal((await laptop.calls.ended(placed.id)).outcome, 'completed')
  })
})

describe('calls that must not get through', () => {
  it('refuses media whose DTLS certificate is not the one in the signalled SDP (a forged fingerprint)', async () => {
    const ivy = await startPeer('ivy_call')
    const jay = await startPeer('jay_call')
    await befriend(ivy, jay)
    // Ivy's side speaks the protocol by hand; with `forge` it lies about its certificate in the offer. Without,
    // the same hand-made call connects: what fails is the fingerprint, nothing else.
    const handMadeCall = async (id: string, forge: boolean): Promise<CallView> => {
      const connection = await ivy.node.libp2p.dial(peerIdFromString(jay.node.peerId))
      assert.equal((await ivy.node.hello.greet(connection)).ok, true)
      const channel = new SignalChannel(await connection.newStream(CALL_PROTOCOL), jay.node.peerId)
      const media = new AudioPeer()
      try {
        media.pc.onicecandidate = (e) =>
          void channel.send({
            t: 'ice',
            candidate: e.candidate?.candidate ?? '',
            mid: e.candidate?.sdpMid ?? null,
            index: e.candidate?.sdpMLineIndex ?? null
          })
        const offer = await media.pc.createOffer()
        await media.pc.setLocalDescription(offer)
        const real = fingerprintsOf(offer.sdp ?? '')[0]?.value as string
        const forged = `${real.startsWith('00') ? 'FF' : '00'}${real.slice(2)}`
        const sdp = forge ? (offer.sdp ?? '').replaceAll(real, forged) : (offer.sdp ?? '')
        await channel.send({ t: 'invite', call: id, video: false, sdp })
        const ringing = await jay.calls.nextIncoming({ from: 'ivy_call', signal: AbortSignal.timeout(5_000) })
        assert.equal(ringing.id, id)
        await jay.calls.answer(id)
        channel.pump(
          async (signal) => {
            if (signal.t === 'accept') await media.pc.setRemoteDescription({ type: 'answer', sdp: signal.sdp })
            else if (signal.t === 'ice' && signal.candidate !== '')
              await media.pc.addIceCandidate({
                candidate: signal.candidate,
                sdpMid: signal.mid ?? undefined,
                sdpMLineIndex: signal.index ?? undefined
              })
          },
          () => {}
        )
        if (!forge) {
          await until('the honest call connects', () => jay.calls.get(id)?.state === 'active', 10_000)
          await jay.calls.hangUp(id)
        }
        return await jay.calls.ended(id)
      } finally {
        media.close()
        channel.close()
      }
    }
    assert.equal((await handMadeCall('honest-fingerprint-call-01', false)).outcome, 'completed')
    const end = await handMadeCall('forged-fingerprint-call-01', true)
    assert.equal(end.outcome, 'failed')
    assert.equal(end.seconds, 0)
    assert.match(end.reason ?? '', /media did not connect|FINGERPRINT_MISMATCH/)
    // Not a sound got through.
    const heard = jay.calls.recording('forged-fingerprint-call-01') ?? new Int16Array(0)
    assert.ok(
      heard.every((v) => Math.abs(v) < 64),
      'silence at most'
    )
  })

  it('refuses a call from a peer without a valid credential (NO_CREDENTIAL), and nothing rings', async () => {
    const kim = await startPeer('kim_call')
    const before = kim.events.length
    // A credential from another network's login server: this network does not trust it.
    const elsewhere = testNetwork()
    const device = generateKeyPair()
    const credential = elsewhere.credentialFor(device, 'lou_call')
    const rogue = await ParleyNode.create({
      role: 'client',
      deviceSeed: device.seed,
      trustedKeys: network.trustedKeys,
      credential: () => credential,
      privateAddresses: true
    })
    await rogue.start()
    try {
      let answer: string
      try {
        const connection = await rogue.libp2p.dial(peerIdFromString(kim.node.peerId))
        const channel = new SignalChannel(await connection.newStream(CALL_PROTOCOL), kim.node.peerId)
        await channel.send({ t: 'invite', call: 'no-credential-call-0001', video: false, sdp: 'v=0\r\na=fingerprint:sha-256 AA:BB\r\n' })
        const reply = await channel.next(5_000)
        answer = reply?.t === 'refused' ? reply.code : String(reply?.t ?? 'closed')
      } catch (err) {
        answer = `connection refused: ${(err as Error).message}`
      }
      assert.ok(answer === 'NO_CREDENTIAL' || answer === 'closed' || answer.startsWith('connection refused'), answer)
      assert.equal(kim.events.slice(before).filter((e) => e.type.startsWith('call.')).length, 0)
    } finally {
      await rogue.stop()
    }
  })

  it('fuzz: 100,000 random and mutated signalling frames — the decoder throws CallError and nothing else', () => {
    const valid: Signal[] = [
      { t: 'invite', call: 'abcdefghijklmnopqrstu', video: false, sdp: 'v=0\r\na=fingerprint:sha-256 AA:BB:CC\r\n' },
      { t: 'ringing' },
      { t: 'accept', sdp: 'v=0\r\na=fingerprint:sha-256 AA:BB:CC\r\n' },
      { t: 'reject', reason: 'busy' },
      { t: 'cancel', reason: 'no-answer' },
      { t: 'ice', candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', mid: '0', index: 0 },
      { t: 'hold', on: true },
      { t: 'mute', audio: true, video: false },
      { t: 'hangup' },
      { t: 'refused', code: 'MALFORMED', message: 'no' }
    ]
    for (const v of valid) assert.deepEqual(decodeSignal(encodeSignal(v)), v)
    const frames = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.json().map((j) => new TextEncoder().encode(j)),
      fc.tuple(fc.constantFrom(...valid), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([v, at, byte]) => {
        const bytes = encodeSignal(v).slice()
        bytes[at % bytes.length] = byte
        return bytes
      }),
      fc.tuple(fc.constantFrom(...valid), fc.string(), fc.anything()).map(([v, key, value]) => {
        const o: Record<string, unknown> = { ...v, [key]: value }
        return new TextEncoder().encode(JSON.stringify(o))
      })
    )
    fc.assert(
      fc.property(frames, (frame) => {
        try {
          decodeSignal(frame)
        } catch (err) {
          assert.ok(err instanceof CallError, String(err))
        }
      }),
      { numRuns: 100_000 }
    )
  })
})

describe('TURN: a supernode hands out credentials for its coturn, and a call goes through the relay', () => {
  let coturn: RunningCoturn
  let turn: TurnService

  before(async () => {
    const secret = randomBytes(24).toString('base64url')
    coturn = await startCoturn({ secret })
    turn = new TurnService(seed, {
      host: coturn.host,
      port: coturn.port,
      urls: turnUrls(coturn.host, coturn.port),
      secret: new TurnSecret(secret)
    })
    await turn.start()
  })
  after(async () => {
    await turn.stop()
    await coturn.stop()
  })

  it('only peers with a valid credential get TURN credentials, which coturn takes: the call is relayed both ways', async () => {
    const relayed = { iceTransportPolicy: () => 'relay' as const }
    const mia = await startPeer('mia_call', relayed)
    const ned = await startPeer('ned_call', relayed)
    const askers = await Promise.all(
      [mia, ned].map(async (p) => {
        const t = new TurnService(p.node)
        await t.start()
        return t
      })
    )
    try {
      const servers = await askers[0]?.iceServers([peerIdFromString(seed.peerId)])
      assert.equal(servers?.length, 1)
      assert.match(servers?.[0]?.username ?? '', /^\d+:mia_call$/)
      assert.deepEqual(servers?.[0]?.urls, turnUrls(coturn.host, coturn.port))
      for (const [p, t] of [
        [mia, askers[0]],
        [ned, askers[1]]
      ] as const)
        p.turnServers = async () => (await t?.iceServers([peerIdFromString(seed.peerId)])) ?? []
      await befriend(mia, ned)
      const words = await speech()
      const incoming = ned.calls.nextIncoming({ signal: AbortSignal.timeout(10_000) })
      const placed = await mia.calls.call('ned_call', { play: words, seconds: words.length / 48_000 + 1.5 })
      await ned.calls.answer((await incoming).id)
      const end = await ned.calls.ended(placed.id)
      assert.equal(end.outcome, 'completed')
      assert.equal(end.path, 'relay/relay')
      const comparison = compareAudio(words, ned.calls.recording(placed.id) as Int16Array)
      assert.ok(comparison.pass, JSON.stringify(comparison))
    } finally {
      for (const t of askers) await t.stop()
    }
  })
})

describe('the echo test contact', () => {
  it('accepts a contact request, answers the call, and plays back what it heard; echoes a chat line', async () => {
    await startPeer('echo_call', { echoRecordMs: 3_000 })
    const ora = await startPeer('ora_call')
    await ora.chat.addContact('echo_call')
    await until('the echo accepts', () => ora.chat.isContact('echo_call'))
    await ora.chat.message('echo_call', 'testing 1 2 3')
    await until('the echo answers the line', () => ora.chat.history('echo_call', 10).some((m) => m.text === 'echo: testing 1 2 3'))
    const words = await speech()
    const placed = await ora.calls.call('echo_call', { play: words.subarray(0, 3 * 48_000) })
    const end = await ora.calls.ended(placed.id)
    assert.equal(end.outcome, 'completed', end.reason ?? '')
    const back = ora.calls.recording(placed.id) as Int16Array
    // What came back is what was said in the first seconds (the echo started listening when the call connected).
    const comparison = compareAudio(words.subarray(0, Math.round(2.5 * 48_000)), back)
    assert.ok(comparison.pass, JSON.stringify(comparison))
    assert.ok(comparison.offsetMs > 2_500, `played back after listening: ${comparison.offsetMs} ms`)
  })
})

describe('a conference hosted by one participant, who mixes', () => {
  it('three parties: each participant hears both others; the host adds people to the running call (5 participants)', async () => {
    const host = await startPeer('host_conf')
    const guests = await Promise.all(['bea_conf', 'cyd_conf', 'dan_conf', 'eve_conf'].map(async (n) => await startPeer(n)))
    const [bea, cyd, dan, eve] = guests as [Peer, Peer, Peer, Peer]
    const sentences = {
      bea: await speech('The quick brown fox jumps over the lazy dog.'),
      cyd: await speech('Please call me back later this afternoon.'),
      host: await speech('Seven apples and nine oranges lie on the kitchen table.'),
      dan: await speech('The train to the coast leaves at noon on Sunday.')
    }
    /** The host calls a guest (into the conference when `into` is given); the guest answers. */
    const bring = async (guest: Peer, into?: string): Promise<string> => {
      const ringing = guest.calls.nextIncoming({ signal: AbortSignal.timeout(10_000) })
      const placed = await host.calls.call(guest.name, into === undefined ? {} : { conference: into })
      await guest.calls.answer((await ringing).id)
      await until(`${guest.name} connected`, () => host.calls.get(placed.id)?.state === 'active', 10_000)
      return placed.id
    }
    const first = await bring(bea)
    const second = await bring(cyd, first)
    assert.deepEqual(
      host.calls
        .conference(first)
        .map((c) => c.peer)
        .sort(),
      ['bea_conf', 'cyd_conf']
    )
    // One at a time, so that each voice is recognisable in the mixes: bea, then cyd, then the host.
    await bea.calls.play(first, sentences.bea)
    await new Promise((r) => setTimeout(r, 500))
    await cyd.calls.play(second, sentences.cyd)
    await new Promise((r) => setTimeout(r, 500))
    await host.calls.play(first, sentences.host)
    // The host's words go into the mix at once; they take their length to be heard.
    await new Promise((r) => setTimeout(r, (sentences.host.length / 48_000) * 1000 + 500))
    // Group video, forwarded by the host: bea's camera reaches cyd through the host.
    await bea.calls.video(first, 'camera', true)
    await until('cyd sees bea’s video through the host', () => (cyd.calls.get(second)?.videoFramesIn ?? 0) > 10, 10_000)
    assert.equal(cyd.calls.get(second)?.remoteVideo, true)
    await bea.calls.video(first, 'camera', false)
    // Two more join the running conference: five participants with the host.
    const third = await bring(dan, first)
    const fourth = await bring(eve, first)
    assert.equal(host.calls.conference(first).length, 4)
    await dan.calls.play(third, sentences.dan)
    // Through the host to eve: two calls and the mixer; the tail needs time to arrive on a busy machine.
    await new Promise((r) => setTimeout(r, 1_500))
    for (const id of [first, second, third, fourth]) await host.calls.hangUp(id)
    await Promise.all(guests.map(async (g, i) => await g.calls.ended([first, second, third, fourth][i] as string)))
    const heard = (p: Peer, id: string): Int16Array => p.calls.recording(id) as Int16Array
    // Mixed audio passes through two calls and the host's mixer: a little looser than one call (0.7, where
    // silence, another sentence or chopped speech score 0 to 0.6).
    const hears = (recording: Int16Array, said: Int16Array): boolean => compareAudio(said, recording, { threshold: 0.7 }).pass
    // Each participant's recording holds both others' speech, and not their own.
    assert.ok(hears(heard(bea, first), sentences.cyd), 'bea hears cyd')
    assert.ok(hears(heard(bea, first), sentences.host), 'bea hears the host')
    assert.ok(hears(heard(cyd, second), sentences.bea), 'cyd hears bea')
    assert.ok(hears(heard(cyd, second), sentences.host), 'cyd hears the host')
    assert.ok(hears(heard(host, first), sentences.bea), 'the host hears bea on her call')
    assert.ok(hears(heard(host, second), sentences.cyd), 'the host hears cyd on his call')
    assert.equal(hears(heard(bea, first), sentences.bea), false, 'bea does not hear herself')
    // The ones added later hear the conference too.
    assert.ok(hears(heard(eve, fourth), sentences.dan), 'eve hears dan')
  })
})

describe('voicemail', () => {
  it('no answer: a missed call; then a voicemail sealed into the mailboxes, fetched when the callee is back, and gone from the supernode', async () => {
    const pat = await startPeer('pat_call', { noAnswerMs: 1_000 })
    const quinnDevice = generateKeyPair()
    const quinnStore = new ChatStore(':memory:')
    let quinn = await startPeer('quinn_call', { device: quinnDevice, chatStore: quinnStore })
    await befriend(pat, quinn)
    const placed = await pat.calls.call('quinn_call')
    assert.equal((await pat.calls.ended(placed.id)).outcome, 'no-answer')
    await until('quinn has a missed call', () => quinn.calls.history()[0]?.outcome === 'missed')
    // Quinn is gone now: the voicemail waits in the mailboxes, sealed to quinn's device.
    await quinn.stop()
    peers.splice(peers.indexOf(quinn), 1)
    const words = await speech()
    const left = await pat.calls.leaveVoicemail('quinn_call', words, placed.id)
    assert.equal(left.state, 'stored')
    assert.ok(left.parts >= 1)
    assert.ok((seed.mailbox.store?.size ?? 0) >= left.parts, 'the parts are on the supernode')
    quinn = await startPeer('quinn_call', { device: quinnDevice, chatStore: quinnStore })
    await quinn.chat.collect()
    await until('the voicemail is whole', () => quinn.calls.voicemails()[0]?.complete === true, 10_000)
    const [listed] = quinn.calls.voicemails()
    assert.equal(listed?.from, 'pat_call')
    assert.equal(listed?.call, placed.id)
    assert.ok(quinn.events.some((e) => e.type === 'voicemail.received'))
    const audio = quinn.calls.voicemailAudio(placed.id) as Int16Array
    const comparison = compareAudio(words, audio)
    assert.ok(comparison.pass, `the voicemail is the speech: ${JSON.stringify(comparison)}`)
    await until('the supernode holds nothing for quinn any more', () => (seed.mailbox.store?.size ?? 0) === 0, 10_000)
  })

  it('a blocked caller cannot leave one: its parts never reach storage', async () => {
    const rex = await startPeer('rex_call')
    const sue = await startPeer('sue_call')
    await befriend(rex, sue)
    sue.chat.block('rex_call')
    const words = await speech()
    await rex.calls.leaveVoicemail('sue_call', words.subarray(0, 48_000))
    await new Promise((r) => setTimeout(r, 300))
    assert.deepEqual(sue.calls.voicemails(), [])
  })
})

describe('video and a shared screen, added and dropped during a call', () => {
  it('renegotiates over the signalling: the other side receives camera and screen frames, then none', async () => {
    const tia = await startPeer('tia_call')
    const uma = await startPeer('uma_call')
    const ringing = uma.calls.nextIncoming({ signal: AbortSignal.timeout(10_000) })
    const placed = await tia.calls.call('uma_call')
    await uma.calls.answer((await ringing).id)
    await until('connected', () => tia.calls.get(placed.id)?.state === 'active' && uma.calls.get(placed.id)?.state === 'active', 10_000)
    const seen = (): number => uma.calls.get(placed.id)?.videoFramesIn ?? 0
    assert.equal(seen(), 0)
    const camera = await tia.calls.video(placed.id, 'camera', true)
    assert.deepEqual(camera.sending, ['camera'])
    await until('uma sees the camera', () => seen() > 10 && uma.calls.get(placed.id)?.remoteVideo === true, 10_000)
    await tia.calls.video(placed.id, 'screen', true)
    assert.deepEqual(tia.calls.get(placed.id)?.sending, ['camera', 'screen'])
    // Uma shares her screen too: renegotiation from the other side.
    await uma.calls.video(placed.id, 'screen', true)
    await until('tia sees uma’s screen', () => (tia.calls.get(placed.id)?.videoFramesIn ?? 0) > 10, 10_000)
    for (const kind of ['camera', 'screen'] as const) await tia.calls.video(placed.id, kind, false)
    await until('uma learns tia sends no video', () => uma.calls.get(placed.id)?.remoteVideo === false, 5_000)
    const stopped = seen()
    await new Promise((r) => setTimeout(r, 500))
    assert.ok(seen() - stopped <= 3, `no more frames from tia (${seen() - stopped} after it stopped)`)
    // Mute and hold are told to the other side, and silence the sender's track.
    await tia.calls.mute(placed.id, true)
    await until('uma sees tia muted', () => uma.calls.get(placed.id)?.remoteMuted === true)
    await tia.calls.hold(placed.id, true)
    await until('uma sees the call on hold', () => uma.calls.get(placed.id)?.remoteHeld === true)
    await tia.calls.hold(placed.id, false)
    await tia.calls.mute(placed.id, false)
    await until('and back', () => uma.calls.get(placed.id)?.remoteHeld === false && uma.calls.get(placed.id)?.remoteMuted === false)
    await tia.calls.hangUp(placed.id)
    assert.equal((await uma.calls.ended(placed.id)).outcome, 'completed')
    // Both histories keep it as a video call.
    assert.equal(tia.calls.history()[0]?.video, true)
    assert.equal(uma.calls.history()[0]?.video, true)
  })
})

describe("the web client's media: a leg between the browser and its daemon, bridged into the call", () => {
  it("carries the browser's microphone and camera to the other side, and the other side's voice and video back to the browser", async () => {
    const fay = await startPeer('fay_call')
    const gus = await startPeer('gus_call')
    await befriend(fay, gus)
    // The "browser": libwebrtc offering one audio and one video transceiver, both ways, as the web client does.
    const browser = new AudioPeer()
    const pc = browser.pc as unknown as {
      addTransceiver(kind: 'video', init: { direction: 'sendrecv' }): { sender: { replaceTrack(t: unknown): Promise<void> } }
    }
    const camera = new VideoPattern()
    await pc.addTransceiver('video', { direction: 'sendrecv' }).sender.replaceTrack(camera.track)
    let framesSeen = 0
    const audioOnTrack = browser.pc.ontrack
    const counters: VideoCounter[] = []
    browser.pc.ontrack = (event) => {
      audioOnTrack?.(event)
      if (event.track.kind !== 'video') return
      const counter = new VideoCounter(event.track)
      counters.push(counter)
      counter.sink.onframe = () => {
        framesSeen++
      }
    }
    try {
      const ringing = gus.calls.nextIncoming({ signal: AbortSignal.timeout(10_000) })
      const placed = await fay.calls.call('gus_call')
      await browser.pc.setLocalDescription(await browser.pc.createOffer())
      await until('the browser has its candidates', () => browser.pc.iceGatheringState === 'complete', 5_000)
      const leg = await fay.calls.attachBrowser(placed.id, browser.pc.localDescription?.sdp ?? '')
      assert.equal(leg.call.browser, true)
      await browser.pc.setRemoteDescription({ type: 'answer', sdp: leg.sdp })
      await gus.calls.answer((await ringing).id)
      await browser.connected({ signal: AbortSignal.timeout(10_000) })
      await until('connected', () => fay.calls.get(placed.id)?.state === 'active' && gus.calls.get(placed.id)?.state === 'active', 10_000)

      // Voices both ways at once, each a different sentence: the browser's microphone to gus, gus to the browser.
      // As long as the test sentence, and as unlike it (short sentences compare less steadily).
      const ownLine = await speech(
        'Supernodes relay for peers behind a router, and hold messages for those who are away. This is the browser speaking, through its own daemon.'
      )
      const gusLine = await speech()
      const heardBefore = gus.calls.heard(placed.id).length
      const fayBefore = fay.calls.heard(placed.id).length
      const browserEar = await browser.remoteAudio()
      const earBefore = browserEar.samples().length
      await Promise.all([browser.player.play(ownLine), gus.calls.play(placed.id, gusLine)])
      await new Promise((r) => setTimeout(r, 1_500))
      // Each way goes through two Opus encodings and two jitter buffers (the leg's and the call's), all in this one
      // process here, so a busy machine shows in the similarity. What is asserted is that each side hears the other's
      // sentence and not its own (an echo) nor silence: clearly more like the right sentence than like the wrong one.
      const gusHeard = gus.calls.heard(placed.id).subarray(heardBefore)
      const browserHeard = browserEar.samples().subarray(earBefore)
      const figures = {
        toGus: compareAudio(ownLine, gusHeard),
        toGusWrong: compareAudio(gusLine, gusHeard),
        toBrowser: compareAudio(gusLine, browserHeard),
        toBrowserWrong: compareAudio(ownLine, browserHeard),
        // The network hop alone (gus to fay's daemon), for comparison.
        toFayDaemon: compareAudio(gusLine, fay.calls.heard(placed.id).subarray(fayBefore))
      }
      process.stderr.write(`${JSON.stringify({ leg: 'browser', ...figures })}\n`)
      for (const [right, wrong] of [
        [figures.toGus, figures.toGusWrong],
        [figures.toBrowser, figures.toBrowserWrong]
      ] as const) {
        assert.ok(
          right.similarity >= 0.4 && right.similarity >= wrong.similarity + 0.15,
          `each hears the other: ${JSON.stringify(figures)}`
        )
        assert.ok(right.levelRatio > 0.5, `at about the level it was said: ${JSON.stringify(figures)}`)
      }

      // The browser's camera goes into the call; gus's camera comes back to the browser.
      await fay.calls.video(placed.id, 'camera', true)
      await until('gus sees the browser camera', () => (gus.calls.get(placed.id)?.videoFramesIn ?? 0) > 10, 10_000)
      // Switching to the screen (the browser replaces its track) keeps the one video going, relabelled.
      await fay.calls.video(placed.id, 'screen', true)
      await fay.calls.video(placed.id, 'camera', false)
      assert.deepEqual(fay.calls.get(placed.id)?.sending, ['screen'])
      const framesBefore = gus.calls.get(placed.id)?.videoFramesIn ?? 0
      await until('the video keeps coming', () => (gus.calls.get(placed.id)?.videoFramesIn ?? 0) > framesBefore + 10, 10_000)
      await gus.calls.video(placed.id, 'camera', true)
      await until('the browser sees gus', () => framesSeen > 10, 10_000)

      // A second offer (the page was reloaded) replaces the leg.
      const again = new AudioPeer()
      try {
        await again.pc.setLocalDescription(await again.pc.createOffer())
        await until('candidates', () => again.pc.iceGatheringState === 'complete', 5_000)
        await fay.calls.attachBrowser(placed.id, again.pc.localDescription?.sdp ?? '')
        await until('the old leg is closed', () => ['closed', 'failed', 'disconnected'].includes(browser.pc.connectionState), 10_000)
      } finally {
        again.close()
      }
      // A malformed offer is refused with a reason, and the call goes on.
      await assert.rejects(
        fay.calls.attachBrowser(placed.id, 'not an sdp'),
        (err: Error & { code?: string }) => err.code === 'INVALID_REQUEST'
      )
      assert.equal(fay.calls.get(placed.id)?.state, 'active')
      await fay.calls.hangUp(placed.id)
      assert.equal((await gus.calls.ended(placed.id)).outcome, 'completed')
    } finally {
      for (const c of counters) c.stop()
      camera.stop()
      browser.close()
    }
  })
})
