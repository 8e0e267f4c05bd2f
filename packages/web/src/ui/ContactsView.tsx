import { isValidName, LIMITS } from '@parley/protocol'
import { type FormEvent, useId, useState } from 'react'
import { ApiError, api, describeError } from '../api.ts'
import { addContact, contactAction, createGroup, me, placeCall } from '../client.ts'
import { shortWhen } from '../format.ts'
import { setState, toast, useStore } from '../store.ts'
import type { Contact, DirectoryEntry } from '../types.ts'
import { Avatar, Button, Dialog, PaneHeader, PresenceMark } from './common.tsx'
import { Icon } from './icons.tsx'

/**
 * The directory, asked through the daemon (`GET /v1/directory?q=`): until the
 * daemon has that route, an exact user name is offered as it is.
 */
async function findPeople(q: string): Promise<{ results: DirectoryEntry[]; exactOnly: boolean }> {
  try {
    const { results } = await api.get<{ results: DirectoryEntry[] }>(`/v1/directory?q=${encodeURIComponent(q)}`)
    return { results, exactOnly: false }
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 'NOT_FOUND' && err.message.startsWith('no route'))) throw err
  }
  // No directory here: the exact name is offered (a request to a name nobody has is simply never answered).
  return { results: isValidName(q) ? [{ name: q }] : [], exactOnly: true }
}

export function ContactsView() {
  const contacts = useStore((s) => s.contacts)
  const incoming = contacts.filter((c) => c.state === 'incoming')
  const accepted = contacts.filter((c) => c.state === 'accepted').sort(byPresenceThenName)
  const waiting = contacts.filter((c) => c.state === 'requested')
  const blocked = contacts.filter((c) => c.state === 'blocked')
  const online = accepted.filter((c) => c.presence !== undefined && c.presence !== 'offline' && c.presence !== 'invisible').length

  return (
    <div className="pane">
      <PaneHeader title="Contacts" subtitle={`${accepted.length} contacts · ${online} online`} />
      <div className="pane-body">
        <FindPeople />
        {incoming.length > 0 && (
          <section className="card" aria-labelledby="requests-h">
            <h2 id="requests-h">Contact requests</h2>
            <ul className="people-list">
              {incoming.map((c) => (
                <li key={c.name} className="person">
                  <Avatar name={c.name} size={40} />
                  <div className="person-text">
                    <span className="person-name">{c.name}</span>
                    <span className="person-sub">
                      {c.message !== null && c.message !== '' ? `“${c.message}”` : 'Wants to add you as a contact'}
                    </span>
                  </div>
                  <div className="person-actions">
                    <Button
                      variant="primary"
                      size="sm"
                      icon="check"
                      onClick={() => run(contactAction(c.name, 'accept'), `${c.name} is now a contact`)}
                    >
                      Accept
                    </Button>
                    <Button size="sm" onClick={() => run(contactAction(c.name, 'decline'))}>
                      Decline
                    </Button>
                    <Button
                      size="sm"
                      variant="ghost"
                      icon="block"
                      onClick={() => run(contactAction(c.name, 'block'), `${c.name} is blocked`)}
                    >
                      Block
                    </Button>
                  </div>
                </li>
              ))}
            </ul>
          </section>
        )}
        <section className="card" aria-labelledby="contacts-h">
          <h2 id="contacts-h">Your contacts</h2>
          {accepted.length === 0 ? (
            <p className="muted">No contacts yet. Find someone by name above and send them a request.</p>
          ) : (
            <ul className="people-list">
              {accepted.map((c) => (
                <ContactRow key={c.name} c={c} />
              ))}
            </ul>
          )}
        </section>
        {waiting.length > 0 && (
          <section className="card" aria-labelledby="waiting-h">
            <h2 id="waiting-h">Waiting for an answer</h2>
            <ul className="people-list">
              {waiting.map((c) => (
                <li key={c.name} className="person">
                  <Avatar name={c.name} size={40} />
                  <div className="person-text">
                    <span className="person-name">{c.name}</span>
                    <span className="person-sub">Request sent {shortWhen(c.updatedAt)}: they have not answered yet</span>
                  </div>
                  <div className="person-actions">
                    <Button size="sm" variant="ghost" onClick={() => run(contactAction(c.name, 'remove'))}>
                      Withdraw
                    </Button>
                  </div>
                </li>
              ))}
            </ul>
          </section>
        )}
        {blocked.length > 0 && (
          <section className="card" aria-labelledby="blocked-h">
            <h2 id="blocked-h">Blocked</h2>
            <ul className="people-list">
              {blocked.map((c) => (
                <li key={c.name} className="person">
                  <Avatar name={c.name} size={40} />
                  <div className="person-text">
                    <span className="person-name">{c.name}</span>
                    <span className="person-sub">Cannot write to you, call you or see you online</span>
                  </div>
                  <div className="person-actions">
                    <Button size="sm" onClick={() => run(contactAction(c.name, 'remove'), `${c.name} is no longer blocked`)}>
                      Unblock
                    </Button>
                  </div>
                </li>
              ))}
            </ul>
          </section>
        )}
      </div>
    </div>
  )
}

