import { useEffect } from 'react'
import { boot } from '../client.ts'
import { useStore } from '../store.ts'
import { Shell } from './Shell.tsx'
import { SignIn } from './SignIn.tsx'

/** Signed out: the sign-in screen; signed in: the app. */
export function App() {
  const session = useStore((s) => s.session)
  useEffect(() => {
    void boot()
  }, [])
  if (session === undefined)
    return (
      <div className="loading" role="status">
        <span className="spinner" aria-hidden="true" />
        Connecting to Parley on this computer…
      </div>
    )
  return session.signedIn ? <Shell /> : <SignIn />
}
