import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { applyShortcodes } from '../src/index.ts'

describe('shortcodes', () => {
  it('turn emoticons and :names: into emoji', () => {
    const cases: [string, string][] = [
      [':)', '🙂'],
      [':(', '🙁'],
      [':D', '😃'],
      [';)', '😉'],
      [':P', '😛'],
      ['<3', '❤️'],
      [':thumbsup:', '👍'],
      [':+1:', '👍'],
      ['hi :) how are you :D?', 'hi 🙂 how are you 😃?'],
      ['ok :thumbsup::tada:', 'ok 👍🎉'],
      ['(:fire:)', '(🔥)'],
      ['I <3 this, really <3!', 'I ❤️ this, really ❤️!'],
      [':-) :-( ;-) :-D', '🙂 🙁 😉 😃'],
      ['line one :)\nline two :(', 'line one 🙂\nline two 🙁']
    ]
    for (const [input, output] of cases) assert.equal(applyShortcodes(input), output, input)
  })

  it('leave words, times, paths and unknown names alone', () => {
    for (const input of [
      'a:b',
      '12:30',
      'C:/Users',
      'std::vector',
      'x:)',
      ':Pirate',
      'foo:thumbsup:',
      ':nope:',
      'ratio 3:1',
      'a<3b',
      'emoji:)'
    ]) {
      assert.equal(applyShortcodes(input), input)
    }
  })

  it('leave code spans and links alone', () => {
    const cases: [string, string][] = [
      ['`:)` :)', '`:)` 🙂'],
      ['``a ` :) `` :)', '``a ` :) `` 🙂'],
      ['```\ncode :) <3\n``` <3', '```\ncode :) <3\n``` ❤️'],
      ['unclosed ` :)', 'unclosed ` 🙂'],
      ['see http://example.com/:P/:) :P', 'see http://example.com/:P/:) 😛'],
      ['www.example.com/:thumbsup: :thumbsup:', 'www.example.com/:thumbsup: 👍'],
      ['mailto:x@y.z:) :)', 'mailto:x@y.z:) 🙂']
    ]
    for (const [input, output] of cases) assert.equal(applyShortcodes(input), output, input)
  })
})