function run(work: Promise<unknown>, done?: string): void {
  void work.then(() => done !== undefined && toast(done)).catch((err) => toast(describeError(err), 'error'))
}

function byPresenceThenName(a: Contact, b: Contact): number {
  const rank = (c: Contact): number => ({ online: 0, dnd: 1, away: 2, invisible: 3, offline: 3 })[c.presence ?? 'offline']
  return rank(a) - rank(b) || a.name.localeCompare(b.name)
}

function ContactRow({ c }: { c: Contact }) {
  const presence = c.presence ?? 'offline'
  return (
    <li className="person">
      <Avatar name={c.name} size={40} presence={presence} />
      <div className="person-text">
        <span className="person-name">{c.name}</span>
        <span className="person-sub">
          <PresenceMark presence={presence} withWord />
          {c.mood !== undefined && c.mood !== '' && <span className="mood"> · “{c.mood}”</span>}
        </span>
      </div>
      <div className="person-actions">
        <Button
          size="sm"
          variant="ghost"
          icon="chat"
          label={`Chat with ${c.name}`}
          onClick={() => setState({ view: 'chats', open: { kind: 'direct', name: c.name } })}
        />
        <Button size="sm" variant="ghost" icon="phone" label={`Call ${c.name}`} onClick={() => run(placeCall(c.name, false))} />
        <Button size="sm" variant="ghost" icon="video" label={`Video call ${c.name}`} onClick={() => run(placeCall(c.name, true))} />
      </div>
    </li>
  )
}

