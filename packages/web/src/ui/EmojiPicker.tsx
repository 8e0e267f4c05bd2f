import { type KeyboardEvent, useEffect, useRef, useState } from 'react'

/** A small set, each with its name (what a screen reader says and what the filter matches). */
const EMOJI: Array<[string, string]> = [
  ['😀', 'grinning'],
  ['😃', 'smiley'],
  ['😄', 'smile'],
  ['😁', 'grin'],
  ['😆', 'laughing'],
  ['😅', 'sweat smile'],
  ['😂', 'joy'],
  ['🤣', 'rolling on the floor laughing'],
  ['🙂', 'slightly smiling'],
  ['😉', 'wink'],
  ['😊', 'blush'],
  ['😇', 'innocent'],
  ['🥰', 'smiling with hearts'],
  ['😍', 'heart eyes'],
  ['😘', 'kiss'],
  ['😋', 'yum'],
  ['😜', 'winking tongue'],
  ['🤔', 'thinking'],
  ['🤗', 'hug'],
  ['🤫', 'shush'],
  ['😐', 'neutral'],
  ['😏', 'smirk'],
  ['🙄', 'eye roll'],
  ['😬', 'grimace'],
  ['😌', 'relieved'],
  ['😴', 'sleeping'],
  ['😷', 'mask'],
  ['🤒', 'ill'],
  ['🥳', 'party face'],
  ['😎', 'sunglasses'],
  ['🤓', 'nerd'],
  ['😕', 'confused'],
  ['😟', 'worried'],
  ['😮', 'open mouth'],
  ['😲', 'astonished'],
  ['😳', 'flushed'],
  ['🥺', 'pleading'],
  ['😢', 'cry'],
  ['😭', 'sob'],
  ['😱', 'scream'],
  ['😤', 'triumph'],
  ['😠', 'angry'],
  ['👍', 'thumbs up'],
  ['👎', 'thumbs down'],
  ['👌', 'ok hand'],
  ['✌️', 'victory'],
  ['🤞', 'fingers crossed'],
  ['👏', 'clap'],
  ['🙌', 'raised hands'],
  ['🙏', 'thank you'],
  ['👋', 'wave'],
  ['💪', 'strong'],
  ['❤️', 'red heart'],
  ['💙', 'blue heart'],
  ['💚', 'green heart'],
  ['💛', 'yellow heart'],
  ['💔', 'broken heart'],
  ['✨', 'sparkles'],
  ['🔥', 'fire'],
  ['🎉', 'party'],
  ['🎂', 'birthday cake'],
  ['🎁', 'gift'],
  ['☕', 'coffee'],
  ['🍕', 'pizza'],
  ['🍻', 'cheers'],
  ['🌞', 'sun'],
  ['🌧️', 'rain'],
  ['⭐', 'star'],
  ['✅', 'check'],
  ['❌', 'cross'],
  ['❓', 'question'],
  ['❗', 'exclamation'],
  ['💡', 'idea'],
  ['📞', 'phone'],
  ['📎', 'paperclip'],
  ['📅', 'calendar'],
  ['⏰', 'alarm clock'],
  ['🚀', 'rocket'],
  ['🏠', 'home'],
  ['💯', 'hundred']
]

const COLUMNS = 8

/**
 * An emoji grid in a popover: arrow keys move, Enter picks, Escape closes;
 * a filter by name. Focus goes to the filter when it opens and back to the
 * composer when it closes (the caller's onClose).
 */
export function EmojiPicker({ onPick, onClose }: { onPick: (emoji: string) => void; onClose: () => void }) {
  const [query, setQuery] = useState('')
  const [active, setActive] = useState(0)
  const filterRef = useRef<HTMLInputElement>(null)
  const gridRef = useRef<HTMLFieldSetElement>(null)
  const shown = query.trim() === '' ? EMOJI : EMOJI.filter(([, name]) => name.includes(query.trim().toLowerCase()))

  useEffect(() => {
    filterRef.current?.focus()
  }, [])

  useEffect(() => {
    const onDown = (e: MouseEvent): void => {
      const root = gridRef.current?.closest('.emoji-picker')
      if (root !== null && root !== undefined && !root.contains(e.target as Node)) onClose()
    }
    document.addEventListener('mousedown', onDown)
    return () => document.removeEventListener('mousedown', onDown)
  }, [onClose])

  const focusCell = (index: number): void => {
    const clamped = Math.max(0, Math.min(shown.length - 1, index))
    setActive(clamped)
    const cell = gridRef.current?.querySelectorAll<HTMLButtonElement>('button')[clamped]
    cell?.focus()
  }

  const onGridKey = (e: KeyboardEvent): void => {
    const moves: Record<string, number> = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: COLUMNS, ArrowUp: -COLUMNS }
    if (e.key in moves) {
      e.preventDefault()
      focusCell(active + (moves[e.key] ?? 0))
    } else if (e.key === 'Home') {
      e.preventDefault()
      focusCell(0)
    } else if (e.key === 'End') {
      e.preventDefault()
      focusCell(shown.length - 1)
    }
  }

  return (
    <div
      className="emoji-picker"
      role="dialog"
      aria-label="Emoji"
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.stopPropagation()
          onClose()
        }
      }}
    >
      <input
        ref={filterRef}
        className="emoji-filter"
        type="search"
        placeholder="Find an emoji"
        aria-label="Find an emoji"
        value={query}
        onChange={(e) => {
          setQuery(e.target.value)
          setActive(0)
        }}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown') {
            e.preventDefault()
            focusCell(0)
          } else if (e.key === 'Enter' && shown[0] !== undefined) {
            e.preventDefault()
            onPick(shown[0][0])
          }
        }}
      />
      <fieldset className="emoji-grid" ref={gridRef} onKeyDown={onGridKey}>
        <legend className="sr-only">Emoji, use the arrow keys</legend>
        {shown.map(([emoji, name], i) => (
          <button
            key={name}
            type="button"
            className="emoji-cell"
            tabIndex={i === active ? 0 : -1}
            aria-label={name}
            title={name}
            onClick={() => onPick(emoji)}
            onFocus={() => setActive(i)}
          >
            {emoji}
          </button>
        ))}
        {shown.length === 0 && <p className="emoji-none">No emoji by that name.</p>}
      </fieldset>
    </div>
  )
}
