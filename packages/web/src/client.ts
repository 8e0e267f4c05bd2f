import { ApiError, api, describeError, onSignedOut, seg } from './api.ts'
import { directConversation } from './conv.ts'
import { EventStream } from './events.ts'
import { CallMedia, type VideoSource } from './media.ts'
import { notify } from './notify.ts'
import { ringing } from './sound.ts'
import { type ConvRef, convKey, getState, qualitySample, resetState, type State, setState, toast } from './store.ts'
import type {
  Call,
  CallRecord,
  Contact,
  EventFrame,
  Group,
  Message,
  NetView,
  OwnStatus,
  PeerPath,
  Session,
  Transfer,
  TransferProgress,
  Voicemail
} from './types.ts'

/**
 * What the client does: loads the daemon's state, keeps it current from the
 * event stream, and turns the user's actions into local API requests. The UI
 * reads the store and calls these functions; nothing here renders.
 */

const HISTORY_LIMIT = 200
const QUALITY_SAMPLES = 60
const TYPING_SHOWN_MS = 6_000

let stream: EventStream | undefined
const medias = new Map<string, CallMedia>()
const mediaListeners = new Set<() => void>()
let mediaVersion = 0

/** The browser's media leg of a call (the first call of a conference), if one is open. */
export function mediaOf(callId: string | undefined): CallMedia | undefined {
  return callId === undefined ? undefined : medias.get(callId)
}

/** For React: re-render when a leg opens, closes or changes its tracks. */
export function subscribeMedia(listener: () => void): () => void {
  mediaListeners.add(listener)
  return () => mediaListeners.delete(listener)
}

export function mediaSnapshot(): number {
  return mediaVersion
}

function mediaChanged(): void {
  mediaVersion++
  for (const l of mediaListeners) l()
}

export function me(): string {
  return getState().session?.name ?? ''
}

// Session

export async function boot(): Promise<void> {
  onSignedOut(() => {
    const s = getState().session
    if (s?.signedIn === true) void refreshSession()
  })
  stream ??= new EventStream({
    onEvent: handleEvent,
    onResync: () => {
      void refreshSession()
    },
    onStatus: (status) => setState({ stream: status })
  })
  await refreshSession()
  stream.start()
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') markOpenRead()
  })
  window.addEventListener('focus', () => markOpenRead())
}

async function refreshSession(): Promise<void> {
  let session: Session
  try {
    session = (await api.get<{ session: Session }>('/v1/session')).session
  } catch (err) {
    if (err instanceof ApiError && err.code === 'UNAUTHENTICATED') {
      setState({ session: { signedIn: false, name: null, displayName: null, peerId: '', login: '', suggestedName: null, expiresAt: null } })
      toast('This page has no key to your Parley program. Open the address it printed (with ?token=).', 'error')
      return
    }
    toast(describeError(err), 'error')
    return
  }
  const before = getState().session
  if (!session.signedIn) {
    if (before?.signedIn === true) closeAllMedia()
    resetState(session)
    return
  }
  if (before?.signedIn !== true || before.name !== session.name) resetState(session)
  else setState({ session })
  await loadAll()
}

export async function signIn(name: string, password: string): Promise<void> {
  const { session } = await api.post<{ session: Session }>('/v1/account/login', { name, password })
  await afterSignIn(session)
}

export async function signUp(body: { name: string; password: string; displayName?: string; email?: string }): Promise<void> {
  const { session } = await api.post<{ session: Session }>('/v1/account/register', body)
  await afterSignIn(session)
}

async function afterSignIn(session: Session): Promise<void> {
  resetState(session)
  await loadAll()
}

export async function signOut(): Promise<void> {
  closeAllMedia()
  const { session } = await api.post<{ session: Session }>('/v1/account/logout')
  resetState(session)
}

// Loading

async function loadAll(): Promise<void> {
  const results = await Promise.allSettled([
    loadContacts(),
    loadStatus(),
    loadGroups(),
    loadCalls(),
    loadVoicemail(),
    loadTransfers(),
    loadNet()
  ])
  const failed = results.find((r) => r.status === 'rejected')
  if (failed !== undefined && !(failed.reason instanceof ApiError && failed.reason.code === 'NOT_LOGGED_IN'))
    toast(describeError(failed.reason), 'error')
  await loadAllHistory()
}

