import { Fragment, type KeyboardEvent, useEffect, useId, useLayoutEffect, useRef, useState } from 'react'
import { describeError } from '../api.ts'
import {
  contactAction,
  deleteMessage,
  editMessage,
  inviteToGroup,
  leaveGroup,
  loadHistory,
  markOpenRead,
  me,
  placeCall,
  searchMessages,
  sendMessage,
  typed,
  uploadFile
} from '../client.ts'
import { clock, dayLabel, isSameDay } from '../format.ts'
import { type ConvRef, convKey, setState, toast, useStore } from '../store.ts'
import type { Message, MessageState } from '../types.ts'
import { Avatar, Button, Dialog, GroupAvatar, PRESENCE_WORDS, PresenceMark } from './common.tsx'
import { EmojiPicker } from './EmojiPicker.tsx'
import { Icon, type IconName } from './icons.tsx'

/** What each state of a line of mine means, in words and with an icon of its own shape. */
const STATE_SHOWN: Record<MessageState, { icon: IconName; short: string; long: string } | undefined> = {
  pending: { icon: 'clock', short: 'Sending', long: 'Sending: waiting for a way to reach them' },
  stored: { icon: 'inbox', short: 'Stored for later', long: 'Stored for later: they are offline; it is kept on the network for them' },
  delivered: { icon: 'check', short: 'Delivered', long: 'Delivered to their device' },
  read: { icon: 'checks', short: 'Read', long: 'Read' },
  refused: { icon: 'alert', short: 'Not accepted', long: 'Not accepted: they take messages from their contacts only' },
  received: undefined
}

