import { useId, useMemo, useState } from 'react'
import { describeError } from '../api.ts'
import { setStatus, unreadIn } from '../client.ts'
import { shortWhen } from '../format.ts'
import { type ConvRef, convKey, type State, setState, toast, useStore } from '../store.ts'
import type { Message, Presence } from '../types.ts'
import { NewGroupDialog } from './ContactsView.tsx'
import { Avatar, Badge, GroupAvatar, PRESENCE_WORDS, PresenceMark } from './common.tsx'
import { Icon } from './icons.tsx'

interface Row {
  key: string
  ref: ConvRef
  title: string
  presence: Presence | undefined
  last: Message | undefined
  subtitle: string
  unread: number
  sortAt: number
  typing: boolean
}

function rowsOf(s: State): Row[] {
  const me = s.session?.name ?? ''
  const rows: Row[] = []
  const lastOf = (conv: string | undefined): Message | undefined => {
    const list = conv === undefined ? undefined : s.messages[conv]
    return list?.[list.length - 1]
  }
  const typingIn = (conv: string | undefined): boolean =>
    conv !== undefined && Object.values(s.typing[conv] ?? {}).some((until) => until > Date.now())
  for (const c of s.contacts) {
    if (c.state !== 'accepted') continue
    const ref: ConvRef = { kind: 'direct', name: c.name }
    const conv = convKey(ref, s)
    const last = lastOf(conv)
    rows.push({
      key: `d/${c.name}`,
      ref,
      title: c.name,
      presence: c.presence ?? 'offline',
      last,
      subtitle: last === undefined ? (c.mood !== undefined && c.mood !== '' ? c.mood : 'Say hello') : preview(last, me),
      unread: unreadIn(conv, s),
      sortAt: last?.at ?? c.updatedAt,
      typing: typingIn(conv)
    })
  }
  for (const g of s.groups) {
    const ref: ConvRef = { kind: 'group', conv: g.conv }
    const last = lastOf(g.conv)
    rows.push({
      key: g.conv,
      ref,
      title: g.name || 'Group',
      presence: undefined,
      last,
      subtitle: last === undefined ? `${g.members.length} members` : `${last.from === me ? 'You' : last.from}: ${preview(last, me)}`,
      unread: unreadIn(g.conv, s),
      sortAt: last?.at ?? 0,
      typing: typingIn(g.conv)
    })
  }
  return rows.sort((a, b) => b.sortAt - a.sortAt)
}

function preview(m: Message, me: string): string {
  if (m.deleted) return 'Message deleted'
  const text = m.text.replace(/\s+/g, ' ')
  return m.from === me && !m.conv.startsWith('g:') ? `You: ${text}` : text
}