async function loadAllHistory(): Promise<void> {
  const s = getState()
  const names = s.contacts.filter((c) => c.state !== 'blocked').map((c) => c.name)
  await Promise.allSettled([
    ...names.map((n) => loadHistory({ kind: 'direct', name: n })),
    ...s.groups.map((g) => loadHistory({ kind: 'group', conv: g.conv }))
  ])
}

export async function loadContacts(): Promise<void> {
  const { contacts, privacy } = await api.get<{ contacts: Contact[]; privacy: 'anyone' | 'contacts' }>('/v1/contacts')
  await mapConversations(contacts.map((c) => c.name))
  setState({ contacts, privacy })
}

async function mapConversations(names: string[]): Promise<void> {
  const mine = me()
  if (mine === '' || typeof crypto.subtle === 'undefined') return
  const s = getState()
  const missing = names.filter((n) => s.convByName[n.toLowerCase()] === undefined)
  if (missing.length === 0) return
  const pairs = await Promise.all(missing.map(async (n) => [n, await directConversation(mine, n)] as const))
  setState((st) => {
    const convByName = { ...st.convByName }
    const nameByConv = { ...st.nameByConv }
    for (const [n, conv] of pairs) {
      convByName[n.toLowerCase()] = conv
      nameByConv[conv] = n
    }
    return { convByName, nameByConv }
  })
}

async function loadStatus(): Promise<void> {
  setState({ status: await api.get<OwnStatus>('/v1/status') })
}

export async function loadGroups(): Promise<void> {
  setState({ groups: (await api.get<{ groups: Group[] }>('/v1/groups')).groups })
}

export async function loadCalls(): Promise<void> {
  const { calls, history } = await api.get<{ calls: Call[]; history: CallRecord[] }>('/v1/calls?limit=100')
  setState((s) => {
    const live: Record<string, Call> = {}
    for (const c of calls) live[c.id] = c
    return { calls: live, history, mediaCall: s.mediaCall !== undefined && live[s.mediaCall] !== undefined ? s.mediaCall : undefined }
  })
  updateRinging()
}

export async function loadVoicemail(): Promise<void> {
  setState({ voicemail: (await api.get<{ voicemail: Voicemail[] }>('/v1/voicemail')).voicemail })
}

export async function loadTransfers(): Promise<void> {
  const { transfers } = await api.get<{ transfers: Transfer[] }>('/v1/files')
  const byId: Record<string, Transfer> = {}
  for (const t of transfers) byId[t.id] = t
  setState({ transfers: byId })
}

async function loadTransfer(id: string): Promise<void> {
  try {
    const { transfer } = await api.get<{ transfer: Transfer }>(`/v1/files/${seg(id)}`)
    setState((s) => ({ transfers: { ...s.transfers, [id]: transfer } }))
  } catch {
    await loadTransfers().catch(() => {})
  }
}

export async function loadNet(): Promise<void> {
  setState({ net: await api.get<NetView>('/v1/net') })
}

export async function loadHistory(ref: ConvRef, limit = HISTORY_LIMIT): Promise<void> {
  const path = ref.kind === 'direct' ? `/v1/history/${seg(ref.name)}?limit=${limit}` : `/v1/groups/${seg(ref.conv)}/history?limit=${limit}`
  const { messages } = await api.get<{ messages: Message[] }>(path)
  let conv = convKey(ref, getState())
  if (ref.kind === 'direct' && messages[0] !== undefined) {
    conv = messages[0].conv
    setState((s) => ({
      convByName: { ...s.convByName, [ref.name.toLowerCase()]: conv as string },
      nameByConv: { ...s.nameByConv, [conv as string]: ref.name }
    }))
  }
  if (conv === undefined) return
  const key = conv
  setState((s) => ({ messages: { ...s.messages, [key]: messages } }))
}

// Events

let contactsTimer: ReturnType<typeof setTimeout> | undefined
let netTimer: ReturnType<typeof setTimeout> | undefined

function later(timer: ReturnType<typeof setTimeout> | undefined, work: () => Promise<void>, ms = 150): ReturnType<typeof setTimeout> {
  if (timer !== undefined) clearTimeout(timer)
  return setTimeout(() => void work().catch(() => {}), ms)
}

