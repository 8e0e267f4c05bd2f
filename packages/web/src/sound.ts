/**
 * The ringtone of an incoming call and the ringback of an outgoing one, made
 * with WebAudio (no sound files to ship): a soft two-tone chime, repeated.
 */

let context: AudioContext | undefined
let timer: ReturnType<typeof setInterval> | undefined
let current: 'incoming' | 'outgoing' | undefined

function tone(ctx: AudioContext, frequency: number, start: number, length: number, volume: number): void {
  const osc = ctx.createOscillator()
  const gain = ctx.createGain()
  osc.type = 'sine'
  osc.frequency.value = frequency
  gain.gain.setValueAtTime(0, start)
  gain.gain.linearRampToValueAtTime(volume, start + 0.02)
  gain.gain.exponentialRampToValueAtTime(0.0001, start + length)
  osc.connect(gain).connect(ctx.destination)
  osc.start(start)
  osc.stop(start + length + 0.05)
}

function ring(kind: 'incoming' | 'outgoing'): void {
  if (context === undefined) return
  const t = context.currentTime + 0.02
  if (kind === 'incoming') {
    tone(context, 880, t, 0.35, 0.18)
    tone(context, 660, t + 0.4, 0.45, 0.18)
    tone(context, 880, t + 1.0, 0.35, 0.18)
    tone(context, 660, t + 1.4, 0.45, 0.18)
  } else {
    tone(context, 440, t, 1.2, 0.06)
    tone(context, 480, t, 1.2, 0.06)
  }
}

/** Starts ringing (or ringback), or stops with undefined. */
export function ringing(kind: 'incoming' | 'outgoing' | undefined): void {
  if (kind === current) return
  current = kind
  if (timer !== undefined) clearInterval(timer)
  timer = undefined
  if (kind === undefined) return
  try {
    context ??= new AudioContext()
    void context.resume().catch(() => {})
  } catch {
    return
  }
  ring(kind)
  timer = setInterval(() => ring(kind), kind === 'incoming' ? 3000 : 4000)
}

/** Whether a ringtone plays now (for tests and the UI). */
export function isRinging(): 'incoming' | 'outgoing' | undefined {
  return current
}
