// Helpers for the end-to-end tests: the browser (Debian's chromium through playwright-core),
// a recorder that fails on any request outside the server, logins, the API, a test photo.
import { chromium } from 'playwright-core'
import { deflateSync } from 'node:zlib'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import assert from 'node:assert/strict'

export const BASE = process.env.GL_BASE_URL || 'http://127.0.0.1:8080'
export const ORIGIN = new URL(BASE).origin
export const SHOTS = process.env.GL_SCREENSHOTS || ''
export const MOBILE = { width: 375, height: 812 }
export const DESKTOP = { width: 1440, height: 900 }

export async function launch() {
  return chromium.launch({
    executablePath: process.env.GL_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  })
}

/** Every request any page of the context makes; checked with assertSameOrigin. */
export async function newContext(browser, { viewport = DESKTOP, geolocation, locale = 'zh-CN', mobile = false } = {}) {
  const ctx = await browser.newContext({
    viewport,
    deviceScaleFactor: 1,
    locale,
    timezoneId: 'Asia/Shanghai',
    isMobile: mobile,
    hasTouch: mobile,
    ...(geolocation ? { geolocation, permissions: ['geolocation'] } : {}),
  })
  ctx.requests = []
  ctx.errors = []
  ctx.on('request', (r) => ctx.requests.push(r.url()))
  ctx.on('page', (p) => p.on('pageerror', (e) => ctx.errors.push(e.message)))
  return ctx
}

export function assertSameOrigin(ctx) {
  const outside = ctx.requests.filter((u) => !u.startsWith(`${ORIGIN}/`) && !u.startsWith('data:') && !u.startsWith('blob:'))
  assert.deepEqual(outside, [], 'pages must request nothing outside the server')
  assert.ok(ctx.requests.length > 0, 'the recorder saw the pages')
  assert.deepEqual(ctx.errors, [], 'no uncaught errors in the pages')
}

export async function login(page, username, password = 'demo') {
  await page.goto(`${BASE}/login`)
  await page.fill('[data-t=username]', username)
  await page.fill('[data-t=password]', password)
  await page.click('[data-t=login-submit]')
  await page.waitForURL((u) => !u.pathname.startsWith('/login'))
}

export async function shot(page, name, opts = {}) {
  if (!SHOTS) return
  mkdirSync(SHOTS, { recursive: true })
  await page.waitForTimeout(300)
  await page.screenshot({ path: join(SHOTS, `${name}.png`), ...opts })
}

export async function api(method, path, { token, body, headers = {} } = {}) {
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  let json = null
  try {
    json = text ? JSON.parse(text) : null
  } catch {
    json = text
  }
  return { status: res.status, body: json }
}

export async function token(username, password = 'demo') {
  const r = await api('POST', '/api/v1/login', { body: { username, password } })
  assert.equal(r.status, 200, `login ${username}: ${JSON.stringify(r.body)}`)
  return r.body.token
}

/** Polls until f() returns a truthy value. */
export async function until(f, what, ms = 10000) {
  const end = Date.now() + ms
  let last
  while (Date.now() < end) {
    last = await f()
    if (last) return last
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`timed out waiting for ${what}`)
}

// A small PNG photo made here (a red square on blue), so the tests need no files.
function crc32(buf) {
  let c, crc = 0xffffffff
  for (let n = 0; n < buf.length; n++) {
    c = (crc ^ buf[n]) & 0xff
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    crc = (crc >>> 8) ^ c
  }
  return (crc ^ 0xffffffff) >>> 0
}
function chunk(type, data) {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(td))
  return Buffer.concat([len, td, crc])
}
export function pngPhoto(w = 96, h = 72, seed = 0) {
  const raw = Buffer.alloc((w * 3 + 1) * h)
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0
    for (let x = 0; x < w; x++) {
      const i = y * (w * 3 + 1) + 1 + x * 3
      const inside = x > w / 4 && x < (3 * w) / 4 && y > h / 4 && y < (3 * h) / 4
      raw[i] = inside ? 200 : 40 + seed
      raw[i + 1] = inside ? 40 : 110
      raw[i + 2] = inside ? 50 : 180
    }
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr[8] = 8
  ihdr[9] = 2
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))])
}

/** A point inside a GeoJSON polygon (its bbox centre when inside, else a vertex average). */
export function interiorPoint(g) {
  const ring = g.type === 'Polygon' ? g.coordinates[0] : g.coordinates[0][0]
  const xs = ring.map((p) => p[0]), ys = ring.map((p) => p[1])
  return { longitude: (Math.min(...xs) + Math.max(...xs)) / 2, latitude: (Math.min(...ys) + Math.max(...ys)) / 2 }
}