export function handleEvent(frame: EventFrame): void {
  const data = frame.data as Record<string, unknown>
  const type = frame.type
  if (type.startsWith('session.') || type.startsWith('account.')) {
    void refreshSession()
    return
  }
  if (getState().session?.signedIn !== true) return
  switch (type) {
    case 'message.received':
    case 'message.changed':
      void onMessage(data as unknown as Message, type === 'message.received')
      return
    case 'message.state':
      onMessageState(String(data.id), data.state as Message['state'])
      return
    case 'message.typing':
      onTyping(String(data.from), String(data.conv), data.active === true)
      return
    case 'contacts.changed': {
      const name = String(data.name ?? '')
      const before = getState().contacts.find((c) => c.name.toLowerCase() === name.toLowerCase())
      contactsTimer = later(contactsTimer, async () => {
        await loadContacts()
        const after = getState().contacts.find((c) => c.name.toLowerCase() === name.toLowerCase())
        if (after?.state === 'incoming' && before?.state !== 'incoming') {
          notify(`${after.name} wants to be your contact`, after.message ?? 'Open Contacts to accept or decline.', `contact-${name}`, () =>
            setState({ view: 'contacts' })
          )
          toast(`${after.name} sent you a contact request`)
        }
        if (after?.state === 'accepted' && before?.state === 'requested') {
          toast(`${after.name} accepted your contact request`)
          await loadHistory({ kind: 'direct', name: after.name }).catch(() => {})
        }
      })
      return
    }
    case 'presence.changed':
      setState((s) => ({
        contacts: s.contacts.map((c) =>
          c.name.toLowerCase() === String(data.name).toLowerCase()
            ? { ...c, presence: data.presence as Contact['presence'], mood: String(data.mood ?? '') }
            : c
        )
      }))
      return
    case 'presence.own':
      setState({ status: data as unknown as OwnStatus })
      return
    case 'group.changed': {
      const conv = String(data.conv)
      void loadGroups().then(() => loadHistory({ kind: 'group', conv }).catch(() => {}))
      if (data.action === 'create' && data.from !== me()) toast(`${String(data.from)} added you to a group`)
      return
    }
    case 'call.outgoing':
    case 'call.incoming':
    case 'call.state':
    case 'call.quality':
    case 'call.ended':
    case 'call.missed':
      onCall(type, data as unknown as Call)
      return
    case 'voicemail.received':
      void loadVoicemail()
      notify(`Voicemail from ${String(data.from)}`, `${Math.round(Number(data.seconds))} s`, `vm-${String(data.call)}`, () =>
        setState({ view: 'calls' })
      )
      toast(`${String(data.from)} left you a voicemail`)
      return
    case 'file.offer': {
      void loadTransfer(String(data.id))
      const files = (data.files as Array<{ path: string }> | undefined) ?? []
      const what = files.length === 1 ? (files[0]?.path ?? 'a file') : `${files.length} files`
      notify(`${String(data.from)} wants to send you ${what}`, 'Open Files to accept or decline.', `file-${String(data.id)}`, () =>
        setState({ view: 'files' })
      )
      toast(`${String(data.from)} offers ${what}`)
      return
    }
    case 'file.state':
      void loadTransfer(String(data.id))
      if (data.state === 'done' || data.state === 'failed' || data.state === 'cancelled' || data.state === 'refused')
        setState((s) => {
          const progress = { ...s.progress }
          delete progress[String(data.id)]
          return { progress }
        })
      return
    case 'file.progress':
      setState((s) => ({ progress: { ...s.progress, [String(data.id)]: data as unknown as TransferProgress } }))
      return
    case 'file.retry':
      setState((s) => {
        const id = String(data.id)
        const before = s.progress[id]
        const t = s.transfers[id]
        return {
          progress: {
            ...s.progress,
            [id]: {
              bytes: before?.bytes ?? t?.bytes ?? 0,
              total: before?.total ?? t?.total ?? 0,
              rate: 0,
              secondsLeft: null,
              retry: String(data.reason ?? '')
            }
          }
        }
      })
      return
    default:
      if (type.startsWith('net.')) netTimer = later(netTimer, loadNet, 300)
  }
}

