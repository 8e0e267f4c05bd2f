// The web client's build: `npm run build -w @parley/web` writes dist/ (index.html and hashed assets under
// /assets/), which the daemon serves at `/`.
//
// Development: `PARLEY_DATA=~/.parley-up/users/NAME npm run dev -w @parley/web` serves the client with hot reload
// and passes /v1 (HTTP and the event WebSocket) to that profile's running daemon, with the token from its api.json
// (the daemon's address and token; or PARLEY_API and PARLEY_TOKEN). The proxy drops the page's Origin (the dev
// server's, which the daemon would refuse) and adds the token, so the page works as if the daemon served it.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

function daemon(): { url: string; token: string | undefined } {
  const data = process.env.PARLEY_DATA
  if (data !== undefined && data !== '') {
    try {
      const api = JSON.parse(readFileSync(join(data, 'api.json'), 'utf8')) as { url: string; token: string }
      return { url: api.url, token: api.token }
    } catch {
      console.warn(`no running daemon's api.json in ${data}`)
    }
  }
  return { url: process.env.PARLEY_API ?? 'http://127.0.0.1:8480', token: process.env.PARLEY_TOKEN }
}

export default defineConfig(({ command }) => {
  const target = command === 'serve' ? daemon() : undefined
  return {
    plugins: [react()],
    base: '/',
    build: {
      outDir: 'dist',
      emptyOutDir: true,
      target: 'es2022',
      sourcemap: false,
      reportCompressedSize: true
    },
    server:
      target === undefined
        ? {}
        : {
            proxy: {
              '/v1': {
                target: target.url,
                ws: true,
                changeOrigin: true,
                configure: (proxy) => {
                  const fix = (req: { removeHeader(name: string): void; setHeader(name: string, value: string): void }): void => {
                    req.removeHeader('origin')
                    if (target.token !== undefined) req.setHeader('authorization', `Bearer ${target.token}`)
                  }
                  proxy.on('proxyReq', fix)
                  proxy.on('proxyReqWs', fix)
                }
              }
            }
          }
  }
})