export function ChatView({ conv }: { conv: ConvRef }) {
  const key = useStore((s) => convKey(conv, s))
  const list = useStore((s) => (key === undefined ? undefined : s.messages[key]))
  const contact = useStore((s) =>
    conv.kind === 'direct' ? s.contacts.find((c) => c.name.toLowerCase() === conv.name.toLowerCase()) : undefined
  )
  const group = useStore((s) => (conv.kind === 'group' ? s.groups.find((g) => g.conv === conv.conv) : undefined))
  const typingMap = useStore((s) => (key === undefined ? undefined : s.typing[key]))
  const readUpTo = useStore((s) => (key === undefined ? 0 : (s.readUpTo[key] ?? 0)))
  const messages = list ?? []
  const mine = me()
  const title = conv.kind === 'direct' ? conv.name : (group?.name ?? 'Group')
  const [replyTo, setReplyTo] = useState<Message | undefined>()
  const [editing, setEditing] = useState<Message | undefined>()
  const [deleting, setDeleting] = useState<Message | undefined>()
  const [searching, setSearching] = useState(false)
  const [highlight, setHighlight] = useState<string | undefined>()
  const [inviting, setInviting] = useState(false)
  const [firstUnreadAt] = useState(readUpTo)
  const composerRef = useRef<HTMLTextAreaElement>(null)
  const logRef = useRef<HTMLDivElement>(null)
  const [active, setActive] = useState<string | undefined>()
  const atBottom = useRef(true)

  useEffect(() => {
    void loadHistory(conv).catch(() => {})
    composerRef.current?.focus()
  }, [conv])

  // biome-ignore lint/correctness/useExhaustiveDependencies: read marks follow the lines shown
  useEffect(() => {
    markOpenRead()
  }, [messages.length, key])

  useLayoutEffect(() => {
    const log = logRef.current
    if (log !== null && atBottom.current) log.scrollTop = log.scrollHeight
  })

  const typingNames = Object.entries(typingMap ?? {})
    .filter(([, until]) => until > Date.now())
    .map(([name]) => name)
  const presence = contact?.presence ?? 'offline'
  const offline = conv.kind === 'direct' && (presence === 'offline' || presence === 'invisible')
  const blocked = contact?.state === 'blocked'
  const notContact = conv.kind === 'direct' && contact?.state !== 'accepted'
  const lastMine = [...messages].reverse().find((m) => m.from === mine && !m.deleted)

  const jumpTo = (id: string): void => {
    setHighlight(id)
    setActive(id)
    const el = document.getElementById(`msg-${id}`)
    el?.scrollIntoView({ block: 'center', behavior: 'smooth' })
    el?.focus({ preventScroll: true })
    setTimeout(() => setHighlight((h) => (h === id ? undefined : h)), 2500)
  }

  const startEdit = (m: Message): void => {
    setReplyTo(undefined)
    setEditing(m)
    composerRef.current?.focus()
  }

  const onLogKey = (e: KeyboardEvent<HTMLDivElement>): void => {
    const ids = messages.filter((m) => !m.deleted).map((m) => m.id)
    if (ids.length === 0) return
    const index = active === undefined ? ids.length - 1 : ids.indexOf(active)
    const move = (to: number): void => {
      e.preventDefault()
      const id = ids[Math.max(0, Math.min(ids.length - 1, to))]
      if (id === undefined) return
      setActive(id)
      document.getElementById(`msg-${id}`)?.focus()
    }
    if (e.key === 'ArrowUp') move(index - 1)
    else if (e.key === 'ArrowDown') move(index + 1)
    else if (e.key === 'Home') move(0)
    else if (e.key === 'End') move(ids.length - 1)
    else {
      const m = messages.find((x) => x.id === active)
      if (m === undefined || (e.target as HTMLElement).tagName === 'BUTTON') return
      if (e.key === 'r' || e.key === 'Enter') {
        e.preventDefault()
        setEditing(undefined)
        setReplyTo(m)
        composerRef.current?.focus()
      } else if (e.key === 'e' && m.from === mine) {
        e.preventDefault()
        startEdit(m)
      } else if (e.key === 'Delete' && m.from === mine) {
        e.preventDefault()
        setDeleting(m)
      }
    }
  }

  const tabStop = active ?? [...messages].reverse().find((m) => !m.deleted)?.id

  return (
    <section className="chat" aria-label={`Conversation with ${title}`}>
      <header className="chat-header">
        {conv.kind === 'direct' ? (
          <Avatar name={title} size={40} presence={notContact ? undefined : presence} />
        ) : (
          <GroupAvatar name={title} size={40} />
        )}
        <div className="chat-title">
          <h1>{title}</h1>
          <div className="chat-subtitle">
            {conv.kind === 'direct' ? (
              notContact ? (
                <span>{contact?.state === 'requested' ? 'Contact request sent: waiting for them' : 'Not in your contacts'}</span>
              ) : (
                <>
                  <PresenceMark presence={presence} withWord />
                  {contact?.mood !== undefined && contact.mood !== '' && <span className="mood">“{contact.mood}”</span>}
                </>
              )
            ) : (
              <span>
                {groupMembers(group?.members ?? [], mine)}
                {group?.topic ? ` · ${group.topic}` : ''}
              </span>
            )}
          </div>
        </div>
        <div className="chat-actions">
          {conv.kind === 'direct' && (
            <>
              <Button
                icon="phone"
                variant="ghost"
                label={`Voice call ${title}`}
                disabled={blocked}
                onClick={() => void placeCall(conv.name, false).catch((err) => toast(describeError(err), 'error'))}
              />
              <Button
                icon="video"
                variant="ghost"
                label={`Video call ${title}`}
                disabled={blocked}
                onClick={() => void placeCall(conv.name, true).catch((err) => toast(describeError(err), 'error'))}
              />
            </>
          )}
          <Button
            icon="search"
            variant="ghost"
            label="Search in this conversation"
            pressed={searching}
            onClick={() => setSearching(!searching)}
          />
          <ChatMenu conv={conv} title={title} blocked={blocked} onInvite={() => setInviting(true)} />
        </div>
      </header>
      {searching && key !== undefined && <HistorySearch conv={key} onJump={jumpTo} onClose={() => setSearching(false)} />}
      {offline && !notContact && (
        <div className="banner banner-info" role="note">
          <Icon name="inbox" size={18} />
          <span>
            {title} is {PRESENCE_WORDS[presence].toLowerCase()}. What you send now is stored for later on the network and delivered when
            they come back.
          </span>
        </div>
      )}
      {blocked && (
        <div className="banner banner-warn" role="note">
          <Icon name="block" size={18} /> You blocked {title}. They cannot reach you, and you cannot write to them.
        </div>
      )}
      <div
        className="messages"
        ref={logRef}
        role="log"
        aria-label={`Messages with ${title}`}
        aria-live="polite"
        onScroll={(e) => {
          const el = e.currentTarget
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80
        }}
        onKeyDown={onLogKey}
      >
        {messages.length >= 200 && messages.length < 1000 && (
          <div className="load-older">
            <button type="button" className="btn btn-ghost btn-sm" onClick={() => void loadHistory(conv, 1000)}>
              Load older messages
            </button>
          </div>
        )}
        {messages.length === 0 && (
          <div className="chat-empty">
            <p>
              This is the beginning of your conversation with <strong>{title}</strong>.
            </p>
            <p>Messages go straight from your device to theirs, encrypted end to end.</p>
          </div>
        )}
        {messages.map((m, i) => {
          const prev = messages[i - 1]
          const newDay = prev === undefined || !isSameDay(prev.at, m.at)
          const firstUnread =
            m.from !== mine &&
            m.at > firstUnreadAt &&
            (prev === undefined || prev.from === mine || prev.at <= firstUnreadAt) &&
            firstUnreadAt > 0
          const grouped = !newDay && prev !== undefined && prev.from === m.from && m.at - prev.at < 5 * 60_000 && !prev.deleted
          const target = m.replyTo === null ? undefined : messages.find((x) => x.id === m.replyTo)
          return (
            <Fragment key={m.id}>
              {newDay && (
                <div className="day-separator">
                  <span>{dayLabel(m.at)}</span>
                </div>
              )}
              {firstUnread && (
                <div className="unread-separator">
                  <span>New messages</span>
                </div>
              )}
              <MessageRow
                m={m}
                mine={m.from === mine}
                showAuthor={conv.kind === 'group' && !grouped && m.from !== mine}
                grouped={grouped}
                target={target}
                tabStop={tabStop === m.id}
                highlighted={highlight === m.id}
                showState={lastMine?.id === m.id}
                onFocus={() => setActive(m.id)}
                onReply={() => {
                  setEditing(undefined)
                  setReplyTo(m)
                  composerRef.current?.focus()
                }}
                onEdit={() => startEdit(m)}
                onDelete={() => setDeleting(m)}
                onJump={jumpTo}
              />
            </Fragment>
          )
        })}
      </div>
      <div className="typing-line" aria-live="polite">
        {typingNames.length > 0 && (
          <>
            <span className="typing-dots" aria-hidden="true">
              <span />
              <span />
              <span />
            </span>
            {typingNames.join(', ')} {typingNames.length === 1 ? 'is' : 'are'} typing…
          </>
        )}
      </div>
      {blocked ? null : (
        <Composer
          conv={conv}
          title={title}
          composerRef={composerRef}
          replyTo={replyTo}
          editing={editing}
          onCancel={() => {
            setReplyTo(undefined)
            setEditing(undefined)
          }}
          onEditLast={() => lastMine !== undefined && startEdit(lastMine)}
          onSent={() => {
            atBottom.current = true
            setReplyTo(undefined)
            setEditing(undefined)
          }}
        />
      )}
      {deleting !== undefined && (
        <Dialog title="Delete this message?" onClose={() => setDeleting(undefined)}>
          <p className="quote">{deleting.text}</p>
          <p>It is deleted for everyone in the conversation.</p>
          <div className="dialog-actions">
            <Button onClick={() => setDeleting(undefined)}>Keep it</Button>
            <Button
              variant="danger"
              icon="trash"
              onClick={() => {
                const m = deleting
                setDeleting(undefined)
                void deleteMessage(conv, m.id).catch((err) => toast(describeError(err), 'error'))
                composerRef.current?.focus()
              }}
            >
              Delete
            </Button>
          </div>
        </Dialog>
      )}
      {inviting && group !== undefined && <InviteDialog conv={group.conv} members={group.members} onClose={() => setInviting(false)} />}
    </section>
  )
}