/** The left column: who I am and my status, the conversations with presence and unread counts, a filter. */
export function Sidebar() {
  const session = useStore((s) => s.session)
  const status = useStore((s) => s.status)
  const contacts = useStore((s) => s.contacts)
  const groups = useStore((s) => s.groups)
  const messages = useStore((s) => s.messages)
  const readUpTo = useStore((s) => s.readUpTo)
  const typing = useStore((s) => s.typing)
  const convByName = useStore((s) => s.convByName)
  const open = useStore((s) => s.open)
  const view = useStore((s) => s.view)
  const [filter, setFilter] = useState('')
  const [newGroup, setNewGroup] = useState(false)
  const filterId = useId()
  const statusId = useId()
  const rows = useMemo(
    () => rowsOf({ session, contacts, groups, messages, readUpTo, typing, convByName } as State),
    [session, contacts, groups, messages, readUpTo, typing, convByName]
  )
  const shown = filter.trim() === '' ? rows : rows.filter((r) => r.title.toLowerCase().includes(filter.trim().toLowerCase()))
  const requests = contacts.filter((c) => c.state === 'incoming').length
  const name = session?.name ?? ''

  const changeStatus = (presence: Presence): void => {
    void setStatus(presence).catch((err) => toast(describeError(err), 'error'))
  }

  return (
    <aside className="sidebar" aria-label="Conversations">
      <div className="me">
        <button type="button" className="me-card" onClick={() => setState({ view: 'profile' })}>
          <span className="sr-only">Your profile: </span>
          <Avatar name={name} size={40} presence={status.presence} />
          <span className="me-text">
            <span className="me-name">{session?.displayName ?? name}</span>
            <span className="me-mood">{status.mood !== '' ? status.mood : PRESENCE_WORDS[status.presence]}</span>
          </span>
        </button>
        <label className="sr-only" htmlFor={statusId}>
          Your status
        </label>
        <div className="status-select">
          <PresenceMark presence={status.presence} />
          <select id={statusId} value={status.presence} onChange={(e) => changeStatus(e.target.value as Presence)}>
            <option value="online">Online</option>
            <option value="away">Away</option>
            <option value="dnd">Do not disturb</option>
            <option value="invisible">Invisible</option>
          </select>
        </div>
      </div>
      <div className="sidebar-tools">
        <div className="search-box">
          <Icon name="search" size={18} />
          <label htmlFor={filterId} className="sr-only">
            Filter conversations
          </label>
          <input
            id={filterId}
            type="search"
            placeholder="Filter conversations"
            value={filter}
            onChange={(e) => setFilter(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && shown[0] !== undefined) setState({ view: 'chats', open: shown[0].ref })
            }}
          />
        </div>
        <button type="button" className="btn btn-ghost btn-icon" aria-label="New group" title="New group" onClick={() => setNewGroup(true)}>
          <Icon name="group" />
        </button>
      </div>
      {requests > 0 && (
        <button type="button" className="requests-pill" onClick={() => setState({ view: 'contacts' })}>
          <Icon name="addUser" size={18} />
          <span>{requests === 1 ? '1 contact request' : `${requests} contact requests`} waiting for you</span>
        </button>
      )}
      <h2 className="sidebar-heading" id="chats-heading">
        Chats
      </h2>
      {shown.length === 0 ? (
        <div className="sidebar-empty">
          {rows.length === 0 ? (
            <>
              <p>No conversations yet.</p>
              <button type="button" className="btn btn-secondary btn-sm" onClick={() => setState({ view: 'contacts' })}>
                <Icon name="addUser" size={16} /> <span>Add a contact</span>
              </button>
            </>
          ) : (
            <p>No conversation matches “{filter}”.</p>
          )}
        </div>
      ) : (
        <ul className="conv-list" aria-labelledby="chats-heading">
          {shown.map((r) => {
            const current =
              view === 'chats' &&
              open !== undefined &&
              (open.kind === 'direct' && r.ref.kind === 'direct'
                ? open.name.toLowerCase() === r.ref.name.toLowerCase()
                : open.kind === 'group' && r.ref.kind === 'group' && open.conv === r.ref.conv)
            return (
              <li key={r.key}>
                <button
                  type="button"
                  className={`conv-item${r.unread > 0 ? ' conv-unread' : ''}`}
                  aria-current={current ? 'true' : undefined}
                  onClick={() => setState({ view: 'chats', open: r.ref })}
                >
                  {r.ref.kind === 'group' ? (
                    <GroupAvatar name={r.title} size={42} />
                  ) : (
                    <Avatar name={r.title} size={42} presence={r.presence} />
                  )}
                  <span className="conv-text">
                    <span className="conv-top">
                      <span className="conv-title">{r.title}</span>
                      {r.last !== undefined && <span className="conv-time">{shortWhen(r.last.at)}</span>}
                    </span>
                    <span className="conv-bottom">
                      <span className={`conv-sub${r.typing ? ' conv-typing' : ''}`}>{r.typing ? 'typing…' : r.subtitle}</span>
                      <Badge count={r.unread} label="unread" />
                    </span>
                  </span>
                </button>
              </li>
            )
          })}
        </ul>
      )}
      {newGroup && <NewGroupDialog onClose={() => setNewGroup(false)} />}
    </aside>
  )
}
