import { useEffect, useRef, useState, useSyncExternalStore } from 'react'
import { describeError } from '../api.ts'
import {
  addToCall,
  answerCall,
  declineCall,
  hangUp,
  mediaOf,
  mediaSnapshot,
  setHeld,
  setMuted,
  setVideo,
  subscribeMedia
} from '../client.ts'
import { duration } from '../format.ts'
import type { VideoSource } from '../media.ts'
import { type QualitySample, setState, toast, useStore } from '../store.ts'
import type { Call } from '../types.ts'
import { Avatar, Button, Dialog } from './common.tsx'
import { Icon } from './icons.tsx'

function useMediaVersion(): number {
  return useSyncExternalStore(subscribeMedia, mediaSnapshot)
}

function useNow(every = 1000): number {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), every)
    return () => clearInterval(t)
  }, [every])
  return now
}

/** Everything about calls drawn above the app: the incoming call, the call screen or its compact bar, and the call's sound. */
export function CallLayer() {
  const calls = useStore((s) => s.calls)
  const mediaCall = useStore((s) => s.mediaCall)
  const expanded = useStore((s) => s.callExpanded)
  const ringingCall = Object.values(calls).find((c) => c.direction === 'incoming' && c.state === 'ringing')
  const mine = Object.values(calls).filter((c) => mediaCall !== undefined && (c.id === mediaCall || c.conference === mediaCall))
  return (
    <>
      <CallAudio callId={mediaCall} />
      {mine.length > 0 &&
        mediaCall !== undefined &&
        (expanded ? <CallScreen key={mediaCall} callId={mediaCall} calls={mine} /> : <CallBar calls={mine} />)}
      {ringingCall !== undefined && <IncomingCall call={ringingCall} busy={mine.length > 0} />}
    </>
  )
}

/** The other side's sound: a received stream plays only through a media element. */
function CallAudio({ callId }: { callId: string | undefined }) {
  useMediaVersion()
  const ref = useRef<HTMLAudioElement>(null)
  const media = mediaOf(callId)
  useEffect(() => {
    const el = ref.current
    if (el === null) return
    const stream = media?.remote
    if (el.srcObject !== (stream ?? null)) el.srcObject = stream ?? null
    if (stream !== undefined) void el.play().catch(() => {})
  })
  // biome-ignore lint/a11y/useMediaCaption: live call audio has no captions to give
  return <audio ref={ref} autoPlay className="call-audio" data-call={callId ?? ''} />
}

function IncomingCall({ call, busy }: { call: Call; busy: boolean }) {
  const [working, setWorking] = useState(false)
  const act = (work: () => Promise<void>): void => {
    setWorking(true)
    void work()
      .catch((err) => toast(describeError(err), 'error'))
      .finally(() => setWorking(false))
  }
  return (
    <Dialog title={`${call.peer} is calling`} onClose={() => act(() => declineCall(call.id))} role="alertdialog" className="incoming">
      <div className="incoming-body">
        <div className="incoming-avatar">
          <span className="pulse" aria-hidden="true" />
          <Avatar name={call.peer} size={96} />
        </div>
        <p className="incoming-kind">
          <Icon name={call.video ? 'video' : 'phone'} size={18} /> {call.video ? 'Video call' : 'Voice call'}
          {busy ? ' · answering ends your current call' : ''}
        </p>
        <div className="incoming-actions">
          <Button variant="danger" size="lg" icon="hangup" disabled={working} onClick={() => act(() => declineCall(call.id))}>
            Decline
          </Button>
          <Button
            variant="success"
            size="lg"
            icon="phone"
            disabled={working}
            onClick={() =>
              act(async () => {
                if (busy) await hangUp()
                await answerCall(call.id, false)
              })
            }
          >
            Answer
          </Button>
          <Button
            variant="success"
            size="lg"
            icon="video"
            disabled={working}
            onClick={() =>
              act(async () => {
                if (busy) await hangUp()
                await answerCall(call.id, true)
              })
            }
          >
            With video
          </Button>
        </div>
      </div>
    </Dialog>
  )
}

function stateWords(call: Call, now: number): string {
  switch (call.state) {
    case 'calling':
      return 'Calling…'
    case 'ringing':
      return 'Ringing…'
    case 'connecting':
      return 'Connecting…'
    case 'active':
      return call.held ? 'On hold' : duration(call.answeredAt === null ? call.seconds : (now - call.answeredAt) / 1000)
    case 'ended':
      return 'Ended'
  }
}

