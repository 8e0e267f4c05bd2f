import { type FormEvent, useId, useState } from 'react'
import { describeError } from '../api.ts'
import { fileAction, sendFiles, uploadFile } from '../client.ts'
import { bytes, clock, dayLabel, durationWords } from '../format.ts'
import { toast, useStore } from '../store.ts'
import type { Transfer, TransferProgress } from '../types.ts'
import { Avatar, Button, Empty, PaneHeader } from './common.tsx'
import { Icon, type IconName } from './icons.tsx'

const FOLDER_KEY = 'parley.downloadFolder'

const STATE_WORDS: Record<string, { word: string; icon: IconName }> = {
  offered: { word: 'Waiting for an answer', icon: 'clock' },
  accepted: { word: 'Transferring', icon: 'download' },
  done: { word: 'Done', icon: 'check' },
  declined: { word: 'Declined', icon: 'close' },
  cancelled: { word: 'Cancelled', icon: 'close' },
  refused: { word: 'Refused', icon: 'block' },
  failed: { word: 'Failed', icon: 'alert' },
  quarantined: { word: 'Quarantined: a virus was found', icon: 'shield' }
}

function names(t: Transfer): string {
  if (t.files.length === 1) return t.files[0]?.path ?? 'a file'
  return `${t.files.length} files`
}

/** Files: send (paths on this computer: the daemon is local), accept into a folder, progress, history. */
export function FilesView() {
  const transfers = useStore((s) => s.transfers)
  const progress = useStore((s) => s.progress)
  const list = Object.values(transfers).sort((a, b) => b.createdAt - a.createdAt)
  const offers = list.filter((t) => t.direction === 'incoming' && t.state === 'offered')
  const active = list.filter((t) => t.state === 'accepted' || (t.direction === 'outgoing' && t.state === 'offered'))
  const past = list.filter((t) => !offers.includes(t) && !active.includes(t))
  return (
    <div className="pane">
      <PaneHeader title="Files" subtitle="Straight from device to device, checked piece by piece" />
      <div className="pane-body">
        <SendForm />
        {offers.length > 0 && (
          <section className="card" aria-labelledby="offers-h">
            <h2 id="offers-h">Offered to you</h2>
            <ul className="transfer-list">
              {offers.map((t) => (
                <Offer key={t.id} t={t} />
              ))}
            </ul>
          </section>
        )}
        {active.length > 0 && (
          <section className="card" aria-labelledby="active-h">
            <h2 id="active-h">In progress</h2>
            <ul className="transfer-list">
              {active.map((t) => (
                <TransferRow key={t.id} t={t} p={progress[t.id]} />
              ))}
            </ul>
          </section>
        )}
        <section className="card" aria-labelledby="past-h">
          <h2 id="past-h">History</h2>
          {past.length === 0 ? (
            <Empty icon="file" title="No files yet">
              <p>Files you send and receive are listed here.</p>
            </Empty>
          ) : (
            <ul className="transfer-list">
              {past.map((t) => (
                <TransferRow key={t.id} t={t} p={undefined} />
              ))}
            </ul>
          )}
        </section>
      </div>
    </div>
  )
}