/** "You, bob_web and carol_x", or a count for a big group. */
function groupMembers(members: string[], mine: string): string {
  const others = members.filter((m) => m.toLowerCase() !== mine.toLowerCase())
  if (others.length > 4) return `You and ${others.length} others`
  return ['You', ...others].join(', ').replace(/, ([^,]*)$/, ' and $1')
}

function MessageRow({
  m,
  mine,
  showAuthor,
  grouped,
  target,
  tabStop,
  highlighted,
  showState,
  onFocus,
  onReply,
  onEdit,
  onDelete,
  onJump
}: {
  m: Message
  mine: boolean
  showAuthor: boolean
  grouped: boolean
  target: Message | undefined
  tabStop: boolean
  highlighted: boolean
  showState: boolean
  onFocus: () => void
  onReply: () => void
  onEdit: () => void
  onDelete: () => void
  onJump: (id: string) => void
}) {
  const state = mine ? STATE_SHOWN[m.state] : undefined
  const time = clock(m.at)
  const label = `${mine ? 'You' : m.from}, ${time}${m.edited ? ', edited' : ''}${state === undefined ? '' : `, ${state.short}`}`
  if (m.deleted)
    return (
      <div className={`msg ${mine ? 'msg-mine' : 'msg-theirs'} msg-deleted${grouped ? ' msg-grouped' : ''}`} id={`msg-${m.id}`}>
        <div className="bubble">
          <Icon name="trash" size={14} /> <em>{mine ? 'You deleted this message' : 'This message was deleted'}</em>
        </div>
      </div>
    )
  return (
    <article
      className={`msg ${mine ? 'msg-mine' : 'msg-theirs'}${grouped ? ' msg-grouped' : ''}${highlighted ? ' msg-highlight' : ''}`}
      id={`msg-${m.id}`}
      tabIndex={tabStop ? 0 : -1}
      aria-label={label}
      onFocus={(e) => {
        if (e.target === e.currentTarget) onFocus()
      }}
    >
      {showAuthor && <div className="msg-author">{m.from}</div>}
      <div className="bubble">
        {m.replyTo !== null && (
          <button type="button" className="reply-quote" tabIndex={-1} onClick={() => target !== undefined && onJump(target.id)}>
            <span className="reply-author">{target === undefined ? 'Reply' : target.from === me() ? 'You' : target.from}</span>
            <span className="reply-text">
              {target === undefined ? 'an earlier message' : target.deleted ? 'deleted message' : target.text}
            </span>
          </button>
        )}
        <div className="msg-text">{m.text}</div>
        <div className="msg-meta">
          {m.edited && <span className="msg-edited">edited</span>}
          <time dateTime={new Date(m.at).toISOString()}>{time}</time>
          {state !== undefined && (
            <span className={`msg-state msg-state-${m.state}`} title={state.long}>
              <Icon name={state.icon} size={14} />
              {showState || m.state === 'refused' || m.state === 'stored' ? (
                <span>{state.short}</span>
              ) : (
                <span className="sr-only">{state.short}</span>
              )}
            </span>
          )}
        </div>
      </div>
      <div className="msg-actions">
        <button
          type="button"
          className="btn btn-ghost btn-sm btn-icon"
          tabIndex={tabStop ? 0 : -1}
          aria-label="Reply"
          title="Reply (R)"
          onClick={onReply}
        >
          <Icon name="reply" size={16} />
        </button>
        {mine && (
          <>
            <button
              type="button"
              className="btn btn-ghost btn-sm btn-icon"
              tabIndex={tabStop ? 0 : -1}
              aria-label="Edit"
              title="Edit (E)"
              onClick={onEdit}
            >
              <Icon name="edit" size={16} />
            </button>
            <button
              type="button"
              className="btn btn-ghost btn-sm btn-icon"
              tabIndex={tabStop ? 0 : -1}
              aria-label="Delete"
              title="Delete (Delete key)"
              onClick={onDelete}
            >
              <Icon name="trash" size={16} />
            </button>
          </>
        )}
      </div>
    </article>
  )
}

