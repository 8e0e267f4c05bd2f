import { emailProblem, LIMITS, nameProblem, passwordProblem } from '@parley/protocol'
import { type FormEvent, useEffect, useId, useRef, useState } from 'react'
import { ApiError, describeError } from '../api.ts'
import { signIn, signUp } from '../client.ts'
import { useStore } from '../store.ts'
import { Icon } from './icons.tsx'

type Mode = 'signin' | 'signup'

/** Sign in and sign up: the rules for names and passwords shown up front, errors said next to the field they concern. */
export function SignIn() {
  const session = useStore((s) => s.session)
  // Someone who signed in from this browser before signs in again; a new profile with a suggested name signs up.
  const [mode, setMode] = useState<Mode>(lastName() === undefined && session?.suggestedName != null ? 'signup' : 'signin')
  const [name, setName] = useState(lastName() ?? session?.suggestedName ?? '')
  const [password, setPassword] = useState('')
  const [confirm, setConfirm] = useState('')
  const [displayName, setDisplayName] = useState('')
  const [email, setEmail] = useState('')
  const [showPassword, setShowPassword] = useState(false)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<{ field?: 'name' | 'password' | 'confirm' | 'email'; text: string } | undefined>()
  const errorRef = useRef<HTMLDivElement>(null)
  const ids = { name: useId(), password: useId(), confirm: useId(), display: useId(), email: useId(), rules: useId(), nameRules: useId() }
  const headingRef = useRef<HTMLHeadingElement>(null)

  useEffect(() => {
    if (session?.suggestedName != null && name === '') setName(session.suggestedName)
  }, [session?.suggestedName, name])

  useEffect(() => {
    if (error !== undefined) errorRef.current?.focus()
  }, [error])

  const switchTo = (next: Mode): void => {
    setMode(next)
    setError(undefined)
    headingRef.current?.focus()
  }

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault()
    setError(undefined)
    if (mode === 'signup') {
      const np = nameProblem(name)
      if (np !== undefined) return setError({ field: 'name', text: capitalize(np) + '.' })
      const pp = passwordProblem(password, name)
      if (pp !== undefined) return setError({ field: 'password', text: capitalize(pp) + '.' })
      if (password !== confirm) return setError({ field: 'confirm', text: 'The two passwords are not the same.' })
      if (email !== '' && emailProblem(email) !== undefined)
        return setError({ field: 'email', text: capitalize(emailProblem(email) as string) + '.' })
    } else if (name === '' || password === '') {
      return setError({ field: name === '' ? 'name' : 'password', text: 'Enter your name and your password.' })
    }
    setBusy(true)
    try {
      if (mode === 'signup')
        await signUp({
          name,
          password,
          ...(displayName.trim() === '' ? {} : { displayName: displayName.trim() }),
          ...(email.trim() === '' ? {} : { email: email.trim() })
        })
      else await signIn(name, password)
      localStorage.setItem(LAST_NAME_KEY, name)
    } catch (err) {
      const code = err instanceof ApiError ? err.code : ''
      const field =
        code === 'NAME_TAKEN' || code === 'INVALID_NAME'
          ? 'name'
          : code === 'WEAK_PASSWORD'
            ? 'password'
            : code === 'INVALID_EMAIL'
              ? 'email'
              : undefined
      setError({ ...(field === undefined ? {} : { field }), text: describeError(err) })
    } finally {
      setBusy(false)
    }
  }

  const invalid = (field: 'name' | 'password' | 'confirm' | 'email') => (error?.field === field ? true : undefined)
  const describe = (field: 'name' | 'password' | 'confirm' | 'email', extra?: string) =>
    [extra, error?.field === field ? 'form-error' : undefined].filter(Boolean).join(' ') || undefined

  return (
    <div className="signin-page">
      <main className="signin-card" aria-labelledby="signin-title">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true">
            <Icon name="chat" size={22} />
          </span>
          <span className="brand-name">Parley</span>
        </div>
        <h1 id="signin-title" ref={headingRef} tabIndex={-1}>
          {mode === 'signin' ? 'Welcome back' : 'Create your account'}
        </h1>
        <p className="signin-lead">
          {mode === 'signin'
            ? 'Sign in to talk, call and share files with your contacts, directly from this computer.'
            : 'One account for all your devices. Your calls and messages go from device to device, encrypted end to end.'}
        </p>
        <div className="segmented">
          <button type="button" aria-pressed={mode === 'signin'} onClick={() => switchTo('signin')}>
            Sign in
          </button>
          <button type="button" aria-pressed={mode === 'signup'} onClick={() => switchTo('signup')}>
            Sign up
          </button>
        </div>
        <form onSubmit={(e) => void submit(e)} noValidate aria-describedby={error === undefined ? undefined : 'form-error'}>
          {error !== undefined && (
            <div id="form-error" className="form-error" role="alert" tabIndex={-1} ref={errorRef}>
              <Icon name="alert" size={18} />
              <span>{error.text}</span>
            </div>
          )}
          <div className="field">
            <label htmlFor={ids.name}>User name</label>
            <input
              id={ids.name}
              name="username"
              autoComplete="username"
              autoCapitalize="none"
              spellCheck={false}
              value={name}
              onChange={(e) => setName(e.target.value.trim())}
              aria-invalid={invalid('name')}
              aria-describedby={describe('name', mode === 'signup' ? ids.nameRules : undefined)}
              maxLength={LIMITS.name.maxLength}
              required
            />
            {mode === 'signup' && (
              <p className="hint" id={ids.nameRules}>
                {LIMITS.name.minLength} to {LIMITS.name.maxLength} characters: a letter first, then letters, digits, dots, commas, hyphens
                or underscores. Others find you by it.
              </p>
            )}
          </div>
          {mode === 'signup' && (
            <div className="field">
              <label htmlFor={ids.display}>
                Display name <span className="optional">(optional)</span>
              </label>
              <input
                id={ids.display}
                autoComplete="name"
                value={displayName}
                onChange={(e) => setDisplayName(e.target.value)}
                maxLength={LIMITS.displayName.maxLength}
              />
            </div>
          )}
          <div className="field">
            <label htmlFor={ids.password}>Password</label>
            <div className="input-with-button">
              <input
                id={ids.password}
                name="password"
                type={showPassword ? 'text' : 'password'}
                autoComplete={mode === 'signup' ? 'new-password' : 'current-password'}
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                aria-invalid={invalid('password')}
                aria-describedby={describe('password', mode === 'signup' ? ids.rules : undefined)}
                maxLength={LIMITS.password.maxLength}
                required
              />
              <button
                type="button"
                className="btn btn-ghost btn-sm"
                aria-pressed={showPassword}
                onClick={() => setShowPassword(!showPassword)}
              >
                {showPassword ? 'Hide' : 'Show'}
              </button>
            </div>
            {mode === 'signup' && <PasswordRules id={ids.rules} password={password} name={name} />}
          </div>
          {mode === 'signup' && (
            <>
              <div className="field">
                <label htmlFor={ids.confirm}>Password again</label>
                <input
                  id={ids.confirm}
                  type={showPassword ? 'text' : 'password'}
                  autoComplete="new-password"
                  value={confirm}
                  onChange={(e) => setConfirm(e.target.value)}
                  aria-invalid={invalid('confirm')}
                  aria-describedby={describe('confirm')}
                  required
                />
              </div>
              <div className="field">
                <label htmlFor={ids.email}>
                  E-mail <span className="optional">(optional, to recover the account)</span>
                </label>
                <input
                  id={ids.email}
                  type="email"
                  autoComplete="email"
                  value={email}
                  onChange={(e) => setEmail(e.target.value)}
                  aria-invalid={invalid('email')}
                  aria-describedby={describe('email')}
                  maxLength={LIMITS.email.maxLength}
                />
              </div>
            </>
          )}
          <button type="submit" className="btn btn-primary btn-lg btn-block" disabled={busy} aria-busy={busy}>
            {busy ? (mode === 'signin' ? 'Signing in…' : 'Creating your account…') : mode === 'signin' ? 'Sign in' : 'Create account'}
          </button>
        </form>
        <p className="signin-switch">
          {mode === 'signin' ? 'New to Parley? ' : 'Already have an account? '}
          <button type="button" className="link" onClick={() => switchTo(mode === 'signin' ? 'signup' : 'signin')}>
            {mode === 'signin' ? 'Create an account' : 'Sign in instead'}
          </button>
        </p>
        {session?.login !== undefined && session.login !== '' && <p className="signin-network">Network: {session.login}</p>}
      </main>
    </div>
  )
}

