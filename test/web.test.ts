// The web client end to end, as people use it: `parley up` with two users,
// Debian's Chromium driven by playwright-core with a fake camera and a
// microphone that speaks (espeak-ng), one browser context per user. They sign
// up, become contacts, chat (with one of them signed out for a while), call
// each other with audio, video and a shared screen, call the echo test
// contact, send a file, and look at the network; every main screen is scanned
// with axe-core (no serious or critical violation) and saved as a screenshot.
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { CHROMIUM_ARGS, chromiumPath, parley, type RunningRole, speechFile, startRole } from '@parley/testing'
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** Where the screenshots go (ignored by git): printed at the end of the run. */
const SHOTS = process.env.PARLEY_SCREENSHOTS ?? join(ROOT, 'packages', 'web', 'test-results', 'screenshots')
const PASSWORD = 'Correct horse 42 battery'
const ALICE = 'alice_web'
const BOB = 'bob_web'
const ECHO = 'echo123'

/** Debian's Chromium, never a downloaded one: a machine without it fails here, loudly (CI installs it). */

/** axe-core's own build, injected into the page (the page's CSP does not apply to what the driver evaluates). */
async function axeScan(page: Page, screen: string): Promise<void> {
  const source = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')
  await page.evaluate(source)
  const result = (await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (context: Document, options: object) => Promise<unknown> } }).axe
    return await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })
  })) as {
    violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: string[]; failureSummary?: string }> }>
  }
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  assert.deepEqual(
    bad.map(
      (v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => `${n.target.join(' ')} (${n.failureSummary ?? ''})`).join('; ')}`
    ),
    [],
    `accessibility of the ${screen} screen`
  )
  const minor = result.violations.filter((v) => !bad.includes(v))
  if (minor.length > 0) console.log(`axe (${screen}), minor or moderate: ${minor.map((v) => `${v.id} (${v.nodes.length})`).join(', ')}`)
}

async function shot(page: Page, name: string): Promise<void> {
  // Toasts come and go: the screenshot shows the screen itself.
  for (const dismiss of await page.getByRole('button', { name: 'Dismiss' }).all()) await dismiss.click({ timeout: 1000 }).catch(() => {})
  await page.waitForTimeout(300)
  await page.screenshot({ path: join(SHOTS, `${name}.png`) })
}

/**
 * The loudest RMS (0 to 1) of what the page's call plays, sampled for up to
 * `ms` (stopping early once it passes `enough`): sound arrived, or only silence.
 */
async function heardLevel(page: Page, ms: number, enough = 0.02): Promise<number> {
  return await page.evaluate(
    async ([ms, enough]) => {
      const el = document.querySelector('audio.call-audio') as HTMLAudioElement | null
      const ctx = new AudioContext()
      const analyser = ctx.createAnalyser()
      analyser.fftSize = 2048
      const buffer = new Float32Array(analyser.fftSize)
      let peak = 0
      let source: MediaStreamAudioSourceNode | undefined
      const end = performance.now() + ms
      while (performance.now() < end && peak < enough) {
        const stream = el?.srcObject
        if (source === undefined && stream instanceof MediaStream && stream.getAudioTracks().length > 0) {
          source = ctx.createMediaStreamSource(new MediaStream(stream.getAudioTracks()))
          source.connect(analyser)
        }
        analyser.getFloatTimeDomainData(buffer)
        let sum = 0
        for (const v of buffer) sum += v * v
        peak = Math.max(peak, Math.sqrt(sum / buffer.length))
        await new Promise((r) => setTimeout(r, 50))
      }
      await ctx.close()
      return peak
    },
    [ms, enough] as const
  )
}

/** The remote video the call screen shows: its size once frames arrive. */
async function remoteVideoSize(page: Page): Promise<number> {
  return await page.evaluate(() => {
    const v = document.querySelector('video.remote-video') as HTMLVideoElement | null
    return v === null ? 0 : v.videoWidth
  })
}

async function eventually<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last = await probe()
  while (!ok(last)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)}`)
    await new Promise((r) => setTimeout(r, 250))
    last = await probe()
  }
  return last
}

function nav(page: Page, section: string): Locator {
  return page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: new RegExp(`^${section}`) })
}

async function openChat(page: Page, name: string): Promise<void> {
  await nav(page, 'Chats').click()
  await page
    .getByRole('complementary', { name: 'Conversations' })
    .getByRole('button', { name: new RegExp(`^${name}`) })
    .click()
  await page.getByRole('heading', { level: 1, name }).waitFor()
}