function Composer({
  conv,
  title,
  composerRef,
  replyTo,
  editing,
  onCancel,
  onEditLast,
  onSent
}: {
  conv: ConvRef
  title: string
  composerRef: React.RefObject<HTMLTextAreaElement | null>
  replyTo: Message | undefined
  editing: Message | undefined
  onCancel: () => void
  onEditLast: () => void
  onSent: () => void
}) {
  const [text, setText] = useState('')
  const [picking, setPicking] = useState(false)
  const [sending, setSending] = useState(false)
  const inputId = useId()

  useEffect(() => {
    if (editing !== undefined) setText(editing.text)
  }, [editing])

  const submit = async (): Promise<void> => {
    const value = text.trim()
    if (value === '' || sending) return
    setSending(true)
    try {
      if (editing !== undefined) await editMessage(conv, editing.id, value)
      else await sendMessage(conv, value, replyTo?.id)
      setText('')
      typed(conv, false)
      onSent()
    } catch (err) {
      toast(describeError(err), 'error')
    } finally {
      setSending(false)
      composerRef.current?.focus()
    }
  }

  const insert = (emoji: string): void => {
    const el = composerRef.current
    const start = el?.selectionStart ?? text.length
    const end = el?.selectionEnd ?? text.length
    setText(text.slice(0, start) + emoji + text.slice(end))
    setPicking(false)
    requestAnimationFrame(() => {
      el?.focus()
      el?.setSelectionRange(start + emoji.length, start + emoji.length)
    })
  }

  return (
    <div className="composer-wrap">
      {(replyTo !== undefined || editing !== undefined) && (
        <div className="composer-context">
          <Icon name={editing !== undefined ? 'edit' : 'reply'} size={16} />
          <span className="composer-context-text">
            {editing !== undefined ? 'Editing your message' : `Replying to ${replyTo?.from === me() ? 'yourself' : replyTo?.from}`}:{' '}
            <span className="muted">{(editing ?? replyTo)?.text}</span>
          </span>
          <Button
            icon="close"
            variant="ghost"
            size="sm"
            label={editing !== undefined ? 'Cancel editing' : 'Cancel reply'}
            onClick={() => {
              if (editing !== undefined) setText('')
              onCancel()
              composerRef.current?.focus()
            }}
          />
        </div>
      )}
      <form
        className="composer"
        onSubmit={(e) => {
          e.preventDefault()
          void submit()
        }}
      >
        <div className="emoji-anchor">
          <Button icon="smile" variant="ghost" label="Emoji" pressed={picking} onClick={() => setPicking(!picking)} />
          {picking && (
            <EmojiPicker
              onPick={insert}
              onClose={() => {
                setPicking(false)
                composerRef.current?.focus()
              }}
            />
          )}
        </div>
        {conv.kind === 'direct' && (
          <>
            <label htmlFor={`${inputId}-file`} className="btn btn-ghost btn-icon" title="Send a file">
              <Icon name="paperclip" />
              <span className="sr-only">Send a file to {title}</span>
            </label>
            <input
              id={`${inputId}-file`}
              className="sr-only file-pick"
              type="file"
              multiple
              onChange={(e) => {
                const picked = [...(e.target.files ?? [])]
                e.target.value = ''
                for (const file of picked) {
                  toast(`Handing ${file.name} to Parley for ${title}…`)
                  void uploadFile(conv.name, file)
                    .then(() => toast(`${file.name} offered to ${title}: they decide whether to take it (see Files)`))
                    .catch((err) => toast(`${file.name}: ${describeError(err)}`, 'error'))
                }
              }}
            />
          </>
        )}
        <label htmlFor={inputId} className="sr-only">
          Message to {title}
        </label>
        <textarea
          id={inputId}
          ref={composerRef}
          className="composer-input"
          rows={1}
          placeholder={`Message ${title}`}
          value={text}
          onChange={(e) => {
            setText(e.target.value)
            typed(conv, e.target.value !== '')
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
              e.preventDefault()
              void submit()
            } else if (e.key === 'Escape' && (replyTo !== undefined || editing !== undefined)) {
              e.preventDefault()
              if (editing !== undefined) setText('')
              onCancel()
            } else if (e.key === 'ArrowUp' && text === '') {
              e.preventDefault()
              onEditLast()
            }
          }}
          onBlur={() => typed(conv, false)}
          aria-describedby={`${inputId}-hint`}
        />
        <span id={`${inputId}-hint`} className="sr-only">
          Enter sends, Shift and Enter starts a new line, Up arrow edits your last message.
        </span>
        <Button
          type="submit"
          icon="send"
          variant="primary"
          label={editing !== undefined ? 'Save the edit' : 'Send'}
          disabled={text.trim() === '' || sending}
        />
      </form>
    </div>
  )
}

