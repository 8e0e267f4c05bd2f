/**
 * Notifications while the tab is in the background (the Notification API,
 * once the user allowed it), and the unread count in the tab's title.
 */

export function notificationsSupported(): boolean {
  return typeof Notification !== 'undefined'
}

export function notificationPermission(): NotificationPermission | 'unsupported' {
  return notificationsSupported() ? Notification.permission : 'unsupported'
}

/** Asks for permission (must run from a click or a key press). */
export async function askForNotifications(): Promise<NotificationPermission | 'unsupported'> {
  if (!notificationsSupported()) return 'unsupported'
  return await Notification.requestPermission()
}

/** Shows a notification when the page is hidden or not focused; a click brings the tab back and runs `onClick`. */
export function notify(title: string, body: string, tag: string, onClick?: () => void): void {
  if (!notificationsSupported() || Notification.permission !== 'granted') return
  if (document.visibilityState === 'visible' && document.hasFocus()) return
  try {
    const n = new Notification(title, { body, tag })
    n.onclick = () => {
      window.focus()
      onClick?.()
      n.close()
    }
  } catch {
    // Some browsers allow notifications only from a service worker: the title count still tells.
  }
}

/** "(3) Parley" while lines are unread or a call rings. */
export function setTitleCount(count: number, ringingFrom?: string): void {
  const title = ringingFrom !== undefined ? `${ringingFrom} is calling – Parley` : count > 0 ? `(${count}) Parley` : 'Parley'
  if (document.title !== title) document.title = title
}