function SendForm() {
  const contacts = useStore((s) => s.contacts)
  const accepted = contacts.filter((c) => c.state === 'accepted')
  const [to, setTo] = useState('')
  const [paths, setPaths] = useState('')
  const [busy, setBusy] = useState(false)
  const [dragging, setDragging] = useState(false)
  const [uploads, setUploads] = useState<Array<{ name: string; sent: number; total: number }>>([])
  const ids = { to: useId(), paths: useId(), hint: useId(), pick: useId() }
  const who = to || accepted[0]?.name

  const upload = async (list: FileList | File[]): Promise<void> => {
    if (who === undefined) return
    for (const file of [...list]) {
      setUploads((u) => [...u, { name: file.name, sent: 0, total: file.size }])
      try {
        await uploadFile(who, file, (sent, total) => setUploads((u) => u.map((x) => (x.name === file.name ? { ...x, sent, total } : x))))
        toast(`${file.name} offered to ${who}: they decide whether to take it`)
      } catch (err) {
        toast(`${file.name}: ${describeError(err)}`, 'error')
      } finally {
        setUploads((u) => u.filter((x) => x.name !== file.name))
      }
    }
  }

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault()
    const list = paths
      .split('\n')
      .map((p) => p.trim())
      .filter(Boolean)
    if (who === undefined || list.length === 0) return
    setBusy(true)
    try {
      await sendFiles(who, list)
      toast(`Offered to ${who}: they decide whether to take it`)
      setPaths('')
    } catch (err) {
      toast(describeError(err), 'error')
    } finally {
      setBusy(false)
    }
  }
  return (
    <section className="card" aria-labelledby="send-h">
      <h2 id="send-h">
        <Icon name="upload" /> Send files
      </h2>
      {accepted.length === 0 ? (
        <p className="muted">Files go to contacts only. Add a contact first.</p>
      ) : (
        <>
          <div className="field field-inline">
            <label htmlFor={ids.to}>To</label>
            <select id={ids.to} value={who} onChange={(e) => setTo(e.target.value)}>
              {accepted.map((c) => (
                <option key={c.name} value={c.name}>
                  {c.name}
                  {c.presence === 'offline' || c.presence === undefined ? ' (offline: they must be online to take files)' : ''}
                </option>
              ))}
            </select>
          </div>
          {/* biome-ignore lint/a11y/noStaticElementInteractions: dropping is the pointer's shortcut; the file input inside is the keyboard's way */}
          <div
            className={`drop-zone${dragging ? ' drop-zone-on' : ''}`}
            onDragOver={(e) => {
              e.preventDefault()
              setDragging(true)
            }}
            onDragLeave={() => setDragging(false)}
            onDrop={(e) => {
              e.preventDefault()
              setDragging(false)
              void upload(e.dataTransfer.files)
            }}
          >
            <Icon name="upload" size={28} />
            <p>
              Drop files here, or{' '}
              <label htmlFor={ids.pick} className="link-label">
                choose files
              </label>
            </p>
            <input
              id={ids.pick}
              className="sr-only"
              type="file"
              multiple
              onChange={(e) => {
                if (e.target.files !== null) void upload(e.target.files)
                e.target.value = ''
              }}
            />
          </div>
          {uploads.length > 0 && (
            <ul className="uploads" aria-live="polite">
              {uploads.map((u) => {
                const pct = u.total > 0 ? Math.round((u.sent / u.total) * 100) : 0
                return (
                  <li key={u.name}>
                    <span>
                      Handing {u.name} to Parley: {pct}%
                    </span>
                    <div
                      className="progress"
                      role="progressbar"
                      aria-label={`${u.name}: handed over`}
                      aria-valuemin={0}
                      aria-valuemax={100}
                      aria-valuenow={pct}
                    >
                      <div className="progress-fill" style={{ width: `${pct}%` }} />
                    </div>
                  </li>
                )
              })}
            </ul>
          )}
          <details className="by-path">
            <summary>Or send by path on this computer (big files, folders)</summary>
            <form className="send-form" onSubmit={(e) => void submit(e)}>
              <div className="field field-grow">
                <label htmlFor={ids.paths}>Files or folders on this computer</label>
                <textarea
                  id={ids.paths}
                  rows={2}
                  placeholder="/home/you/Documents/report.pdf"
                  value={paths}
                  onChange={(e) => setPaths(e.target.value)}
                  aria-describedby={ids.hint}
                  spellCheck={false}
                />
                <p className="hint" id={ids.hint}>
                  Full paths, one per line. Parley runs on this computer and reads them from disk, without a copy; folders are sent whole.
                </p>
              </div>
              <Button type="submit" variant="primary" icon="send" disabled={busy || paths.trim() === ''}>
                {busy ? 'Offering…' : 'Send'}
              </Button>
            </form>
          </details>
        </>
      )}
    </section>
  )
}