function HistorySearch({ conv, onJump, onClose }: { conv: string; onJump: (id: string) => void; onClose: () => void }) {
  const [q, setQ] = useState('')
  const [results, setResults] = useState<Message[] | undefined>()
  const [error, setError] = useState<string | undefined>()
  const inputRef = useRef<HTMLInputElement>(null)
  useEffect(() => inputRef.current?.focus(), [])
  const run = async (): Promise<void> => {
    if (q.trim() === '') return
    try {
      setError(undefined)
      setResults((await searchMessages(q.trim())).filter((m) => m.conv === conv))
    } catch (err) {
      setError(describeError(err))
    }
  }
  return (
    <search className="history-search">
      <form
        onSubmit={(e) => {
          e.preventDefault()
          void run()
        }}
      >
        <Icon name="search" size={18} />
        <input
          ref={inputRef}
          type="search"
          aria-label="Search this conversation"
          placeholder="Search this conversation"
          value={q}
          onChange={(e) => setQ(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Escape') onClose()
          }}
        />
        <Button type="submit" size="sm" variant="secondary">
          Search
        </Button>
        <Button icon="close" variant="ghost" size="sm" label="Close search" onClick={onClose} />
      </form>
      <div aria-live="polite">
        {error !== undefined && <p className="form-error-inline">{error}</p>}
        {results !== undefined && (
          <>
            <p className="search-count">{results.length === 0 ? 'Nothing found.' : `${results.length} found`}</p>
            <ul className="search-results">
              {results.map((m) => (
                <li key={m.id}>
                  <button type="button" onClick={() => onJump(m.id)}>
                    <span className="search-meta">
                      {m.from === me() ? 'You' : m.from} · {dayLabel(m.at)} {clock(m.at)}
                    </span>
                    <span className="search-text">{highlightText(m.text, q.trim())}</span>
                  </button>
                </li>
              ))}
            </ul>
          </>
        )}
      </div>
    </search>
  )
}