async function send(page: Page, to: string, text: string): Promise<void> {
  const box = page.getByLabel(`Message to ${to}`)
  await box.fill(text)
  await box.press('Enter')
}

/** Ends a call left over by a failed step, so that the next one starts from the app itself. */
async function endCall(page: Page): Promise<void> {
  const hangUp = page.getByRole('toolbar', { name: 'Call controls' }).getByRole('button', { name: 'Hang up' })
  if (await hangUp.isVisible()) await hangUp.click()
}

/** A line in the open conversation. */
function line(page: Page, text: string): Locator {
  return page.getByRole('log').getByRole('article').filter({ hasText: text })
}

describe('web client', { timeout: 600_000 }, () => {
  let dir: string
  let up: RunningRole | undefined
  let browser: Browser | undefined
  const contexts: BrowserContext[] = []
  let webs: Record<string, string>
  let speechWav: string
  let alice: Page
  let bob: Page
  const errors: string[] = []

  before(async () => {
    const executablePath = chromiumPath()
    dir = await mkdtemp(join(tmpdir(), 'parley-web-'))
    await mkdir(SHOTS, { recursive: true })
    // The client as it is in this checkout.
    const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.ts')], { stdio: 'inherit' })
    assert.equal(built.status, 0, 'the web client builds')
    // What the fake microphone says: espeak-ng's speech at 48 kHz (Chromium loops it).
    const speech22 = join(dir, 'speech-22k.wav')
    const speech = join(dir, 'speech.wav')
    await speechFile(speech22)
    await run('sox', [speech22, '-r', '48000', '-c', '1', '-b', '16', speech])
    speechWav = speech
    up = await startRole(['up', '--data', join(dir, 'net'), '--users', `${ALICE},${BOB}`], { timeoutMs: 120_000 })
    webs = up.ready.webs as Record<string, string>
    assert.equal(up.ready.echo, ECHO)
    browser = await chromium.launch({
      executablePath,
      args: [
        ...CHROMIUM_ARGS,
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
        `--use-file-for-fake-audio-capture=${speech}`,
        '--auto-select-desktop-capture-source=Entire screen',
        '--autoplay-policy=no-user-gesture-required'
      ]
    })
    const open = async (name: string): Promise<Page> => {
      const context = await (browser as Browser).newContext({
        viewport: { width: 1280, height: 800 },
        permissions: ['microphone', 'camera']
      })
      contexts.push(context)
      const page = await context.newPage()
      page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`))
      await page.goto(webs[name] as string)
      return page
    }
    alice = await open(ALICE)
    bob = await open(BOB)
  })

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {})
    await browser?.close().catch(() => {})
    await up?.stop().catch(() => null)
    await rm(dir, { recursive: true, force: true })
    console.log(`web client screenshots: ${SHOTS}`)
  })

  it('signs up with the rules shown and errors said plainly; a wrong password is refused clearly', async () => {
    // The address with the token became a cookie: it is gone from the address bar.
    assert.doesNotMatch(alice.url(), /token=/)
    await alice.getByRole('heading', { name: 'Create your account' }).waitFor()
    assert.equal(await alice.getByLabel('User name').inputValue(), ALICE, 'parley up --users suggests the name')
    await axeScan(alice, 'sign-up')
    await shot(alice, '01-sign-up')

    // Signing in to an account that does not exist yet: a clear error, in an alert.
    await alice.getByRole('button', { name: 'Sign in', exact: true }).first().click()
    await alice.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await alice.locator('form').getByRole('button', { name: 'Sign in' }).click()
    await alice.getByRole('alert').filter({ hasText: 'do not match an account' }).waitFor()
    await axeScan(alice, 'sign-in with an error')
    await shot(alice, '02-sign-in-error')

    // A weak password is caught at its field before anything is sent.
    await alice.getByRole('button', { name: 'Sign up', exact: true }).first().click()
    await alice.getByLabel('Password', { exact: true }).fill('short')
    await alice.getByLabel('Password again').fill('short')
    await alice.getByRole('button', { name: 'Create account' }).click()
    await alice.getByRole('alert').filter({ hasText: 'at least 10 characters' }).waitFor()
    assert.equal(await alice.getByLabel('Password', { exact: true }).getAttribute('aria-invalid'), 'true')

    for (const page of [alice, bob]) {
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
      await page.getByLabel('Password again').fill(PASSWORD)
      await page.getByRole('button', { name: 'Create account' }).click()
    }
    for (const page of [alice, bob]) await page.getByRole('heading', { name: /^Hello, / }).waitFor({ timeout: 30_000 })
  })

  it('finds a user, sends a contact request, the other accepts, and each sees the other online', async () => {
    // From the keyboard: the first Tab reaches the skip link, and focus is drawn.
    await alice.keyboard.press('Tab')
    const focused = await alice.evaluate(() => {
      const el = document.activeElement as HTMLElement
      const style = getComputedStyle(el)
      return { text: el.textContent, outline: style.outlineStyle, width: style.outlineWidth, top: el.getBoundingClientRect().top }
    })
    assert.equal(focused.text, 'Skip to the main content')
    assert.ok(focused.outline !== 'none' && focused.width !== '0px' && focused.top >= 0, `focus is visible: ${JSON.stringify(focused)}`)
    await alice.keyboard.press('Enter')
    assert.equal(await alice.evaluate(() => document.activeElement?.id), 'main')
    await nav(alice, 'Contacts').click()
    await alice.getByLabel('Name to look for').fill(BOB)
    await alice.getByRole('button', { name: 'Search', exact: true }).click()
    await alice.getByRole('button', { name: 'Add contact' }).click()
    await alice
      .getByRole('dialog', { name: `Add ${BOB}` })
      .getByRole('button', { name: 'Send request' })
      .click()
    await alice.getByRole('heading', { name: 'Waiting for an answer' }).waitFor()

    await bob.getByRole('button', { name: /contact request waiting/ }).click({ timeout: 30_000 })
    const request = bob.getByRole('listitem').filter({ hasText: ALICE })
    await request.getByText("let's talk on Parley").waitFor()
    await axeScan(bob, 'contacts with a request')
    await shot(bob, '03-contact-request')
    await request.getByRole('button', { name: 'Accept' }).click()

    // Presence: a word beside the shape, not a colour alone.
    await alice.getByRole('region', { name: 'Your contacts' }).locator('.presence-word', { hasText: 'Online' }).waitFor({ timeout: 30_000 })
    await bob.getByRole('region', { name: 'Your contacts' }).locator('.presence-word', { hasText: 'Online' }).waitFor({ timeout: 30_000 })
  })

  it('chats: delivered and read marks, typing, replies, emoji, edits, search in history', async () => {
    await openChat(alice, BOB)
    await send(alice, BOB, 'Hi Bob! Shall we try a call later?')
    await openChat(bob, ALICE)
    await line(bob, 'Shall we try a call later').waitFor()
    // Bob has it open: Alice sees it read.
    await line(alice, 'Shall we try a call later').getByText('Read').waitFor({ timeout: 20_000 })

    // Typing shows on the other side.
    await bob.getByLabel(`Message to ${ALICE}`).pressSequentially('Sure', { delay: 40 })
    await alice.getByText(`${BOB} is typing…`).waitFor({ timeout: 10_000 })
    // A reply to her line, with an emoji from the picker (keyboard only).
    await line(bob, 'Shall we try a call later').focus()
    await bob.keyboard.press('r')
    await bob.getByText(`Replying to ${ALICE}`).waitFor()
    await bob.getByLabel(`Message to ${ALICE}`).fill('Sure, any time ')
    await bob.getByRole('button', { name: 'Emoji' }).click()
    await bob.getByRole('searchbox', { name: 'Find an emoji' }).fill('thumbs up')
    await bob.keyboard.press('Enter')
    await bob.getByLabel(`Message to ${ALICE}`).press('Enter')
    const reply = line(alice, 'Sure, any time 👍')
    await reply.waitFor({ timeout: 20_000 })
    await reply.locator('.reply-quote').filter({ hasText: 'Shall we try a call later' }).waitFor()

    // Alice edits her line (Up arrow in an empty composer); Bob sees the new words, marked edited.
    await send(alice, BOB, 'See you at 5 pm')
    await line(alice, 'See you at 5 pm').waitFor()
    await alice.getByLabel(`Message to ${BOB}`).press('ArrowUp')
    await alice.getByText('Editing your message').waitFor()
    await alice.getByLabel(`Message to ${BOB}`).fill('See you at 6 pm')
    await alice.getByLabel(`Message to ${BOB}`).press('Enter')
    await line(bob, 'See you at 6 pm').getByText('edited').waitFor({ timeout: 20_000 })

    // Search in the history.
    await alice.getByRole('button', { name: 'Search in this conversation' }).click()
    await alice.getByRole('searchbox', { name: 'Search this conversation' }).fill('call')
    await alice.getByRole('searchbox', { name: 'Search this conversation' }).press('Enter')
    await alice.getByText('1 found').waitFor()
    await alice.getByRole('button', { name: 'Close search' }).click()
    await axeScan(alice, 'chat')
    await shot(alice, '04-chat')
  })

  it('shows honestly that a line waits for someone who is away, and that it arrived once they are back', async () => {
    await nav(bob, 'Profile').click()
    await bob.getByRole('button', { name: 'Sign out' }).click()
    await bob
      .getByRole('button', { name: 'Create account' })
      .or(bob.getByRole('button', { name: 'Sign in', exact: true }))
      .first()
      .waitFor()
    // Alice sees Bob offline (in words), and her line is stored for later, not "delivered".
    await alice.locator('.chat-header .presence-word', { hasText: 'Offline' }).waitFor({ timeout: 60_000 })
    await alice.getByRole('note').filter({ hasText: 'stored for later' }).waitFor()
    await send(alice, BOB, 'Ping me when you are back')
    await line(alice, 'Ping me when you are back')
      .getByText(/Stored for later|Sending/)
      .waitFor({ timeout: 30_000 })
    await shot(alice, '05-chat-offline')

    await bob.getByRole('button', { name: 'Sign in', exact: true }).first().click()
    await bob.getByLabel('User name').fill(BOB)
    await bob.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await bob.locator('form').getByRole('button', { name: 'Sign in' }).click()
    await openChat(bob, ALICE)
    await line(bob, 'Ping me when you are back').waitFor({ timeout: 60_000 })
    await line(alice, 'Ping me when you are back')
      .getByText(/Delivered|Read/)
      .waitFor({ timeout: 60_000 })
    await alice.locator('.chat-header .presence-word', { hasText: 'Online' }).waitFor({ timeout: 60_000 })
  })

  it('calls with audio, then video and a shared screen, shows the quality live, and hangs up', async () => {
    await alice.getByRole('button', { name: `Voice call ${BOB}` }).click()
    const incoming = bob.getByRole('alertdialog', { name: `${ALICE} is calling` })
    await incoming.waitFor({ timeout: 20_000 })
    await axeScan(bob, 'incoming call')
    await shot(bob, '06-incoming-call')
    await incoming.getByRole('button', { name: 'Answer', exact: true }).click()
    for (const page of [alice, bob]) await page.getByText('Direct connection').first().waitFor({ timeout: 30_000 })
    // Alice's microphone speaks; Bob hears it (and the other way round).
    const bobHears = await heardLevel(bob, 15_000)
    const aliceHears = await heardLevel(alice, 15_000)
    console.log(`call audio: Bob hears ${bobHears.toFixed(3)}, Alice hears ${aliceHears.toFixed(3)} (RMS, full scale 1)`)
    assert.ok(bobHears >= 0.02, 'Bob hears Alice')
    assert.ok(aliceHears >= 0.02, 'Alice hears Bob')

    // Mute is said in words on the other side.
    await alice.getByRole('button', { name: 'Mute' }).click()
    await bob.getByText(`${ALICE} muted their microphone`).waitFor({ timeout: 15_000 })
    await alice.getByRole('button', { name: 'Unmute' }).click()
    // Hold, likewise.
    await alice.getByRole('button', { name: 'Hold' }).click()
    await bob.getByText(`${ALICE} put the call on hold`).waitFor({ timeout: 15_000 })
    await alice.getByText('You put the call on hold').waitFor()
    await alice.getByRole('button', { name: 'Resume' }).click()
    await bob.getByText(`${ALICE} put the call on hold`).waitFor({ state: 'detached', timeout: 15_000 })

    await alice.getByRole('button', { name: 'Camera on' }).click()
    await eventually(
      'Bob sees Alice',
      () => remoteVideoSize(bob),
      (w) => w > 0,
      30_000
    )
    await bob.getByRole('button', { name: 'Share screen' }).click()
    await bob.getByText('You are sharing your screen').waitFor()
    await eventually(
      "Alice sees Bob's screen",
      () => remoteVideoSize(alice),
      (w) => w > 0,
      30_000
    )
    await alice.getByText(/^Quality: /).waitFor()
    await alice.getByRole('img', { name: /^Round trip over the last minute/ }).waitFor()
    await axeScan(alice, 'call')
    await shot(alice, '07-video-call')
    await shot(bob, '08-sharing-screen')

    await alice.getByRole('button', { name: 'Hang up' }).click()
    await bob.getByRole('toolbar', { name: 'Call controls' }).waitFor({ state: 'detached', timeout: 20_000 })
    await nav(alice, 'Calls').click()
    const row = alice.getByRole('row').filter({ hasText: BOB }).first()
    await row.getByText('Outgoing call').waitFor({ timeout: 20_000 })
    await axeScan(alice, 'call history')
    await shot(alice, '09-calls')
  })

  it('calls the echo test contact, which plays back what it heard and hangs up', async () => {
    for (const page of [alice, bob]) await endCall(page)
    await nav(alice, 'Contacts').click()
    await alice.getByLabel('Name to look for').fill(ECHO)
    await alice.getByRole('button', { name: 'Search', exact: true }).click()
    await alice.getByRole('button', { name: 'Add contact' }).click()
    await alice
      .getByRole('dialog', { name: `Add ${ECHO}` })
      .getByRole('button', { name: 'Send request' })
      .click()
    // The echo contact accepts by itself.
    await alice.getByRole('region', { name: 'Your contacts' }).getByText(ECHO).waitFor({ timeout: 30_000 })
    await openChat(alice, ECHO)
    await send(alice, ECHO, 'testing one two')
    await line(alice, 'echo: testing one two')
      .waitFor({ timeout: 30_000 })
      .catch(async (err: unknown) => {
        // Say how far Alice's own line got (sent, stored for later, delivered): where the echo was lost.
        const mine = await line(alice, 'testing one two')
          .first()
          .textContent()
          .catch(() => '(not shown)')
        throw new Error(`no echo within 30 s; Alice's line reads: ${JSON.stringify(mine)}`, { cause: err })
      })
    await alice.getByRole('button', { name: `Voice call ${ECHO}` }).click()
    await alice.getByText('Direct connection').waitFor({ timeout: 30_000 })
    // It records a few seconds of Alice's speech, then plays it back.
    const echoed = await heardLevel(alice, 15_000)
    console.log(`echo call: Alice hears ${echoed.toFixed(3)} (RMS)`)
    assert.ok(echoed >= 0.02, 'the echo plays back what it heard')
    await alice.getByRole('toolbar', { name: 'Call controls' }).waitFor({ state: 'detached', timeout: 30_000 })
  })

  it('shows a call that was not answered as missed, and plays a voicemail', async () => {
    for (const page of [alice, bob]) await endCall(page)
    await openChat(alice, BOB)
    await alice.getByRole('button', { name: `Voice call ${BOB}` }).click()
    await bob.getByRole('alertdialog', { name: `${ALICE} is calling` }).waitFor({ timeout: 20_000 })
    // Alice gives up before Bob answers.
    await alice.getByRole('toolbar', { name: 'Call controls' }).getByRole('button', { name: 'Hang up' }).click()
    await bob.getByRole('alertdialog').waitFor({ state: 'detached', timeout: 20_000 })
    await nav(bob, 'Calls').filter({ hasText: '1 missed call' }).waitFor({ timeout: 20_000 })

    // A voicemail left from Alice's command line reaches Bob's page, which plays it from the daemon.
    const left = await parley(['voicemail', 'leave', BOB, '--play', speechWav, '--data', join(dir, 'net', 'users', ALICE), '--json'])
    assert.equal(left.code, 0, left.stderr)
    await nav(bob, 'Calls').click()
    const voicemail = bob
      .getByRole('listitem')
      .filter({ hasText: ALICE })
      .filter({ has: bob.locator('audio') })
    await voicemail.waitFor({ timeout: 30_000 })
    await bob
      .getByRole('row')
      .filter({ hasText: ALICE })
      .getByText(/Missed/)
      .first()
      .waitFor()
    const audio = await voicemail.locator('audio').evaluate(async (el: HTMLAudioElement) => {
      const response = await fetch(el.src, { credentials: 'same-origin' })
      el.preload = 'auto'
      el.load()
      await new Promise((resolve) => {
        el.onloadedmetadata = resolve
        setTimeout(resolve, 5000)
      })
      return { status: response.status, type: response.headers.get('content-type'), duration: el.duration }
    })
    assert.equal(audio.status, 200)
    assert.equal(audio.type, 'audio/wav')
    assert.ok(audio.duration > 2, `the voicemail plays for ${audio.duration} s`)
    await axeScan(bob, 'calls with voicemail')
    await shot(bob, '10-missed-and-voicemail')
  })

  it('brings a third person into a call (a conference this device hosts)', async () => {
    await openChat(alice, BOB)
    await alice.getByRole('button', { name: `Voice call ${BOB}` }).click()
    await bob
      .getByRole('alertdialog', { name: `${ALICE} is calling` })
      .getByRole('button', { name: 'Answer', exact: true })
      .click({ timeout: 20_000 })
    await alice.getByText('Direct connection').first().waitFor({ timeout: 30_000 })
    await alice.getByRole('button', { name: 'Add people' }).click()
    await alice
      .getByRole('dialog', { name: 'Add people to the call' })
      .getByRole('listitem')
      .filter({ hasText: ECHO })
      .getByRole('button', { name: 'Call in' })
      .click()
    const people = alice.getByRole('list', { name: 'People in the call' })
    await people.getByRole('listitem').filter({ hasText: ECHO }).getByText('in the call').waitFor({ timeout: 30_000 })
    await people.getByRole('listitem').filter({ hasText: BOB }).waitFor()
    await shot(alice, '11-conference')
    // The echo contact plays back and leaves; Alice and Bob are still talking.
    await people.waitFor({ state: 'detached', timeout: 40_000 })
    assert.ok(await alice.getByRole('toolbar', { name: 'Call controls' }).isVisible(), 'the call goes on without the echo')
    await alice.getByRole('toolbar', { name: 'Call controls' }).getByRole('button', { name: 'Hang up' }).click()
    await bob.getByRole('toolbar', { name: 'Call controls' }).waitFor({ state: 'detached', timeout: 20_000 })
  })

  it('makes a group whose members see its lines', async () => {
    await nav(alice, 'Chats').click()
    await alice.getByRole('button', { name: 'New group' }).click()
    const dialog = alice.getByRole('dialog', { name: 'New group' })
    await dialog.getByLabel('Group name').fill('Weekend plans')
    await dialog.getByRole('checkbox', { name: BOB }).check()
    await dialog.getByRole('button', { name: 'Create group' }).click()
    await alice.getByRole('heading', { level: 1, name: 'Weekend plans' }).waitFor()
    await send(alice, 'Weekend plans', 'Who brings the snacks?')
    await line(alice, 'Who brings the snacks?').waitFor()
    await openChat(bob, 'Weekend plans')
    await line(bob, 'Who brings the snacks?').getByText(ALICE).waitFor({ timeout: 30_000 })
    await send(bob, 'Weekend plans', 'I will!')
    await line(alice, 'I will!').waitFor({ timeout: 30_000 })
    await axeScan(alice, 'group chat')
    await shot(alice, '12-group')
  })

  it('notifies of a new line while the tab is in the background, and counts it in the title', async () => {
    // The tab "in the background": hidden, not focused; the browser's Notification is watched.
    await bob.evaluate(() => {
      const shown: Array<{ title: string; body: string | undefined }> = []
      ;(window as unknown as { shownNotifications: typeof shown }).shownNotifications = shown
      class WatchedNotification {
        static permission = 'granted'
        static requestPermission = async () => 'granted'
        onclick: (() => void) | null = null
        constructor(title: string, options?: { body?: string }) {
          shown.push({ title, body: options?.body })
        }
        close(): void {}
      }
      Object.defineProperty(window, 'Notification', { configurable: true, value: WatchedNotification })
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' })
      document.hasFocus = () => false
    })
    await openChat(alice, BOB)
    await send(alice, BOB, 'Are you still there?')
    const shown = await eventually(
      'a notification',
      () => bob.evaluate(() => (window as unknown as { shownNotifications: Array<{ title: string; body?: string }> }).shownNotifications),
      (n) => n.some((x) => x.title === ALICE),
      20_000
    )
    assert.equal(shown.find((x) => x.title === ALICE)?.body, 'Are you still there?')
    await eventually(
      'the unread count in the title',
      () => bob.title(),
      (t) => /^\(\d+\) Parley$/.test(t)
    )
    await bob.evaluate(() => {
      delete (document as unknown as Record<string, unknown>).visibilityState
      delete (document as unknown as Record<string, unknown>).hasFocus
    })
  })

  it('blocks a contact from the conversation menu', async () => {
    await openChat(alice, ECHO)
    await alice.getByRole('button', { name: 'More actions' }).click()
    await alice.getByRole('menuitem', { name: `Block ${ECHO}` }).click()
    await alice
      .getByRole('dialog', { name: `Block ${ECHO}?` })
      .getByRole('button', { name: 'Block' })
      .click()
    await nav(alice, 'Contacts').click()
    await alice.getByRole('region', { name: 'Blocked' }).getByText(ECHO).waitFor({ timeout: 20_000 })
  })

  it('sends files (picked in the browser, and by path) that the other accepts into a folder, with progress, and shows the network in plain words', async () => {
    for (const page of [alice, bob]) await endCall(page)
    const file = join(dir, 'holiday-notes.txt')
    const content = 'Parley file transfer\n'.repeat(50_000)
    await writeFile(file, content)
    const inbox = join(dir, 'bob-downloads')
    await mkdir(inbox)
    await nav(alice, 'Files').click()
    await alice.getByLabel('To', { exact: true }).selectOption(BOB)
    // Picked in the browser: uploaded to Alice's daemon, which offers it.
    await alice.getByLabel('choose files').setInputFiles(file)
    await nav(bob, 'Files').click()
    const offer = bob.getByRole('listitem').filter({ hasText: `${ALICE} offers holiday-notes.txt` })
    await offer.waitFor({ timeout: 30_000 })
    await axeScan(bob, 'files with an offer')
    await shot(bob, '13-file-offer')
    await offer.getByLabel('Save into the folder').fill(inbox)
    await offer.getByRole('button', { name: 'Accept' }).click()
    await bob.getByRole('region', { name: 'History' }).getByText('Done').waitFor({ timeout: 60_000 })
    assert.equal(await readFile(join(inbox, 'holiday-notes.txt'), 'utf8'), content)
    await alice.getByRole('region', { name: 'History' }).getByText('Done').waitFor({ timeout: 30_000 })

    // A big one shows its progress on both sides while it goes.
    const big = join(dir, 'holiday-video.bin')
    await writeFile(big, Buffer.alloc(384 * 2 ** 20, 7))
    // Named by its path on this computer: the daemon reads it where it is.
    await alice.getByText('Or send by path on this computer').click()
    await alice.getByLabel('Files or folders on this computer').fill(big)
    await alice.getByRole('button', { name: 'Send', exact: true }).click()
    const bigOffer = bob.getByRole('listitem').filter({ hasText: `${ALICE} offers holiday-video.bin` })
    await bigOffer.getByLabel('Save into the folder').fill(inbox)
    await bigOffer.getByRole('button', { name: 'Accept' }).click({ timeout: 30_000 })
    const bar = bob.getByRole('progressbar', { name: 'holiday-video.bin: transferred' })
    await eventually(
      'a progress bar under way',
      async () => Number((await bar.getAttribute('aria-valuenow').catch(() => null)) ?? -1),
      (v) => v > 0 && v < 100,
      60_000
    )
    await shot(bob, '14-file-progress')
    await bob
      .getByRole('region', { name: 'History' })
      .getByRole('listitem')
      .filter({ hasText: 'holiday-video.bin' })
      .getByText('Done')
      .waitFor({ timeout: 120_000 })
    await shot(alice, '14-files')

    await nav(alice, 'Network').click()
    await alice.getByRole('heading', { name: 'Supernodes this computer uses' }).waitFor()
    const bobRow = alice.getByRole('region', { name: 'How you reach your contacts' }).getByRole('listitem').filter({ hasText: BOB })
    await bobRow.getByRole('button', { name: 'Check the path' }).click()
    await bobRow.getByText(/Direct connection|Through a relay/).waitFor({ timeout: 30_000 })
    await axeScan(alice, 'network')
    await shot(alice, '15-network')

    await nav(alice, 'Profile').click()
    await alice.getByRole('heading', { name: 'Your devices' }).waitFor()
    await axeScan(alice, 'profile')
    await shot(alice, '16-profile')
    assert.deepEqual(errors, [], 'no errors in the pages')
  })
})
