import { useEffect } from 'react'
import { me, unreadIn } from '../client.ts'
import { setTitleCount } from '../notify.ts'
import { convKey, dismissToast, type State, setState, useStore, type View } from '../store.ts'
import { CallLayer } from './CallScreen.tsx'
import { CallsView } from './CallsView.tsx'
import { ChatView } from './ChatView.tsx'
import { ContactsView } from './ContactsView.tsx'
import { Badge, Empty } from './common.tsx'
import { FilesView } from './FilesView.tsx'
import { Icon, type IconName } from './icons.tsx'
import { NetworkView } from './NetworkView.tsx'
import { ProfileView } from './ProfileView.tsx'
import { Sidebar } from './Sidebar.tsx'

const NAV: Array<{ view: View; icon: IconName; label: string }> = [
  { view: 'chats', icon: 'chat', label: 'Chats' },
  { view: 'contacts', icon: 'contacts', label: 'Contacts' },
  { view: 'calls', icon: 'phone', label: 'Calls' },
  { view: 'files', icon: 'file', label: 'Files' },
  { view: 'network', icon: 'network', label: 'Network' }
]

function totalUnread(s: State): number {
  let n = 0
  for (const c of s.contacts) if (c.state === 'accepted') n += unreadIn(convKey({ kind: 'direct', name: c.name }, s), s)
  for (const g of s.groups) n += unreadIn(g.conv, s)
  return n
}

/** Missed calls and voicemails since the user last looked at Calls. */
export function missedCount(s: State): number {
  const calls = s.history.filter(
    (h) => h.direction === 'incoming' && (h.outcome === 'missed' || h.outcome === 'cancelled') && h.startedAt > s.missedSeenAt
  ).length
  return calls + s.voicemail.filter((v) => v.at > s.missedSeenAt).length
}

/** The signed-in app: a navigation rail, the conversations sidebar, the main pane, and the call layer above them. */
export function Shell() {
  const view = useStore((s) => s.view)
  const stream = useStore((s) => s.stream)
  const toasts = useStore((s) => s.toasts)
  const unread = useStore(totalUnread)
  const requests = useStore((s) => s.contacts.filter((c) => c.state === 'incoming').length)
  const missed = useStore(missedCount)
  const offers = useStore((s) => Object.values(s.transfers).filter((t) => t.direction === 'incoming' && t.state === 'offered').length)
  const ringingFrom = useStore((s) => Object.values(s.calls).find((c) => c.direction === 'incoming' && c.state === 'ringing')?.peer)

  useEffect(() => setTitleCount(unread, ringingFrom), [unread, ringingFrom])

  const counts: Partial<Record<View, { n: number; label: string }>> = {
    chats: { n: unread, label: 'unread messages' },
    contacts: { n: requests, label: 'contact requests' },
    calls: { n: missed, label: 'missed calls and voicemails' },
    files: { n: offers, label: 'files offered' }
  }

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to the main content
      </a>
      <nav className="rail" aria-label="Sections">
        <div className="rail-brand" aria-hidden="true">
          <Icon name="chat" size={22} />
        </div>
        <ul>
          {NAV.map((item) => (
            <li key={item.view}>
              <button
                type="button"
                className="rail-item"
                aria-current={view === item.view ? 'page' : undefined}
                onClick={() => setState({ view: item.view })}
              >
                <Icon name={item.icon} size={22} />
                <span className="rail-label">{item.label}</span>
                {counts[item.view] !== undefined && <Badge count={counts[item.view]?.n ?? 0} label={counts[item.view]?.label ?? ''} />}
              </button>
            </li>
          ))}
        </ul>
        <div className="rail-bottom">
          <button
            type="button"
            className="rail-item"
            aria-current={view === 'profile' ? 'page' : undefined}
            onClick={() => setState({ view: 'profile' })}
          >
            <Icon name="user" size={22} />
            <span className="rail-label">Profile</span>
          </button>
        </div>
      </nav>
      <Sidebar />
      <main id="main" className="main" tabIndex={-1}>
        {stream === 'reconnecting' && (
          <div className="banner banner-warn" role="status">
            <Icon name="alert" size={18} /> Lost touch with the Parley program on this computer. Reconnecting…
          </div>
        )}
        <MainView view={view} />
        <CallLayer />
      </main>
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.tone}`}>
            {t.tone === 'error' && <Icon name="alert" size={18} />}
            <span>{t.text}</span>
            <button type="button" className="btn btn-ghost btn-sm btn-icon" aria-label="Dismiss" onClick={() => dismissToast(t.id)}>
              <Icon name="close" size={16} />
            </button>
          </div>
        ))}
      </div>
    </div>
  )
}

function MainView({ view }: { view: View }) {
  const open = useStore((s) => s.open)
  switch (view) {
    case 'chats':
      return open === undefined ? (
        <div className="pane">
          <Empty icon="chat" title={`Hello${me() === '' ? '' : `, ${me()}`}`}>
            <p>Pick a conversation on the left, or find people in Contacts to start one.</p>
            <p>
              <button type="button" className="btn btn-primary" onClick={() => setState({ view: 'contacts' })}>
                <Icon name="addUser" /> <span>Find people</span>
              </button>
            </p>
          </Empty>
        </div>
      ) : (
        <ChatView key={open.kind === 'direct' ? `d/${open.name}` : open.conv} conv={open} />
      )
    case 'contacts':
      return <ContactsView />
    case 'calls':
      return <CallsView />
    case 'files':
      return <FilesView />
    case 'network':
      return <NetworkView />
    case 'profile':
      return <ProfileView />
  }
}