async function onMessage(message: Message, isNew: boolean): Promise<void> {
  if (typeof message.conv !== 'string') return
  const mine = me()
  if (message.conv.startsWith('d:') && getState().nameByConv[message.conv] === undefined && message.from !== mine)
    await mapConversations([message.from])
  setState((s) => {
    const list = s.messages[message.conv] ?? []
    const index = list.findIndex((m) => m.id === message.id)
    const next = index >= 0 ? list.map((m, i) => (i === index ? message : m)) : [...list, message]
    next.sort((a, b) => a.lamport - b.lamport || (a.id < b.id ? -1 : 1))
    return { messages: { ...s.messages, [message.conv]: next } }
  })
  if (!isNew || message.from === mine) return
  onTyping(message.from, message.conv, false)
  const s = getState()
  const open = s.open === undefined ? undefined : convKey(s.open, s)
  const looking = open === message.conv && s.view === 'chats' && document.visibilityState === 'visible' && document.hasFocus()
  if (looking) {
    markOpenRead()
    return
  }
  const group = s.groups.find((g) => g.conv === message.conv)
  const title = group === undefined ? message.from : `${message.from} in ${group.name}`
  notify(title, message.text.slice(0, 140), message.conv, () => {
    setState({
      view: 'chats',
      open: group === undefined ? { kind: 'direct', name: s.nameByConv[message.conv] ?? message.from } : { kind: 'group', conv: group.conv }
    })
  })
}

function onMessageState(id: string, state: Message['state']): void {
  setState((s) => {
    for (const [conv, list] of Object.entries(s.messages)) {
      const index = list.findIndex((m) => m.id === id)
      if (index >= 0) return { messages: { ...s.messages, [conv]: list.map((m, i) => (i === index ? { ...m, state } : m)) } }
    }
    return {}
  })
}

function onTyping(from: string, conv: string, active: boolean): void {
  setState((s) => {
    const current = { ...(s.typing[conv] ?? {}) }
    if (active) current[from] = Date.now() + TYPING_SHOWN_MS
    else delete current[from]
    return { typing: { ...s.typing, [conv]: current } }
  })
  if (active) setTimeout(() => pruneTyping(), TYPING_SHOWN_MS + 50)
}

function pruneTyping(): void {
  const now = Date.now()
  setState((s) => {
    const typing: typeof s.typing = {}
    for (const [conv, who] of Object.entries(s.typing))
      typing[conv] = Object.fromEntries(Object.entries(who).filter(([, until]) => until > now))
    return { typing }
  })
}

// Reading

/** Marks the open conversation read up to its newest line, and tells the senders (read receipts). */
export function markOpenRead(): void {
  const s = getState()
  if (s.open === undefined || s.view !== 'chats' || document.visibilityState !== 'visible') return
  const conv = convKey(s.open, s)
  if (conv === undefined) return
  const list = s.messages[conv] ?? []
  const since = s.readUpTo[conv] ?? 0
  const mine = me()
  const fresh = list.filter((m) => m.from !== mine && m.at > since && !m.deleted)
  const newest = list.reduce((n, m) => Math.max(n, m.at), since)
  if (newest > since) setState((st) => ({ readUpTo: { ...st.readUpTo, [conv]: newest } }))
  const byAuthor = new Map<string, string[]>()
  for (const m of fresh) byAuthor.set(m.from, [...(byAuthor.get(m.from) ?? []), m.id])
  for (const [from, ids] of byAuthor) void api.post('/v1/messages/read', { from, ids: ids.slice(-1000) }).catch(() => {})
}

export function unreadIn(conv: string | undefined, s: State = getState()): number {
  if (conv === undefined) return 0
  const mine = s.session?.name ?? ''
  const list = s.messages[conv] ?? []
  // What came before the user's own latest line was seen (they answered it), whichever device they wrote from.
  let since = s.readUpTo[conv] ?? 0
  for (const m of list) if (m.from === mine && m.at > since) since = m.at
  return list.filter((m) => m.from !== mine && m.at > since && !m.deleted).length
}

// Messages

export async function sendMessage(ref: ConvRef, text: string, replyTo?: string): Promise<void> {
  const body = replyTo === undefined ? { text } : { text, replyTo }
  const sent =
    ref.kind === 'direct'
      ? await api.post<{ id: string; state: Message['state'] }>('/v1/messages', { to: ref.name, ...body })
      : await api.post<{ id: string; state: Message['state'] }>(`/v1/groups/${seg(ref.conv)}/messages`, body)
  if (sent.state === 'refused') toast('The message was not accepted: they take messages from their contacts only.', 'error')
  await loadHistory(ref)
}

export async function editMessage(ref: ConvRef, id: string, text: string): Promise<void> {
  const to = recipientFor(ref)
  await api.post(`/v1/messages/${seg(id)}/edit`, { to, text })
  await loadHistory(ref)
}

