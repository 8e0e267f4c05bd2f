import { useEffect, useState } from 'react'
import { describeError } from '../api.ts'
import { checkPath, loadNet } from '../client.ts'
import { clock } from '../format.ts'
import { toast, useStore } from '../store.ts'
import type { NetView, PeerPath } from '../types.ts'
import { Avatar, Button, PaneHeader, PresenceMark } from './common.tsx'
import { Icon } from './icons.tsx'

function roleWords(net: NetView): { title: string; text: string } {
  return net.role === 'supernode'
    ? {
        title: 'Supernode',
        text: 'This computer is reachable from the internet and helps the network: it relays for devices behind routers, helps people find each other and keeps messages for people who are offline (it cannot read them).'
      }
    : {
        title: 'Ordinary device',
        text: 'This computer uses the network through a few supernodes. It may become a supernode by itself if it stays reachable from the internet for a while.'
      }
}

function reachWords(net: NetView): { title: string; text: string; tone: 'good' | 'warn' | 'unknown' } {
  const nat =
    net.natClass === 'symmetric'
      ? ' Your router changes its outside address for every destination (a “symmetric” NAT): calls often need a relay.'
      : net.natClass === 'cone'
        ? ' Your router keeps a stable outside address (a “cone” NAT): direct connections usually work after a little help.'
        : ''
  switch (net.reachability) {
    case 'public':
      return { title: 'Reachable from the internet', text: 'Others can connect to this computer directly.', tone: 'good' }
    case 'private':
      return {
        title: 'On a private network',
        text: 'This computer and the network it talks to are on the same private network (as in a test setup): everyone connects directly.',
        tone: 'good'
      }
    case 'nat':
      return {
        title: 'Behind a router (NAT)',
        text: `Others cannot connect to this computer on their own, so it keeps a spot on a relay where they can find it, and tries to open a direct path each time.${nat}`,
        tone: 'warn'
      }
    case 'firewalled':
      return {
        title: 'Behind a firewall',
        text: `Connections from outside are blocked. Others reach this computer through a relay, and direct paths are tried when possible.${nat}`,
        tone: 'warn'
      }
    default:
      return { title: 'Not checked yet', text: 'The check needs at least one supernode; it runs again every few minutes.', tone: 'unknown' }
  }
}