function PasswordRules({ id, password, name }: { id: string; password: string; name: string }) {
  const chars = [...password]
  const rules = [
    { ok: chars.length >= LIMITS.password.minLength, text: `At least ${LIMITS.password.minLength} characters` },
    { ok: new Set(chars).size >= LIMITS.password.minDistinct, text: `At least ${LIMITS.password.minDistinct} different characters` },
    {
      ok: password !== '' && (name === '' || !password.toLowerCase().includes(name.toLowerCase())),
      text: 'Does not contain your user name'
    },
    { ok: password !== '' && passwordProblem(password) !== 'that password is too common', text: 'Not a well-known password' }
  ]
  return (
    <ul className="rules" id={id} aria-label="Password rules">
      {rules.map((r) => (
        <li key={r.text} className={r.ok ? 'rule-ok' : 'rule-todo'}>
          <span className="rule-mark" aria-hidden="true">
            {r.ok ? '✓' : '○'}
          </span>
          {r.text}
          <span className="sr-only">{r.ok ? ' (met)' : ' (not yet)'}</span>
        </li>
      ))}
    </ul>
  )
}

const LAST_NAME_KEY = 'parley.lastName'

function lastName(): string | undefined {
  try {
    return localStorage.getItem(LAST_NAME_KEY) ?? undefined
  } catch {
    return undefined
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1)
}