export async function deleteMessage(ref: ConvRef, id: string): Promise<void> {
  const to = recipientFor(ref)
  await api.post(`/v1/messages/${seg(id)}/delete`, { to })
  await loadHistory(ref)
}

/** Edits and deletes name a user; in a group the daemon sends them to the group's members whatever the name. */
function recipientFor(ref: ConvRef): string {
  if (ref.kind === 'direct') return ref.name
  const group = getState().groups.find((g) => g.conv === ref.conv)
  return group?.members.find((m) => m.toLowerCase() !== me().toLowerCase()) ?? me()
}

let typingSentAt = 0
let typingStop: ReturnType<typeof setTimeout> | undefined

/** The user typed in a direct chat: tell them (at most every 3 s), and that it stopped after 4 s without keys. */
export function typed(ref: ConvRef, active: boolean): void {
  if (ref.kind !== 'direct') return
  const now = Date.now()
  if (typingStop !== undefined) clearTimeout(typingStop)
  if (!active) {
    if (typingSentAt !== 0) void api.post('/v1/typing', { to: ref.name, active: false }).catch(() => {})
    typingSentAt = 0
    return
  }
  if (now - typingSentAt > 3000) {
    typingSentAt = now
    void api.post('/v1/typing', { to: ref.name, active: true }).catch(() => {})
  }
  typingStop = setTimeout(() => typed(ref, false), 4000)
}

export async function searchMessages(q: string): Promise<Message[]> {
  return (await api.get<{ messages: Message[] }>(`/v1/search?q=${encodeURIComponent(q)}&limit=100`)).messages
}

// Contacts

export async function addContact(name: string, message?: string): Promise<void> {
  await api.post('/v1/contacts', message === undefined || message === '' ? { name } : { name, message })
  await loadContacts()
}

export async function contactAction(name: string, action: 'accept' | 'decline' | 'block' | 'remove'): Promise<void> {
  await api.post(`/v1/contacts/${seg(name)}/${action}`)
  await loadContacts()
  if (action === 'accept') await loadHistory({ kind: 'direct', name }).catch(() => {})
  if (action === 'block' || action === 'remove') {
    const open = getState().open
    if (open?.kind === 'direct' && open.name.toLowerCase() === name.toLowerCase() && action === 'block') setState({ open: undefined })
  }
}

export async function setStatus(presence: OwnStatus['presence'], mood?: string): Promise<void> {
  setState({ status: await api.put<OwnStatus>('/v1/status', mood === undefined ? { presence } : { presence, mood }) })
}

export async function setPrivacy(privacy: 'anyone' | 'contacts'): Promise<void> {
  const r = await api.put<{ privacy: 'anyone' | 'contacts' }>('/v1/settings/privacy', { privacy })
  setState({ privacy: r.privacy })
}

export async function createGroup(name: string, members: string[]): Promise<Group> {
  const { group } = await api.post<{ group: Group }>('/v1/groups', { name, members })
  await loadGroups()
  await loadHistory({ kind: 'group', conv: group.conv }).catch(() => {})
  return group
}

export async function leaveGroup(conv: string): Promise<void> {
  await api.post(`/v1/groups/${seg(conv)}/leave`)
  await loadGroups()
  setState({ open: undefined })
}

export async function inviteToGroup(conv: string, members: string[]): Promise<void> {
  await api.post(`/v1/groups/${seg(conv)}/invite`, { members })
  await loadGroups()
}

// Calls

function onCall(type: string, call: Call): void {
  setState((s) => {
    const calls = { ...s.calls }
    const quality = { ...s.quality }
    if (call.state === 'ended') delete calls[call.id]
    else calls[call.id] = call
    if (type === 'call.quality' && call.quality !== null)
      quality[call.id] = [...(quality[call.id] ?? []), qualitySample(call.quality)].slice(-QUALITY_SAMPLES)
    return { calls, quality }
  })
  if (type === 'call.incoming') {
    setState({ callExpanded: true })
    notify(`${call.peer} is calling`, call.video ? 'Video call' : 'Voice call', `call-${call.id}`, () => setState({ callExpanded: true }))
  }
  if (type === 'call.missed')
    notify(`Missed call from ${call.peer}`, new Date(call.startedAt).toLocaleTimeString(), `missed-${call.id}`, () =>
      setState({ view: 'calls' })
    )
  if (call.state === 'ended') {
    if (call.direction === 'outgoing' && call.outcome !== 'completed' && call.outcome !== 'cancelled')
      toast(`${call.peer}: ${outcomeWords(call.outcome, 'outgoing')}${call.reason === null ? '' : ` (${call.reason})`}`)
    void loadCalls().catch(() => {})
    afterCallEnded()
  }
  updateRinging()
}