function Offer({ t }: { t: Transfer }) {
  const [folder, setFolder] = useState(() => localStorage.getItem(FOLDER_KEY) ?? '')
  const id = useId()
  const accept = (e: FormEvent): void => {
    e.preventDefault()
    if (folder.trim() === '') return
    localStorage.setItem(FOLDER_KEY, folder.trim())
    void fileAction(t.id, 'accept', folder.trim()).catch((err) => toast(describeError(err), 'error'))
  }
  return (
    <li className="transfer transfer-offer">
      <div className="transfer-head">
        <Avatar name={t.peer} size={36} />
        <div className="transfer-text">
          <span className="person-name">
            {t.peer} offers {names(t)}
          </span>
          <span className="person-sub">
            {bytes(t.total)} · {dayLabel(t.createdAt)} {clock(t.createdAt)}
          </span>
        </div>
      </div>
      {t.files.length > 1 && (
        <ul className="file-names">
          {t.files.slice(0, 10).map((f) => (
            <li key={f.path}>
              {f.path} <span className="muted">{bytes(f.size)}</span>
            </li>
          ))}
          {t.files.length > 10 && <li className="muted">and {t.files.length - 10} more</li>}
        </ul>
      )}
      <form className="inline-form" onSubmit={accept}>
        <label htmlFor={id}>Save into the folder</label>
        <input
          id={id}
          value={folder}
          placeholder="/home/you/Downloads"
          onChange={(e) => setFolder(e.target.value)}
          spellCheck={false}
          required
        />
        <Button type="submit" variant="primary" icon="download" disabled={folder.trim() === ''}>
          Accept
        </Button>
        <Button onClick={() => void fileAction(t.id, 'decline').catch((err) => toast(describeError(err), 'error'))}>Decline</Button>
      </form>
    </li>
  )
}

function TransferRow({ t, p }: { t: Transfer; p: TransferProgress | undefined }) {
  const shown = STATE_WORDS[t.state] ?? { word: t.state, icon: 'file' as IconName }
  const done = p?.bytes ?? t.bytes
  const total = p?.total ?? t.total
  const pct = total > 0 ? Math.min(100, Math.round((done / total) * 100)) : t.state === 'done' ? 100 : 0
  const running = t.state === 'accepted'
  return (
    <li className={`transfer transfer-${t.state}`}>
      <div className="transfer-head">
        <span className="transfer-dir" aria-hidden="true">
          <Icon name={t.direction === 'incoming' ? 'download' : 'upload'} />
        </span>
        <div className="transfer-text">
          <span className="person-name">{names(t)}</span>
          <span className="person-sub">
            {t.direction === 'incoming' ? `From ${t.peer}` : `To ${t.peer}`} · {bytes(t.total)} · {dayLabel(t.createdAt)}{' '}
            {clock(t.createdAt)}
            {t.folder !== null && t.state === 'done' ? ` · saved in ${t.folder}` : ''}
          </span>
        </div>
        <span className={`tag tag-${t.state}`}>
          <Icon name={shown.icon} size={14} /> {shown.word}
        </span>
        {(running || (t.direction === 'outgoing' && t.state === 'offered')) && (
          <Button
            size="sm"
            variant="ghost"
            onClick={() => void fileAction(t.id, 'cancel').catch((err) => toast(describeError(err), 'error'))}
          >
            Cancel
          </Button>
        )}
      </div>
      {running && (
        <div className="progress-wrap">
          <div
            className="progress"
            role="progressbar"
            aria-label={`${names(t)}: transferred`}
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={pct}
            aria-valuetext={`${pct}%, ${bytes(done)} of ${bytes(total)}`}
          >
            <div className="progress-fill" style={{ width: `${pct}%` }} />
          </div>
          <span className="progress-text">
            {pct}% · {bytes(done)} of {bytes(total)}
            {p !== undefined && p.rate > 0 && ` · ${bytes(p.rate)}/s`}
            {p?.secondsLeft !== null &&
              p?.secondsLeft !== undefined &&
              p.rate > 0 &&
              (p.secondsLeft < 1 ? ' · almost done' : ` · about ${durationWords(p.secondsLeft)} left`)}
            {p?.retry !== undefined && p.retry !== '' && ` · paused: ${p.retry}; trying again`}
          </span>
        </div>
      )}
      {t.reason !== null && t.state !== 'done' && <p className="transfer-reason">{t.reason}</p>}
    </li>
  )
}
