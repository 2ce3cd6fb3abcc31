import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import { gzipSync } from 'node:zlib'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

// Writes a gzipped twin (x.js.gz) of each text file of the build; the server sends it to
// clients that accept gzip (crates/http/src/web.rs), which matters on a phone.
function gzipTwins() {
  let outDir = 'dist'
  return {
    name: 'gridloop-gzip',
    apply: 'build',
    configResolved(c) {
      outDir = c.build.outDir
    },
    closeBundle() {
      const walk = (d) => {
        for (const name of readdirSync(d)) {
          const p = join(d, name)
          if (statSync(p).isDirectory()) walk(p)
          else if (/\.(js|css|html|svg|json)$/.test(name) && statSync(p).size > 1024) writeFileSync(`${p}.gz`, gzipSync(readFileSync(p), { level: 9 }))
        }
      }
      walk(outDir)
    },
  }
}

// The console and the residents' pages are one small SPA; ECharts is split into its own
// chunk and loaded only by the dashboard. Output goes to web/dist, which
// crates/http/build.rs builds and crates/http/src/web.rs embeds into the binary.
export default defineConfig({
  plugins: [vue(), gzipTwins()],
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    target: 'es2020',
    chunkSizeWarningLimit: 900,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8080',
      '/healthz': 'http://127.0.0.1:8080',
    },
  },
})