function highlightText(text: string, q: string) {
  const words = q.split(/\s+/).filter((w) => w.length > 0)
  if (words.length === 0) return text
  const re = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`, 'ig')
  let offset = 0
  return text.split(re).map((part, i) => {
    const at = offset
    offset += part.length
    return i % 2 === 1 ? <mark key={`at-${at}`}>{part}</mark> : part
  })
}

function ChatMenu({ conv, title, blocked, onInvite }: { conv: ConvRef; title: string; blocked: boolean; onInvite: () => void }) {
  const [open, setOpen] = useState(false)
  const [confirm, setConfirm] = useState<'block' | 'remove' | 'leave' | undefined>()
  const menuRef = useRef<HTMLDivElement>(null)
  const buttonRef = useRef<HTMLDivElement>(null)
  useEffect(() => {
    if (!open) return
    menuRef.current?.querySelector<HTMLButtonElement>('button')?.focus()
    const onDown = (e: MouseEvent): void => {
      if (!buttonRef.current?.contains(e.target as Node)) setOpen(false)
    }
    document.addEventListener('mousedown', onDown)
    return () => document.removeEventListener('mousedown', onDown)
  }, [open])
  const items =
    conv.kind === 'direct'
      ? [
          ...(blocked ? [] : [{ label: `Block ${title}`, icon: 'block' as const, run: () => setConfirm('block') }]),
          { label: 'Remove from contacts', icon: 'trash' as const, run: () => setConfirm('remove') }
        ]
      : [
          { label: 'Add people', icon: 'addUser' as const, run: onInvite },
          { label: 'Leave the group', icon: 'logout' as const, run: () => setConfirm('leave') }
        ]
  return (
    <div className="menu-anchor" ref={buttonRef}>
      <Button icon="more" variant="ghost" label="More actions" pressed={undefined} onClick={() => setOpen(!open)} />
      {open && (
        <div
          className="menu"
          role="menu"
          ref={menuRef}
          tabIndex={-1}
          onKeyDown={(e) => {
            const buttons = [...(menuRef.current?.querySelectorAll<HTMLButtonElement>('button') ?? [])]
            const i = buttons.indexOf(document.activeElement as HTMLButtonElement)
            if (e.key === 'Escape') setOpen(false)
            else if (e.key === 'ArrowDown') buttons[(i + 1) % buttons.length]?.focus()
            else if (e.key === 'ArrowUp') buttons[(i - 1 + buttons.length) % buttons.length]?.focus()
          }}
        >
          {items.map((item) => (
            <button
              key={item.label}
              type="button"
              role="menuitem"
              onClick={() => {
                setOpen(false)
                item.run()
              }}
            >
              <Icon name={item.icon} size={18} /> {item.label}
            </button>
          ))}
        </div>
      )}
      {confirm !== undefined && (
        <Dialog
          title={confirm === 'block' ? `Block ${title}?` : confirm === 'remove' ? `Remove ${title}?` : `Leave ${title}?`}
          onClose={() => setConfirm(undefined)}
        >
          <p>
            {confirm === 'block'
              ? `${title} will not be able to write to you, call you or see when you are online. They are not told.`
              : confirm === 'remove'
                ? `${title} leaves your contacts. Your conversation stays here.`
                : 'You will no longer get the messages of this group.'}
          </p>
          <div className="dialog-actions">
            <Button onClick={() => setConfirm(undefined)}>Cancel</Button>
            <Button
              variant="danger"
              onClick={() => {
                const what = confirm
                setConfirm(undefined)
                const work = conv.kind === 'direct' ? contactAction(conv.name, what as 'block' | 'remove') : leaveGroup(conv.conv)
                void work
                  .then(() => {
                    if (what === 'remove' || what === 'leave') setState({ open: undefined })
                  })
                  .catch((err) => toast(describeError(err), 'error'))
              }}
            >
              {confirm === 'block' ? 'Block' : confirm === 'remove' ? 'Remove' : 'Leave'}
            </Button>
          </div>
        </Dialog>
      )}
    </div>
  )
}

function InviteDialog({ conv, members, onClose }: { conv: string; members: string[]; onClose: () => void }) {
  const contacts = useStore((s) => s.contacts)
  const [chosen, setChosen] = useState<string[]>([])
  const candidates = contacts.filter((c) => c.state === 'accepted' && !members.some((m) => m.toLowerCase() === c.name.toLowerCase()))
  return (
    <Dialog title="Add people to the group" onClose={onClose}>
      {candidates.length === 0 ? (
        <p>All your contacts are in this group already.</p>
      ) : (
        <fieldset className="checklist">
          <legend className="sr-only">Contacts</legend>
          {candidates.map((c) => (
            <label key={c.name} className="check-row">
              <input
                type="checkbox"
                checked={chosen.includes(c.name)}
                onChange={(e) => setChosen(e.target.checked ? [...chosen, c.name] : chosen.filter((n) => n !== c.name))}
              />
              <Avatar name={c.name} size={28} /> {c.name}
            </label>
          ))}
        </fieldset>
      )}
      <div className="dialog-actions">
        <Button onClick={onClose}>Cancel</Button>
        <Button
          variant="primary"
          disabled={chosen.length === 0}
          onClick={() => {
            void inviteToGroup(conv, chosen)
              .then(onClose)
              .catch((err) => toast(describeError(err), 'error'))
          }}
        >
          Add
        </Button>
      </div>
    </Dialog>
  )
}