/** Closes the media leg once no call of its conference is left. */
function afterCallEnded(): void {
  const s = getState()
  const key = s.mediaCall
  if (key === undefined) return
  const live = Object.values(s.calls).some((c) => c.id === key || c.conference === key)
  if (!live) {
    medias.get(key)?.close()
    medias.delete(key)
    setState({ mediaCall: undefined, callExpanded: true })
    mediaChanged()
  }
}

function closeAllMedia(): void {
  for (const m of medias.values()) m.close()
  medias.clear()
  ringing(undefined)
  mediaChanged()
}

function updateRinging(): void {
  const calls = Object.values(getState().calls)
  if (calls.some((c) => c.direction === 'incoming' && c.state === 'ringing')) ringing('incoming')
  else if (calls.some((c) => c.direction === 'outgoing' && c.state === 'calling' && c.conference === null)) ringing('outgoing')
  else ringing(undefined)
}

async function openMedia(call: Call, video: boolean): Promise<void> {
  setState((s) => ({ calls: { ...s.calls, [call.id]: call }, mediaCall: call.id, callExpanded: true }))
  try {
    const media = await CallMedia.open(call.id, { video })
    media.onChange = mediaChanged
    media.onScreenEnded = () => void setVideo('none').catch(() => {})
    medias.set(call.id, media)
    mediaChanged()
    if (!media.hasMicrophone) toast('No microphone was found or allowed: they will not hear you.', 'error')
    if (video) await api.put(`/v1/calls/${seg(call.id)}/video`, { camera: true }).catch(() => {})
  } catch (err) {
    toast(`The call's sound could not start: ${describeError(err)}`, 'error')
    await api.post(`/v1/calls/${seg(call.id)}/hangup`).catch(() => {})
    throw err
  }
}

export async function placeCall(to: string, video: boolean): Promise<void> {
  const current = getState().mediaCall
  if (current !== undefined && getState().calls[current] !== undefined) {
    toast('You are already in a call: use "Add people" to bring them in.', 'error')
    return
  }
  const { call } = await api.post<{ call: Call }>('/v1/calls', { to, media: 'browser' })
  if (call.state === 'ended') {
    toast(`${to}: ${outcomeWords(call.outcome, 'outgoing')}${call.reason === null ? '' : ` (${call.reason})`}`, 'error')
    void loadCalls()
    return
  }
  await openMedia(call, video)
}

export async function answerCall(id: string, video: boolean): Promise<void> {
  const { call } = await api.post<{ call: Call }>(`/v1/calls/${seg(id)}/answer`, { media: 'browser' })
  ringing(undefined)
  await openMedia(call, video)
}

export async function declineCall(id: string): Promise<void> {
  await api.post(`/v1/calls/${seg(id)}/decline`)
  ringing(undefined)
}

/** Hangs up every call of the conference (or the one call) the media leg belongs to, or one call given. */
export async function hangUp(id?: string): Promise<void> {
  const s = getState()
  const key = id ?? s.mediaCall
  if (key === undefined) return
  const ids =
    id !== undefined
      ? [id]
      : Object.values(s.calls)
          .filter((c) => c.id === key || c.conference === key)
          .map((c) => c.id)
  await Promise.allSettled(ids.map((c) => api.post(`/v1/calls/${seg(c)}/hangup`)))
  if (id === undefined) {
    medias.get(key)?.close()
    medias.delete(key)
    setState((st) => {
      const calls = { ...st.calls }
      for (const c of ids) delete calls[c]
      return { calls, mediaCall: undefined }
    })
    mediaChanged()
    updateRinging()
  }
}

export async function setMuted(muted: boolean): Promise<void> {
  const key = getState().mediaCall
  if (key === undefined) return
  medias.get(key)?.setMuted(muted)
  const { call } = await api.put<{ call: Call }>(`/v1/calls/${seg(key)}/mute`, { muted })
  setState((s) => ({ calls: { ...s.calls, [call.id]: call } }))
}

