import { useEffect } from 'react'
import { describeError } from '../api.ts'
import { loadCalls, loadVoicemail, markMissedSeen, outcomeWords, placeCall } from '../client.ts'
import { clock, dayLabel, durationWords } from '../format.ts'
import { getState, toast, useStore } from '../store.ts'
import type { CallRecord } from '../types.ts'
import { pathWords, qualityWords, SignalBars } from './CallScreen.tsx'
import { Avatar, Button, Empty, PaneHeader } from './common.tsx'
import { Icon, type IconName } from './icons.tsx'

function isMissed(h: CallRecord): boolean {
  return h.direction === 'incoming' && (h.outcome === 'missed' || h.outcome === 'cancelled')
}

function iconOf(h: CallRecord): IconName {
  if (isMissed(h)) return 'missed'
  return h.direction === 'incoming' ? 'incoming' : 'outgoing'
}

/** Call history, missed calls and voicemail (played from the daemon as WAV). */
export function CallsView() {
  const history = useStore((s) => s.history)
  const voicemail = useStore((s) => s.voicemail)
  const seenAt = useStore((s) => s.missedSeenAt)
  useEffect(() => {
    const seen = getState().missedSeenAt
    void Promise.all([loadCalls(), loadVoicemail()]).catch(() => {})
    // Seen once the page is left (so the marks show while looking at them).
    return () => {
      if (getState().missedSeenAt === seen) markMissedSeen()
    }
  }, [])
  const missed = history.filter((h) => isMissed(h) && h.startedAt > seenAt).length

  return (
    <div className="pane">
      <PaneHeader title="Calls" subtitle={missed > 0 ? `${missed} missed since you last looked` : 'History and voicemail'} />
      <div className="pane-body">
        <section className="card" aria-labelledby="vm-h">
          <h2 id="vm-h">
            <Icon name="voicemail" /> Voicemail
          </h2>
          {voicemail.length === 0 ? (
            <p className="muted">No voicemail. When someone cannot reach you, they can leave you a message here.</p>
          ) : (
            <ul className="vm-list">
              {voicemail.map((v) => (
                <li key={`${v.from}/${v.call}`} className={`vm${v.at > seenAt ? ' vm-new' : ''}`}>
                  <Avatar name={v.from} size={36} />
                  <div className="vm-text">
                    <span className="person-name">
                      {v.from}
                      {v.at > seenAt && <span className="tag tag-new">New</span>}
                    </span>
                    <span className="person-sub">
                      {dayLabel(v.at)} {clock(v.at)} · {durationWords(v.seconds)}
                    </span>
                  </div>
                  {v.complete ? (
                    // biome-ignore lint/a11y/useMediaCaption: a voicemail has no captions to give
                    <audio
                      controls
                      preload="none"
                      src={`/v1/voicemail/${encodeURIComponent(v.call)}`}
                      aria-label={`Voicemail from ${v.from}`}
                    />
                  ) : (
                    <span className="muted">
                      Arriving ({v.received} of {v.parts} parts)
                    </span>
                  )}
                </li>
              ))}
            </ul>
          )}
        </section>
        <section className="card" aria-labelledby="hist-h">
          <h2 id="hist-h">
            <Icon name="phone" /> Recent calls
          </h2>
          {history.length === 0 ? (
            <Empty icon="phone" title="No calls yet">
              <p>Calls you make and get appear here, with how long they lasted and how good they sounded.</p>
            </Empty>
          ) : (
            <table className="call-table">
              <caption className="sr-only">Recent calls, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Who</th>
                  <th scope="col">What</th>
                  <th scope="col">When</th>
                  <th scope="col">Length</th>
                  <th scope="col">Quality</th>
                  <th scope="col">
                    <span className="sr-only">Call back</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {history.map((h) => {
                  const q = h.quality === null ? undefined : qualityWords(h.quality.mos)
                  return (
                    <tr key={h.id} className={isMissed(h) ? 'row-missed' : undefined}>
                      <td>
                        <span className="who">
                          <Avatar name={h.peer} size={28} /> {h.peer}
                        </span>
                      </td>
                      <td>
                        <span className={`outcome outcome-${isMissed(h) ? 'missed' : h.outcome}`}>
                          <Icon name={iconOf(h)} size={16} /> {outcomeWords(h.outcome, h.direction)}
                          {h.video ? ' (video)' : ''}
                        </span>
                      </td>
                      <td>
                        {dayLabel(h.startedAt)} {clock(h.startedAt)}
                      </td>
                      <td>{h.outcome === 'completed' ? durationWords(h.seconds) : '–'}</td>
                      <td>
                        {q === undefined || h.outcome !== 'completed' ? (
                          '–'
                        ) : (
                          <span className="quality-cell">
                            <SignalBars bars={q.bars} tone={q.tone} /> {q.word}
                            {h.path !== null && <span className="muted"> · {pathWords(h.path)}</span>}
                          </span>
                        )}
                      </td>
                      <td>
                        <Button
                          size="sm"
                          variant="ghost"
                          icon="phone"
                          label={`Call ${h.peer} back`}
                          onClick={() => void placeCall(h.peer, false).catch((err) => toast(describeError(err), 'error'))}
                        />
                      </td>
                    </tr>
                  )
                })}
              </tbody>
            </table>
          )}
        </section>
      </div>
    </div>
  )
}
