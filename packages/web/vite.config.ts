// The web client's build: `npm run build -w @parley/web` writes dist/ (index.html and hashed assets under
// /assets/), which the daemon serves at `/`. `npm run dev -w @parley/web` proxies /v1 (HTTP and the event
// WebSocket) to a running daemon named by PARLEY_API (default http://127.0.0.1:7080).
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

const api = process.env.PARLEY_API ?? 'http://127.0.0.1:7080'

export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true
  },
  server: {
    proxy: {
      '/v1': { target: api, ws: true, changeOrigin: true }
    }
  }
})
