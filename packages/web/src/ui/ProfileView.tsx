import { LIMITS } from '@parley/protocol'
import { type FormEvent, useEffect, useId, useState } from 'react'
import { api, describeError, seg } from '../api.ts'
import { setPrivacy, setStatus, signOut } from '../client.ts'
import { askForNotifications, notificationPermission } from '../notify.ts'
import { toast, useStore } from '../store.ts'
import type { Presence, Whois } from '../types.ts'
import { Avatar, Button, PaneHeader, PRESENCE_WORDS, PresenceMark } from './common.tsx'
import { Icon } from './icons.tsx'

/** Who I am, this user's devices, presence and mood, privacy, notifications, signing out. */
export function ProfileView() {
  const session = useStore((s) => s.session)
  const status = useStore((s) => s.status)
  const privacy = useStore((s) => s.privacy)
  const [devices, setDevices] = useState<Whois | { error: string } | undefined>()
  const [mood, setMood] = useState(status.mood)
  const [permission, setPermission] = useState(notificationPermission())
  const ids = { mood: useId(), privacy: useId() }
  const name = session?.name ?? ''

  useEffect(() => {
    if (name === '') return
    void api
      .get<Whois>(`/v1/whois/${seg(name)}`)
      .then(setDevices)
      .catch((err) => setDevices({ error: describeError(err) }))
  }, [name])

  useEffect(() => setMood(status.mood), [status.mood])

  const saveMood = (e: FormEvent): void => {
    e.preventDefault()
    void setStatus(status.presence, mood)
      .then(() => toast('Mood saved'))
      .catch((err) => toast(describeError(err), 'error'))
  }

  return (
    <div className="pane">
      <PaneHeader title="Profile and settings" />
      <div className="pane-body">
        <section className="card profile-card" aria-labelledby="me-h">
          <Avatar name={name} size={72} presence={status.presence} />
          <div>
            <h2 id="me-h" className="profile-name">
              {session?.displayName ?? name}
            </h2>
            <p className="muted">
              User name <strong>{name}</strong>
            </p>
            <p className="muted">
              <PresenceMark presence={status.presence} withWord />
            </p>
          </div>
          <Button
            variant="secondary"
            icon="logout"
            className="profile-signout"
            onClick={() => void signOut().catch((err) => toast(describeError(err), 'error'))}
          >
            Sign out
          </Button>
        </section>
        <section className="card" aria-labelledby="status-h">
          <h2 id="status-h">Status and mood</h2>
          <fieldset className="radio-row">
            <legend>Show me as</legend>
            {(['online', 'away', 'dnd', 'invisible'] as Presence[]).map((p) => (
              <label key={p} className={`radio-card${status.presence === p ? ' radio-card-on' : ''}`}>
                <input
                  type="radio"
                  name="presence"
                  value={p}
                  checked={status.presence === p}
                  onChange={() => void setStatus(p).catch((err) => toast(describeError(err), 'error'))}
                />
                <PresenceMark presence={p} />
                <span>{PRESENCE_WORDS[p]}</span>
              </label>
            ))}
          </fieldset>
          <p className="hint">Invisible: you look offline to everyone and still get messages and calls.</p>
          <form className="inline-form" onSubmit={saveMood}>
            <label htmlFor={ids.mood}>Mood</label>
            <input
              id={ids.mood}
              value={mood}
              maxLength={LIMITS.presence.moodMaxLength}
              placeholder="What's on your mind?"
              onChange={(e) => setMood(e.target.value)}
            />
            <Button type="submit" variant="primary">
              Save
            </Button>
          </form>
        </section>
        <section className="card" aria-labelledby="dev-h">
          <h2 id="dev-h">Your devices</h2>
          <p className="muted">Every device you sign in on gets your messages and rings for your calls.</p>
          {devices === undefined ? (
            <p className="muted">Looking your devices up on the network…</p>
          ) : 'error' in devices ? (
            <p className="muted">Could not look them up: {devices.error}</p>
          ) : (
            <ul className="device-list">
              {(devices.devices.some((d) => d.peerId === session?.peerId)
                ? devices.devices
                : [{ peerId: session?.peerId ?? '', presence: status.presence, addrs: [], expiresAt: 0 }, ...devices.devices]
              ).map((d) => (
                <li key={d.peerId}>
                  <Icon name="screen" />
                  <div>
                    <span className="person-name">
                      {d.peerId === session?.peerId ? 'This computer' : 'Another device'} <PresenceMark presence={d.presence} withWord />
                    </span>
                    <code className="peer-id">{d.peerId}</code>
                  </div>
                </li>
              ))}
            </ul>
          )}
        </section>
        <section className="card" aria-labelledby="priv-h">
          <h2 id="priv-h">Privacy</h2>
          <fieldset className="radio-list">
            <legend>Who may send you messages</legend>
            <label>
              <input
                type="radio"
                name="privacy"
                checked={privacy === 'anyone'}
                onChange={() => void setPrivacy('anyone').catch((err) => toast(describeError(err), 'error'))}
              />
              Anyone <span className="muted">(people who are not contacts too)</span>
            </label>
            <label>
              <input
                type="radio"
                name="privacy"
                checked={privacy === 'contacts'}
                onChange={() => void setPrivacy('contacts').catch((err) => toast(describeError(err), 'error'))}
              />
              My contacts only <span className="muted">(others can still send a contact request)</span>
            </label>
          </fieldset>
        </section>
        <section className="card" aria-labelledby="notif-h">
          <h2 id="notif-h">Notifications</h2>
          <p className="muted">
            When this tab is in the background, Parley can tell you about new messages, calls, contact requests and files.
          </p>
          {permission === 'granted' ? (
            <p>
              <Icon name="check" /> Notifications are on.
            </p>
          ) : permission === 'denied' ? (
            <p>Notifications are blocked for this page in your browser's settings. The unread count still shows in the tab's title.</p>
          ) : permission === 'unsupported' ? (
            <p>This browser has no notifications. The unread count still shows in the tab's title.</p>
          ) : (
            <Button variant="primary" icon="bell" onClick={() => void askForNotifications().then(setPermission)}>
              Turn on notifications
            </Button>
          )}
        </section>
        <section className="card" aria-labelledby="about-h">
          <h2 id="about-h">About this connection</h2>
          <dl className="facts">
            <dt>Login server</dt>
            <dd>{session?.login}</dd>
            <dt>Signed in until</dt>
            <dd>{session?.expiresAt != null ? `${new Date(session.expiresAt).toLocaleString()} (renewed by itself)` : '–'}</dd>
          </dl>
        </section>
      </div>
    </div>
  )
}
