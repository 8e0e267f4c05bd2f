import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import {
  ERROR_CODES,
  emailProblem,
  exitCodeOf,
  fromBase64Url,
  httpStatusOf,
  isValidName,
  nameKey,
  nameProblem,
  ParleyError,
  parseNetworkFile,
  passwordProblem,
  toBase64Url
} from '../src/index.ts'

describe('names', () => {
  it('follow the classic rule: 6 to 32, a letter first, then letters, digits and . , - _', () => {
    for (const good of ['abcdef', 'Alice.B', 'a,b-c_d', `a${'1'.repeat(31)}`, 'ZZZZZZ']) assert.equal(isValidName(good), true, good)
    for (const bad of ['abcde', `a${'1'.repeat(32)}`, '1abcdef', '_abcdef', 'abc def', 'abc@def', 'ábcdef', 'abcdef\n', '', 'abc/def']) {
      assert.equal(isValidName(bad), false, JSON.stringify(bad))
      assert.equal(typeof nameProblem(bad), 'string')
    }
    assert.equal(nameProblem('alice_1'), undefined)
    assert.equal(nameProblem(42), 'a name must be text')
  })

  it('agree with the problem description for any string', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        assert.equal(isValidName(s), nameProblem(s) === undefined)
      })
    )
  })

  it('compare case-insensitively', () => {
    assert.equal(nameKey('Alice_One'), nameKey('aLICE_oNE'))
  })
})

describe('passwords and e-mail', () => {
  it('need 10+ characters, 5 different ones, not common, not the name', () => {
    assert.equal(passwordProblem('correct horse battery'), undefined)
    assert.match(passwordProblem('short') ?? '', /at least 10/)
    assert.match(passwordProblem('ababababababab') ?? '', /different/)
    assert.match(passwordProblem('Password123') ?? '', /common/)
    assert.match(passwordProblem('xx-alice_1-xx', 'Alice_1') ?? '', /user name/)
    assert.match(passwordProblem('a'.repeat(100) + 'bcdefghijklmnopqrstuvwxyz0123456789') ?? '', /at most/)
    assert.equal(passwordProblem('🙂🙃😀😁😂🤣😃😄'), 'a password has at least 10 characters', 'counted in characters, not UTF-16 units')
  })

  it('checks e-mail addresses loosely but surely', () => {
    assert.equal(emailProblem('a@example.org'), undefined)
    for (const bad of ['a', 'a@b', '@b.c', 'a b@c.d', `${'x'.repeat(250)}@b.cd`]) assert.equal(typeof emailProblem(bad), 'string', bad)
  })
})

describe('base64url', () => {
  it('round-trips any bytes and accepts one text per byte string', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const text = toBase64Url(bytes)
        assert.match(text, /^[A-Za-z0-9_-]*$/)
        assert.deepEqual(fromBase64Url(text), bytes)
      })
    )
    assert.equal(fromBase64Url('AB'), undefined, 'non-zero trailing bits')
    assert.deepEqual(fromBase64Url('AA'), new Uint8Array([0]))
    assert.equal(fromBase64Url('A'), undefined)
    assert.equal(fromBase64Url('AA=='), undefined, 'no padding')
    assert.equal(fromBase64Url('a+b/'), undefined, 'not the standard alphabet')
  })
})

describe('error codes', () => {
  it('map every code to an HTTP status and an exit code; client mistakes are never 5xx', () => {
    for (const code of Object.keys(ERROR_CODES) as Array<keyof typeof ERROR_CODES>) {
      const status = httpStatusOf(code)
      assert.ok(status >= 400 && status < 600, code)
      assert.ok([1, 2].includes(exitCodeOf(code)), code)
      if (!['INTERNAL', 'UNAVAILABLE', 'NETWORK', 'NOT_IMPLEMENTED', 'NO_DAEMON'].includes(code)) assert.ok(status < 500, code)
    }
    assert.equal(exitCodeOf('USAGE'), 2)
    const e = new ParleyError('THROTTLED', 'wait', { retryAfterMs: 1500 })
    assert.deepEqual(e.toBody(), { error: { code: 'THROTTLED', message: 'wait', retryAfterMs: 1500 } })
  })
})

describe('network files', () => {
  const key = { id: 'abcdefghijkl', publicKey: toBase64Url(new Uint8Array(32).fill(1)) }
  it('accept a good one and normalize the login URL', () => {
    assert.deepEqual(parseNetworkFile({ version: 1, login: 'http://127.0.0.1:7070/', keys: [key] }), {
      version: 1,
      login: 'http://127.0.0.1:7070',
      keys: [key],
      seeds: []
    })
  })
  it('refuse broken ones with BAD_CONFIG and a reason', () => {
    const bad: unknown[] = [
      null,
      { version: 2, login: 'http://x', keys: [key] },
      { version: 1, login: 'ftp://x', keys: [key] },
      { version: 1, login: 'not a url', keys: [key] },
      { version: 1, login: 'http://x', keys: [] },
      { version: 1, login: 'http://x', keys: [{ id: 'k', publicKey: 'AAAA' }] },
      { version: 1, login: 'http://x', keys: [key], seeds: [1] }
    ]
    for (const value of bad) {
      assert.throws(
        () => parseNetworkFile(value),
        (err: unknown) => err instanceof ParleyError && err.code === 'BAD_CONFIG' && err.message.startsWith('network file: ')
      )
    }
  })
})