export async function setHeld(held: boolean): Promise<void> {
  const s = getState()
  const key = s.mediaCall
  if (key === undefined) return
  const ids = Object.values(s.calls)
    .filter((c) => c.id === key || c.conference === key)
    .map((c) => c.id)
  await Promise.all(ids.map((id) => api.put(`/v1/calls/${seg(id)}/hold`, { held })))
}

export async function setVideo(source: VideoSource): Promise<void> {
  const media = mediaOf(getState().mediaCall)
  if (media === undefined) return
  await media.setVideoSource(source)
  mediaChanged()
}

export async function addToCall(to: string): Promise<void> {
  const key = getState().mediaCall
  if (key === undefined) return
  const { call } = await api.post<{ call: Call }>('/v1/calls', { to, conference: key, media: 'browser' })
  setState((s) => ({ calls: { ...s.calls, [call.id]: call } }))
}

export function markMissedSeen(): void {
  setState({ missedSeenAt: Date.now() })
}

export function outcomeWords(outcome: Call['outcome'] | CallRecord['outcome'], direction: 'incoming' | 'outgoing'): string {
  switch (outcome) {
    case 'completed':
      return direction === 'incoming' ? 'Incoming call' : 'Outgoing call'
    case 'missed':
      return 'Missed call'
    case 'no-answer':
      return 'No answer'
    case 'declined':
      return direction === 'incoming' ? 'Declined by you' : 'Declined'
    case 'busy':
      return 'Busy'
    case 'cancelled':
      return direction === 'incoming' ? 'Missed (they hung up)' : 'Cancelled'
    case 'answered-elsewhere':
      return 'Answered on another device'
    case 'unavailable':
      return 'Not reachable'
    case 'failed':
      return 'Call failed'
    default:
      return 'Call'
  }
}

// Files

export async function sendFiles(to: string, paths: string[]): Promise<void> {
  const { transfer } = await api.post<{ transfer: Transfer }>('/v1/files', { to, paths })
  setState((s) => ({ transfers: { ...s.transfers, [transfer.id]: transfer } }))
}

/**
 * Uploads a file picked in the browser to this user's daemon, which offers it
 * (`POST /v1/files/upload?to=&name=`, the file itself as the body). XHR, not
 * fetch: it reports the upload's progress.
 */
export function uploadFile(to: string, file: File, onProgress?: (sent: number, total: number) => void): Promise<Transfer> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', `/v1/files/upload?to=${encodeURIComponent(to)}&name=${encodeURIComponent(file.name)}`)
    xhr.setRequestHeader('content-type', 'application/octet-stream')
    xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size)
    xhr.onerror = () => reject(new ApiError('NO_DAEMON', 'The Parley program on this computer does not answer. Is it still running?', 0))
    xhr.onload = () => {
      let body: { transfer?: Transfer; error?: { code?: string; message?: string } } = {}
      try {
        body = JSON.parse(xhr.responseText) as typeof body
      } catch {
        // not JSON
      }
      if (xhr.status >= 200 && xhr.status < 300 && body.transfer !== undefined) {
        const transfer = body.transfer
        setState((s) => ({ transfers: { ...s.transfers, [transfer.id]: transfer } }))
        resolve(transfer)
      } else {
        reject(new ApiError(body.error?.code ?? `HTTP_${xhr.status}`, body.error?.message ?? xhr.statusText, xhr.status))
      }
    }
    xhr.send(file)
  })
}

export async function fileAction(id: string, action: 'accept' | 'decline' | 'cancel', folder?: string): Promise<void> {
  const { transfer } = await api.post<{ transfer: Transfer }>(`/v1/files/${seg(id)}/${action}`, action === 'accept' ? { folder } : {})
  setState((s) => ({ transfers: { ...s.transfers, [transfer.id]: transfer } }))
}

// Network

export async function checkPath(name: string): Promise<void> {
  setState((s) => ({ paths: { ...s.paths, [name.toLowerCase()]: 'checking' } }))
  try {
    const path = await api.get<PeerPath>(`/v1/net/peer/${seg(name)}`)
    setState((s) => ({ paths: { ...s.paths, [name.toLowerCase()]: path } }))
  } catch (err) {
    setState((s) => ({ paths: { ...s.paths, [name.toLowerCase()]: { error: describeError(err) } } }))
  }
}
