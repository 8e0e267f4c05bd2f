import { nameKey, toBase64Url } from '@parley/protocol'

const encoder = new TextEncoder()

/**
 * The id of the one-to-one conversation of two users, as @parley/messaging's
 * directConversation computes it (`d:` + the first 16 bytes of SHA-256 over
 * the two names in compared form, sorted): lines arriving by event are placed
 * in their chat by it. WebCrypto, so the page needs a secure context
 * (http://127.0.0.1 and http://localhost are).
 */
export async function directConversation(a: string, b: string): Promise<string> {
  const [first, second] = [nameKey(a), nameKey(b)].sort() as [string, string]
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(`parley/direct/v1\0${first}\0${second}`)))
  return `d:${toBase64Url(digest.subarray(0, 16))}`
}
