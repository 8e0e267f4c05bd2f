import { type ReactNode, useEffect, useId, useRef } from 'react'
import { hueOf, initials } from '../format.ts'
import type { Presence } from '../types.ts'
import { Icon, type IconName } from './icons.tsx'

export const PRESENCE_WORDS: Record<Presence, string> = {
  online: 'Online',
  away: 'Away',
  dnd: 'Do not disturb',
  invisible: 'Invisible',
  offline: 'Offline'
}

/**
 * Presence as a shape (filled dot, half-filled clock face, bar, hollow ring)
 * as well as a colour, so it reads without colour vision; the word is given
 * to screen readers, and shown beside it with `withWord`.
 */
export function PresenceMark({ presence, withWord = false }: { presence: Presence; withWord?: boolean }) {
  const shown = presence === 'invisible' ? 'offline' : presence
  return (
    <span className={`presence presence-${shown}`}>
      <svg className="presence-shape" width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" focusable="false">
        {shown === 'online' && <circle cx="6" cy="6" r="5" />}
        {shown === 'away' && (
          <>
            <circle cx="6" cy="6" r="4.5" className="ring" />
            <path d="M6 3v3.3l2 1.2" className="hand" />
          </>
        )}
        {shown === 'dnd' && (
          <>
            <circle cx="6" cy="6" r="5" />
            <rect x="3" y="5" width="6" height="2" className="bar" />
          </>
        )}
        {shown === 'offline' && <circle cx="6" cy="6" r="4.2" className="ring" />}
      </svg>
      {withWord ? (
        <span className="presence-word">{PRESENCE_WORDS[presence]}</span>
      ) : (
        <span className="sr-only">{PRESENCE_WORDS[presence]}</span>
      )}
    </span>
  )
}

export function Avatar({ name, size = 40, presence }: { name: string; size?: number; presence?: Presence | undefined }) {
  return (
    <span
      className="avatar"
      style={{ width: size, height: size, fontSize: size * 0.38, ['--hue' as string]: String(hueOf(name)) }}
      aria-hidden="true"
    >
      {initials(name)}
      {presence !== undefined && (
        <span className="avatar-presence">
          <PresenceMark presence={presence} />
        </span>
      )}
    </span>
  )
}

export function GroupAvatar({ name, size = 40 }: { name: string; size?: number }) {
  return (
    <span
      className="avatar avatar-group"
      style={{ width: size, height: size, ['--hue' as string]: String(hueOf(name)) }}
      aria-hidden="true"
    >
      <Icon name="group" size={size * 0.5} />
    </span>
  )
}

type ButtonProps = {
  children?: ReactNode
  icon?: IconName
  variant?: 'primary' | 'secondary' | 'ghost' | 'danger' | 'success'
  size?: 'sm' | 'md' | 'lg'
  onClick?: () => void
  type?: 'button' | 'submit'
  disabled?: boolean
  label?: string
  pressed?: boolean
  className?: string
  title?: string
  describedBy?: string
}

export function Button({
  children,
  icon,
  variant = 'secondary',
  size = 'md',
  onClick,
  type = 'button',
  disabled,
  label,
  pressed,
  className,
  title,
  describedBy
}: ButtonProps) {
  return (
    <button
      type={type}
      className={`btn btn-${variant} btn-${size}${children === undefined ? ' btn-icon' : ''}${className === undefined ? '' : ` ${className}`}`}
      onClick={onClick}
      disabled={disabled}
      aria-label={label}
      aria-pressed={pressed}
      aria-describedby={describedBy}
      title={title ?? (children === undefined ? label : undefined)}
    >
      {icon !== undefined && <Icon name={icon} size={size === 'lg' ? 24 : size === 'sm' ? 16 : 20} />}
      {children !== undefined && <span>{children}</span>}
    </button>
  )
}

/**
 * A modal dialog on the native <dialog> element: it keeps focus inside,
 * closes with Escape, and gives focus back to what opened it.
 */
export function Dialog({
  title,
  onClose,
  children,
  role = 'dialog',
  className
}: {
  title: string
  onClose: () => void
  children: ReactNode
  role?: 'dialog' | 'alertdialog'
  className?: string
}) {
  const ref = useRef<HTMLDialogElement>(null)
  const titleId = useId()
  useEffect(() => {
    const dialog = ref.current
    if (dialog === null) return
    const opener = document.activeElement as HTMLElement | null
    if (!dialog.open) dialog.showModal()
    return () => {
      dialog.close()
      opener?.focus?.()
    }
  }, [])
  return (
    <dialog
      ref={ref}
      className={`dialog${className === undefined ? '' : ` ${className}`}`}
      aria-labelledby={titleId}
      role={role === 'alertdialog' ? 'alertdialog' : undefined}
      onCancel={(e) => {
        e.preventDefault()
        onClose()
      }}
    >
      <div className="dialog-head">
        <h2 id={titleId}>{title}</h2>
        <Button icon="close" variant="ghost" label="Close" onClick={onClose} />
      </div>
      <div className="dialog-body">{children}</div>
    </dialog>
  )
}

export function Empty({ icon, title, children }: { icon: IconName; title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <div className="empty-icon">
        <Icon name={icon} size={32} />
      </div>
      <h2>{title}</h2>
      {children !== undefined && <div className="empty-text">{children}</div>}
    </div>
  )
}

export function Badge({ count, label }: { count: number; label: string }) {
  if (count <= 0) return null
  return (
    <span className="badge">
      <span aria-hidden="true">{count > 99 ? '99+' : count}</span>
      <span className="sr-only">
        , {count} {label}
      </span>
    </span>
  )
}

/** A page-level heading bar of the main pane. */
export function PaneHeader({ title, subtitle, children }: { title: ReactNode; subtitle?: ReactNode; children?: ReactNode }) {
  return (
    <header className="pane-header">
      <div className="pane-title">
        <h1>{title}</h1>
        {subtitle !== undefined && <div className="pane-subtitle">{subtitle}</div>}
      </div>
      {children !== undefined && <div className="pane-actions">{children}</div>}
    </header>
  )
}