function FindPeople() {
  const contacts = useStore((s) => s.contacts)
  const [q, setQ] = useState('')
  const [busy, setBusy] = useState(false)
  const [results, setResults] = useState<{ results: DirectoryEntry[]; exactOnly: boolean; q: string } | undefined>()
  const [adding, setAdding] = useState<string | undefined>()
  const inputId = useId()

  const search = async (e: FormEvent): Promise<void> => {
    e.preventDefault()
    const query = q.trim()
    if (query === '') return
    setBusy(true)
    try {
      setResults({ ...(await findPeople(query)), q: query })
    } catch (err) {
      toast(describeError(err), 'error')
    } finally {
      setBusy(false)
    }
  }

  return (
    <section className="card" aria-labelledby="find-h">
      <h2 id="find-h">Find people</h2>
      <search>
        <form className="inline-form" onSubmit={(e) => void search(e)}>
          <label htmlFor={inputId} className="sr-only">
            Name to look for
          </label>
          <input
            id={inputId}
            type="search"
            placeholder="Search the directory by name"
            value={q}
            maxLength={LIMITS.search.maxQueryLength}
            onChange={(e) => setQ(e.target.value)}
          />
          <Button type="submit" variant="primary" icon="search" disabled={busy || q.trim() === ''}>
            {busy ? 'Searching…' : 'Search'}
          </Button>
        </form>
      </search>
      <div aria-live="polite">
        {results !== undefined &&
          (results.results.length === 0 ? (
            <p className="muted">
              {results.exactOnly
                ? `“${results.q}” is not a user name: names have ${LIMITS.name.minLength} to ${LIMITS.name.maxLength} letters, digits, dots, commas, hyphens or underscores, and start with a letter.`
                : `Nobody matches “${results.q}”.`}
            </p>
          ) : (
            <ul className="people-list">
              {results.results.map((r) => {
                const known = contacts.find((c) => c.name.toLowerCase() === r.name.toLowerCase())
                const self = r.name.toLowerCase() === me().toLowerCase()
                return (
                  <li key={r.name} className="person">
                    <Avatar name={r.name} size={40} />
                    <div className="person-text">
                      <span className="person-name">{r.name}</span>
                      {r.displayName !== undefined && r.displayName !== r.name && <span className="person-sub">{r.displayName}</span>}
                    </div>
                    <div className="person-actions">
                      {self ? (
                        <span className="muted">That is you</span>
                      ) : known?.state === 'accepted' ? (
                        <span className="tag">
                          <Icon name="check" size={14} /> Contact
                        </span>
                      ) : known?.state === 'requested' ? (
                        <span className="tag">
                          <Icon name="clock" size={14} /> Request sent
                        </span>
                      ) : (
                        <Button size="sm" variant="primary" icon="addUser" onClick={() => setAdding(r.name)}>
                          {known?.state === 'incoming' ? 'Accept request' : 'Add contact'}
                        </Button>
                      )}
                    </div>
                  </li>
                )
              })}
            </ul>
          ))}
      </div>
      {adding !== undefined && <AddContactDialog name={adding} onClose={() => setAdding(undefined)} />}
    </section>
  )
}

function AddContactDialog({ name, onClose }: { name: string; onClose: () => void }) {
  const [message, setMessage] = useState(`Hi ${name}, let's talk on Parley!`)
  const id = useId()
  return (
    <Dialog title={`Add ${name}`} onClose={onClose}>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          void addContact(name, message.trim())
            .then(() => {
              toast(`Request sent to ${name}`)
              onClose()
            })
            .catch((err) => toast(describeError(err), 'error'))
        }}
      >
        <div className="field">
          <label htmlFor={id}>A few words with your request</label>
          <textarea
            id={id}
            rows={3}
            value={message}
            maxLength={LIMITS.chat.requestMessageMaxLength}
            onChange={(e) => setMessage(e.target.value)}
          />
        </div>
        <p className="hint">Once {name} accepts, you see each other online and can chat, call and send files.</p>
        <div className="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" icon="send">
            Send request
          </Button>
        </div>
      </form>
    </Dialog>
  )
}

export function NewGroupDialog({ onClose }: { onClose: () => void }) {
  const contacts = useStore((s) => s.contacts)
  const [name, setName] = useState('')
  const [chosen, setChosen] = useState<string[]>([])
  const nameId = useId()
  const accepted = contacts.filter((c) => c.state === 'accepted')
  return (
    <Dialog title="New group" onClose={onClose}>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          void createGroup(name.trim(), chosen)
            .then((g) => {
              setState({ view: 'chats', open: { kind: 'group', conv: g.conv } })
              onClose()
            })
            .catch((err) => toast(describeError(err), 'error'))
        }}
      >
        <div className="field">
          <label htmlFor={nameId}>Group name</label>
          <input id={nameId} value={name} maxLength={100} onChange={(e) => setName(e.target.value)} required />
        </div>
        {accepted.length === 0 ? (
          <p className="muted">Add contacts first: a group is made of your contacts.</p>
        ) : (
          <fieldset className="checklist">
            <legend>Members</legend>
            {accepted.map((c) => (
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
          <Button type="submit" variant="primary" disabled={name.trim() === '' || chosen.length === 0}>
            Create group
          </Button>
        </div>
      </form>
    </Dialog>
  )
}