function CallBar({ calls }: { calls: Call[] }) {
  const now = useNow()
  const first = calls[0] as Call
  const names = calls.map((c) => c.peer).join(', ')
  return (
    <section className="call-bar" aria-label="Call in progress">
      <span className="call-bar-dot" aria-hidden="true" />
      <span className="call-bar-text">
        <strong>{names}</strong> · {stateWords(first, now)}
        {first.muted ? ' · muted' : ''}
      </span>
      <Button size="sm" variant="secondary" icon="expand" onClick={() => setState({ callExpanded: true })}>
        Show call
      </Button>
      <Button size="sm" variant="danger" icon="hangup" onClick={() => void hangUp().catch((err) => toast(describeError(err), 'error'))}>
        Hang up
      </Button>
    </section>
  )
}

function CallScreen({ callId, calls }: { callId: string; calls: Call[] }) {
  useMediaVersion()
  const now = useNow()
  const media = mediaOf(callId)
  const main = calls.find((c) => c.id === callId) ?? (calls[0] as Call)
  const samples = useStore((s) => s.quality[callId])
  const [adding, setAdding] = useState(false)
  const [busy, setBusy] = useState<string | undefined>()
  const remoteRef = useRef<HTMLVideoElement>(null)
  const localRef = useRef<HTMLVideoElement>(null)
  const headingRef = useRef<HTMLHeadingElement>(null)
  const source: VideoSource = media?.videoSource ?? 'none'
  const remoteVideoTrack = media?.remote.getVideoTracks().find((t) => t.readyState === 'live')
  const showRemoteVideo = calls.some((c) => c.remoteVideo) && remoteVideoTrack !== undefined

  useEffect(() => headingRef.current?.focus(), [])

  useEffect(() => {
    const el = remoteRef.current
    if (el === null || remoteVideoTrack === undefined) return
    const stream = el.srcObject as MediaStream | null
    if (stream?.getVideoTracks()[0] !== remoteVideoTrack) el.srcObject = new MediaStream([remoteVideoTrack])
  })
  useEffect(() => {
    const el = localRef.current
    const track = media?.localVideo
    if (el === null || track === undefined) return
    const stream = el.srcObject as MediaStream | null
    if (stream?.getVideoTracks()[0] !== track) el.srcObject = new MediaStream([track])
  })

  const act = (what: string, work: () => Promise<void>): void => {
    setBusy(what)
    void work()
      .catch((err) => toast(describeError(err), 'error'))
      .finally(() => setBusy(undefined))
  }

  const names = calls.map((c) => c.peer)
  const title = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`
  const notes: string[] = []
  for (const c of calls) {
    if (c.remoteHeld) notes.push(`${c.peer} put the call on hold`)
    if (c.remoteMuted) notes.push(`${c.peer} muted their microphone`)
  }
  if (main.held) notes.push('You put the call on hold: they cannot hear you and you cannot hear them')
  if (media !== undefined && !media.hasMicrophone) notes.push('No microphone: they cannot hear you')

  return (
    <section className="call-screen" aria-labelledby="call-title">
      <div className="call-top">
        <div>
          <h2 id="call-title" ref={headingRef} tabIndex={-1}>
            {title}
          </h2>
          <p className="call-state" aria-live="polite">
            {stateWords(main, now)}
            {main.state === 'active' && main.path !== null && <span className="call-path"> · {pathWords(main.path)}</span>}
          </p>
        </div>
        <Button variant="ghost" icon="minimize" onClick={() => setState({ callExpanded: false })}>
          Back to chats
        </Button>
      </div>
      <div className={`call-stage${showRemoteVideo ? ' call-stage-video' : ''}`}>
        {showRemoteVideo ? (
          <video ref={remoteRef} className="remote-video" autoPlay playsInline muted aria-label={`Video from ${title}`} />
        ) : (
          <div className="call-avatars">
            {calls.map((c) => (
              <div key={c.id} className="call-person">
                <Avatar name={c.peer} size={calls.length > 1 ? 88 : 128} />
                <span className="call-person-name">{c.peer}</span>
                <span className="call-person-state">
                  {c.state === 'active' ? (c.remoteMuted ? 'Muted' : c.remoteHeld ? 'On hold' : 'In the call') : stateWords(c, now)}
                </span>
              </div>
            ))}
          </div>
        )}
        {media?.localVideo !== undefined && (
          <video
            ref={localRef}
            className="local-video"
            autoPlay
            playsInline
            muted
            aria-label={source === 'screen' ? 'Your shared screen' : 'Your camera'}
          />
        )}
        {source === 'screen' && (
          <div className="sharing-note" role="status">
            <Icon name="screen" size={16} /> You are sharing your screen
          </div>
        )}
      </div>
      {notes.length > 0 && (
        <ul className="call-notes" aria-live="polite">
          {notes.map((n) => (
            <li key={n}>{n}</li>
          ))}
        </ul>
      )}
      {calls.length > 1 && (
        <ul className="participants" aria-label="People in the call">
          {calls.map((c) => (
            <li key={c.id}>
              <Avatar name={c.peer} size={24} /> {c.peer}{' '}
              <span className="muted">{c.state === 'active' ? 'in the call' : stateWords(c, now)}</span>
              <Button
                size="sm"
                variant="ghost"
                icon="close"
                label={`Remove ${c.peer} from the call`}
                onClick={() => act('remove', () => hangUp(c.id))}
              />
            </li>
          ))}
        </ul>
      )}
      <QualityPanel samples={samples} call={main} />
      <div className="call-controls" role="toolbar" aria-label="Call controls">
        <CallControl
          icon={main.muted ? 'micOff' : 'mic'}
          label={main.muted ? 'Unmute' : 'Mute'}
          pressed={main.muted}
          disabled={busy !== undefined}
          onClick={() => act('mute', () => setMuted(!main.muted))}
        />
        <CallControl
          icon={source === 'camera' ? 'video' : 'videoOff'}
          label={source === 'camera' ? 'Camera off' : 'Camera on'}
          pressed={source === 'camera'}
          disabled={busy !== undefined || main.state !== 'active'}
          onClick={() => act('camera', () => setVideo(source === 'camera' ? 'none' : 'camera'))}
        />
        <CallControl
          icon="screen"
          label={source === 'screen' ? 'Stop sharing' : 'Share screen'}
          pressed={source === 'screen'}
          disabled={busy !== undefined || main.state !== 'active'}
          onClick={() => act('screen', () => setVideo(source === 'screen' ? 'none' : 'screen'))}
        />
        <CallControl
          icon={main.held ? 'play' : 'pause'}
          label={main.held ? 'Resume' : 'Hold'}
          pressed={main.held}
          disabled={busy !== undefined || main.state !== 'active'}
          onClick={() => act('hold', () => setHeld(!main.held))}
        />
        <CallControl icon="addUser" label="Add people" disabled={main.state !== 'active'} onClick={() => setAdding(true)} />
        <CallControl icon="hangup" label="Hang up" variant="danger" onClick={() => act('hangup', () => hangUp())} />
      </div>
      {adding && <AddPeopleDialog inCall={names} onClose={() => setAdding(false)} />}
    </section>
  )
}

function CallControl({
  icon,
  label,
  pressed,
  disabled,
  onClick,
  variant
}: {
  icon: Parameters<typeof Icon>[0]['name']
  label: string
  pressed?: boolean
  disabled?: boolean
  onClick: () => void
  variant?: 'danger'
}) {
  return (
    <button
      type="button"
      className={`call-control${pressed === true ? ' call-control-on' : ''}${variant === 'danger' ? ' call-control-danger' : ''}`}
      aria-pressed={pressed}
      disabled={disabled}
      onClick={onClick}
    >
      <span className="call-control-icon">
        <Icon name={icon} size={24} />
      </span>
      <span className="call-control-label">{label}</span>
    </button>
  )
}

function AddPeopleDialog({ inCall, onClose }: { inCall: string[]; onClose: () => void }) {
  const contacts = useStore((s) => s.contacts)
  const candidates = contacts.filter((c) => c.state === 'accepted' && !inCall.some((n) => n.toLowerCase() === c.name.toLowerCase()))
  return (
    <Dialog title="Add people to the call" onClose={onClose}>
      {candidates.length === 0 ? (
        <p>Everyone in your contacts is in the call already.</p>
      ) : (
        <ul className="people-list">
          {candidates.map((c) => (
            <li key={c.name} className="person">
              <Avatar name={c.name} size={32} presence={c.presence ?? 'offline'} />
              <div className="person-text">
                <span className="person-name">{c.name}</span>
              </div>
              <Button
                size="sm"
                variant="primary"
                icon="phone"
                onClick={() => {
                  void addToCall(c.name)
                    .then(onClose)
                    .catch((err) => toast(describeError(err), 'error'))
                }}
              >
                Call in
              </Button>
            </li>
          ))}
        </ul>
      )}
    </Dialog>
  )
}

/** 'host/host' → "Direct connection"; a relay at either end → "Through a relay". */
export function pathWords(path: string): string {
  if (path.includes('relay')) return 'Through a relay'
  return 'Direct connection'
}

/** The E-model's MOS in words, with as many bars (so the shape tells, not only the colour). */
export function qualityWords(mos: number | null): { word: string; bars: number; tone: string } {
  if (mos === null) return { word: 'Measuring…', bars: 0, tone: 'unknown' }
  if (mos >= 4.0) return { word: 'Excellent', bars: 4, tone: 'good' }
  if (mos >= 3.6) return { word: 'Good', bars: 3, tone: 'good' }
  if (mos >= 3.1) return { word: 'Fair', bars: 2, tone: 'fair' }
  return { word: 'Poor', bars: 1, tone: 'poor' }
}

export function SignalBars({ bars, tone }: { bars: number; tone: string }) {
  return (
    <svg className={`bars bars-${tone}`} width="22" height="16" viewBox="0 0 22 16" aria-hidden="true" focusable="false">
      {[0, 1, 2, 3].map((i) => (
        <rect key={i} x={i * 6} y={12 - i * 4} width="4" height={4 + i * 4} rx="1" className={i < bars ? 'on' : 'off'} />
      ))}
    </svg>
  )
}

function QualityPanel({ samples, call }: { samples: QualitySample[] | undefined; call: Call }) {
  const [open, setOpen] = useState(true)
  const last = samples?.[samples.length - 1]
  const q = qualityWords(last?.mos ?? call.quality?.mos ?? null)
  if (call.state !== 'active') return null
  const fmt = (v: number | null | undefined, unit: string, digits = 0) =>
    v === null || v === undefined ? '–' : `${v.toFixed(digits)} ${unit}`
  return (
    <section className="quality" aria-label="Call quality">
      <button type="button" className="quality-summary" aria-expanded={open} onClick={() => setOpen(!open)}>
        <SignalBars bars={q.bars} tone={q.tone} />
        <span>
          Quality: <strong>{q.word}</strong>
          {last?.mos !== null && last?.mos !== undefined && <span className="muted"> (MOS {last.mos.toFixed(1)} of 5)</span>}
        </span>
      </button>
      {open && (
        <div className="quality-graphs">
          <Sparkline label="Round trip" unit="ms" values={samples?.map((s) => s.rttMs) ?? []} current={fmt(last?.rttMs, 'ms')} dash="" />
          <Sparkline
            label="Jitter"
            unit="ms"
            values={samples?.map((s) => s.jitterMs) ?? []}
            current={fmt(last?.jitterMs, 'ms', 1)}
            dash="4 2"
          />
          <Sparkline
            label="Loss"
            unit="%"
            values={samples?.map((s) => s.lossPct) ?? []}
            current={fmt(last?.lossPct, '%', 1)}
            dash="1 2"
            minMax={5}
          />
        </div>
      )}
    </section>
  )
}

/** A small live line graph of the last minute: the figure is also written out beside it. */
function Sparkline({
  label,
  unit,
  values,
  current,
  dash,
  minMax = 10
}: {
  label: string
  unit: string
  values: Array<number | null>
  current: string
  dash: string
  minMax?: number
}) {
  const width = 160
  const height = 40
  const known = values.filter((v): v is number => v !== null)
  const max = Math.max(minMax, ...known) * 1.15
  const step = width / Math.max(1, 59)
  const offset = width - (values.length - 1) * step
  const points = values
    .map((v, i) => (v === null ? undefined : `${(offset + i * step).toFixed(1)},${(height - (v / max) * height).toFixed(1)}`))
    .filter((p): p is string => p !== undefined)
  return (
    <figure className="spark">
      <figcaption>
        <span className="spark-label">{label}</span>
        <span className="spark-value">{current}</span>
      </figcaption>
      <svg
        width={width}
        height={height}
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`${label} over the last minute, now ${current}, up to ${Math.round(Math.max(0, ...known))} ${unit}`}
      >
        <line x1="0" y1={height - 0.5} x2={width} y2={height - 0.5} className="spark-axis" />
        {points.length > 1 && <polyline points={points.join(' ')} className="spark-line" strokeDasharray={dash} />}
        {points.length === 1 && <circle cx={points[0]?.split(',')[0]} cy={points[0]?.split(',')[1]} r="2" className="spark-dot" />}
      </svg>
    </figure>
  )
}