/** The network in plain words: role, NAT, supernodes, and for each contact whether the path is direct or relayed. */
export function NetworkView() {
  const net = useStore((s) => s.net)
  const contacts = useStore((s) => s.contacts)
  const paths = useStore((s) => s.paths)
  const [refreshing, setRefreshing] = useState(false)
  useEffect(() => {
    void loadNet().catch(() => {})
  }, [])
  const refresh = (): void => {
    setRefreshing(true)
    void loadNet()
      .catch((err) => toast(describeError(err), 'error'))
      .finally(() => setRefreshing(false))
  }
  const accepted = contacts.filter((c) => c.state === 'accepted')
  const role = net === undefined ? undefined : roleWords(net)
  const reach = net === undefined ? undefined : reachWords(net)
  return (
    <div className="pane">
      <PaneHeader title="Network" subtitle="How this computer takes part in the Parley network">
        <Button icon="refresh" onClick={refresh} disabled={refreshing}>
          {refreshing ? 'Refreshing…' : 'Refresh'}
        </Button>
      </PaneHeader>
      <div className="pane-body">
        {net === undefined ? (
          <p className="muted">Asking the Parley program…</p>
        ) : (
          <div className="net-grid">
            <section className="card stat" aria-labelledby="role-h">
              <h2 id="role-h">Role</h2>
              <p className="stat-value">
                <Icon name={net.role === 'supernode' ? 'shield' : 'user'} /> {role?.title}
              </p>
              <p className="muted">{role?.text}</p>
            </section>
            <section className="card stat" aria-labelledby="reach-h">
              <h2 id="reach-h">Connection from outside</h2>
              <p className={`stat-value tone-${reach?.tone}`}>
                <Icon name={reach?.tone === 'good' ? 'check' : reach?.tone === 'warn' ? 'alert' : 'clock'} /> {reach?.title}
              </p>
              <p className="muted">{reach?.text}</p>
              <dl className="facts">
                <dt>Router type (NAT)</dt>
                <dd>
                  {net.natClass === 'none'
                    ? 'None'
                    : net.natClass === 'unknown'
                      ? 'Not known yet'
                      : net.natClass === 'cone'
                        ? 'Cone'
                        : 'Symmetric'}
                </dd>
                <dt>Seen from outside as</dt>
                <dd>{net.observed.length === 0 ? '–' : net.observed.slice(0, 3).join(', ')}</dd>
                <dt>Relay spots held</dt>
                <dd>{net.relays.length}</dd>
                <dt>Last checked</dt>
                <dd>{net.checkedAt === null ? 'Not yet' : clock(Date.parse(net.checkedAt))}</dd>
              </dl>
            </section>
            <section className="card wide" aria-labelledby="sn-h">
              <h2 id="sn-h">Supernodes this computer uses</h2>
              {net.supernodes.length === 0 ? (
                <p className="muted">
                  None right now. Without a supernode, people who are not already connected to you cannot find you. Parley keeps trying (
                  {net.hostCache} known from earlier).
                </p>
              ) : (
                <>
                  <p className="muted">
                    {net.supernodes.length} connected · {net.hostCache} known from earlier, used if these go away
                  </p>
                  <ul className="sn-list">
                    {net.supernodes.map((s) => (
                      <li key={s.peerId}>
                        <Icon name="network" size={18} />
                        <code title={s.peerId}>{shortId(s.peerId)}</code>
                        <span className="muted">{s.addrs[0] ?? ''}</span>
                        <span className="sn-latency">
                          {s.latencyMs === undefined || s.latencyMs === null ? '–' : `${Math.round(s.latencyMs)} ms`}
                        </span>
                      </li>
                    ))}
                  </ul>
                </>
              )}
            </section>
            <section className="card wide" aria-labelledby="paths-h">
              <h2 id="paths-h">How you reach your contacts</h2>
              {accepted.length === 0 ? (
                <p className="muted">No contacts yet.</p>
              ) : (
                <ul className="people-list">
                  {accepted.map((c) => {
                    const p = paths[c.name.toLowerCase()]
                    return (
                      <li key={c.name} className="person">
                        <Avatar name={c.name} size={36} presence={c.presence ?? 'offline'} />
                        <div className="person-text">
                          <span className="person-name">{c.name}</span>
                          <span className="person-sub" aria-live="polite">
                            {p === undefined ? (
                              <PresenceMark presence={c.presence ?? 'offline'} withWord />
                            ) : p === 'checking' ? (
                              'Checking…'
                            ) : 'error' in p ? (
                              `Could not check: ${p.error}`
                            ) : (
                              <PathWords path={p} />
                            )}
                          </span>
                        </div>
                        <Button size="sm" disabled={p === 'checking'} onClick={() => void checkPath(c.name)}>
                          Check the path
                        </Button>
                      </li>
                    )
                  })}
                </ul>
              )}
            </section>
          </div>
        )}
      </div>
    </div>
  )
}

function PathWords({ path }: { path: PeerPath }) {
  if (path.devices.length === 0) return <span>Not online: nothing to connect to right now.</span>
  return (
    <span className="path-words">
      {path.devices.map((d, i) => (
        <span key={d.peerId} className={`path path-${d.path}`}>
          <Icon name={d.path === 'direct' ? 'direct' : d.path === 'relayed' ? 'relay' : 'close'} size={16} />
          {path.devices.length > 1 ? `Device ${i + 1}: ` : ''}
          {d.path === 'direct'
            ? 'Direct connection: nothing in between'
            : d.path === 'relayed'
              ? 'Through a relay: a supernode passes the encrypted data along'
              : 'Could not connect'}
          {d.rttMs !== undefined ? ` (${Math.round(d.rttMs)} ms there and back)` : ''}
          {d.error !== undefined ? ` (${d.error})` : ''}
        </span>
      ))}
    </span>
  )
}

function shortId(id: string): string {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id
}
