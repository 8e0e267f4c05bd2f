import { LIMITS } from './limits.ts'

/**
 * The classic naming rule: 6 to 32 characters, a letter first, then letters,
 * digits, `.`, `,`, `-`, `_`. ASCII letters only, so that no two names look
 * alike through Unicode confusables.
 */
const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9.,\-_]{5,31}$/

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_PATTERN.test(name)
}

/** Why a name is not valid, or undefined when it is. */
export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'a name must be text'
  const { minLength, maxLength } = LIMITS.name
  if (name.length < minLength || name.length > maxLength) return `a name has ${minLength} to ${maxLength} characters`
  if (!/^[A-Za-z]/.test(name)) return 'a name starts with a letter'
  if (!NAME_PATTERN.test(name)) return 'a name has only letters, digits and . , - _'
  return undefined
}

/** Names are unique case-insensitively: this is the form they are compared in. */
export function nameKey(name: string): string {
  return name.toLowerCase()
}

/** Deliberately simple: one @, something on each side, a dot in the domain. */
const EMAIL_PATTERN = /^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$/

export function emailProblem(email: unknown): string | undefined {
  if (typeof email !== 'string') return 'an e-mail address must be text'
  if (email.length > LIMITS.email.maxLength) return `an e-mail address has at most ${LIMITS.email.maxLength} characters`
  if (!EMAIL_PATTERN.test(email)) return 'that is not an e-mail address'
  return undefined
}

/** Passwords so common that an attacker tries them first. */
const COMMON_PASSWORDS = new Set([
  '1234567890',
  '0123456789',
  '12345678910',
  '1q2w3e4r5t',
  'qwertyuiop',
  'password1',
  'password12',
  'password123',
  'password1234',
  'passw0rd123',
  'iloveyou123',
  'qwerty1234',
  'qwerty12345',
  'abcdefghij',
  'abc1234567',
  'letmein123',
  'welcome123',
  'admin12345',
  'football123',
  'monkey1234',
  'dragon1234',
  'sunshine12',
  'princess12',
  'baseball12',
  'trustno123',
  'changeme123',
  'whatever12',
  'superman12',
  'michael123',
  'jennifer12',
  'starwars12'
])

/**
 * The minimum strength rule: 10 to 128 characters, at least 5 different
 * characters, not a well-known password, and not the user's own name.
 * Returns why a password is too weak, or undefined when it is acceptable.
 */
export function passwordProblem(password: unknown, name?: string): string | undefined {
  if (typeof password !== 'string') return 'a password must be text'
  const { minLength, maxLength, minDistinct } = LIMITS.password
  const chars = [...password]
  if (chars.length < minLength) return `a password has at least ${minLength} characters`
  if (chars.length > maxLength) return `a password has at most ${maxLength} characters`
  if (new Set(chars).size < minDistinct) return `a password has at least ${minDistinct} different characters`
  const lower = password.toLowerCase()
  if (COMMON_PASSWORDS.has(lower)) return 'that password is too common'
  if (name !== undefined && name.length > 0 && lower.includes(name.toLowerCase())) return 'a password must not contain the user name'
  return undefined
}
