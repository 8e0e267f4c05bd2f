/**
 * Emoticons and `:name:` codes a user types, and the emoji they become.
 * Emoticons stand alone (start of text or after a space, then the end, a
 * space or . , ! ?), so `a:b`, `C:/x`, `std::x` and `12:30` stay as they are.
 */
export const EMOTICONS: Readonly<Record<string, string>> = {
  ':)': '🙂',
  ':-)': '🙂',
  ':(': '🙁',
  ':-(': '🙁',
  ':D': '😃',
  ':-D': '😃',
  ';)': '😉',
  ';-)': '😉',
  ':P': '😛',
  ':-P': '😛',
  ':p': '😛',
  ':-p': '😛',
  ':O': '😮',
  ':-O': '😮',
  ':o': '😮',
  ":'(": '😢',
  ':*': '😘',
  ':-*': '😘',
  ':|': '😐',
  ':-|': '😐',
  ':/': '😕',
  ':-/': '😕',
  XD: '😆',
  'B-)': '😎',
  '<3': '❤️',
  '</3': '💔'
}

/** `:name:` codes, anywhere but inside a word. */
export const SHORTCODES: Readonly<Record<string, string>> = {
  thumbsup: '👍',
  '+1': '👍',
  thumbsdown: '👎',
  '-1': '👎',
  smile: '😄',
  slight_smile: '🙂',
  grin: '😁',
  joy: '😂',
  laughing: '😆',
  wink: '😉',
  blush: '😊',
  heart_eyes: '😍',
  kiss: '😘',
  thinking: '🤔',
  neutral_face: '😐',
  cry: '😢',
  sob: '😭',
  angry: '😠',
  scream: '😱',
  sunglasses: '😎',
  shrug: '🤷',
  facepalm: '🤦',
  heart: '❤️',
  broken_heart: '💔',
  fire: '🔥',
  tada: '🎉',
  wave: '👋',
  clap: '👏',
  pray: '🙏',
  ok_hand: '👌',
  muscle: '💪',
  eyes: '👀',
  rocket: '🚀',
  star: '⭐',
  sparkles: '✨',
  '100': '💯',
  check: '✅',
  white_check_mark: '✅',
  x: '❌',
  warning: '⚠️',
  coffee: '☕',
  beer: '🍺',
  cake: '🍰',
  pizza: '🍕',
  sun: '☀️',
  moon: '🌙',
  phone: '📞',
  bulb: '💡'
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const EMOTICON_PATTERN = new RegExp(
  `(?<=^|\\s)(?:${Object.keys(EMOTICONS)
    .sort((a, b) => b.length - a.length)
    .map(escapeRegExp)
    .join('|')})(?=$|[\\s.,!?])`,
  'gu'
)
const SHORTCODE_PATTERN = /(?<![\p{L}\p{N}_]):([a-z0-9_+-]{1,32}):(?![\p{L}\p{N}_])/gu
/** Links are left alone: a scheme and ://, or www., up to the next space. */
const URL_PATTERN = /(?:\b[a-z][a-z0-9+.-]*:\/\/|\bwww\.|\bmailto:)\S*/giu

function convert(text: string): string {
  return text.replace(EMOTICON_PATTERN, (m) => EMOTICONS[m] ?? m).replace(SHORTCODE_PATTERN, (m, name: string) => SHORTCODES[name] ?? m)
}

/** Converts outside links. */
function convertProse(text: string): string {
  let out = ''
  let last = 0
  for (const match of text.matchAll(URL_PATTERN)) {
    out += convert(text.slice(last, match.index)) + match[0]
    last = match.index + match[0].length
  }
  return out + convert(text.slice(last))
}

/**
 * Replaces emoticons and shortcodes with emoji: `:)` → 🙂, `:D` → 😃,
 * `<3` → ❤️, `:thumbsup:` → 👍 (see EMOTICONS and SHORTCODES). Code spans
 * (`` `like this` ``, any run of backticks closed by a run as long, as in
 * Markdown, fenced blocks included) and links are left as they are.
 */
export function applyShortcodes(text: string): string {
  let out = ''
  let prose = 0
  let i = 0
  while (i < text.length) {
    if (text[i] !== '`') {
      i++
      continue
    }
    let run = 1
    while (text[i + run] === '`') run++
    // The closing run: exactly as many backticks, not part of a longer run.
    let close = -1
    for (let j = i + run; j < text.length; ) {
      if (text[j] !== '`') {
        j++
        continue
      }
      let k = 1
      while (text[j + k] === '`') k++
      if (k === run) {
        close = j
        break
      }
      j += k
    }
    if (close === -1) {
      i += run
      continue
    }
    out += convertProse(text.slice(prose, i)) + text.slice(i, close + run)
    i = prose = close + run
  }
  return out + convertProse(text.slice(prose))
}
