// The HTTP client: JSON in and out, bearer token, errors as ApiError.
import { reactive, ref } from 'vue'

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`)
    this.status = status
    this.code = code
  }
}

const SESSION_KEY = 'gl.session'
const SESSION_HOURS = 12

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) || 'null')
    if (s && s.token && s.user && (!s.expires_at || new Date(s.expires_at).getTime() > Date.now() + (s.offset || 0))) return s
  } catch {
    /* ignore */
  }
  return null
}

/** The logged-in user: {token, user: {username, display_name, role, org}, offset, expires_at}. */
export const session = reactive({ current: loadSession() })

/** Milliseconds to add to the browser's clock to read the server's (the server may run on --now). */
export const clockOffset = ref(session.current?.offset || 0)
export const serverNow = () => Date.now() + clockOffset.value

/** A reactive server "now", ticking every 30 s, for countdowns. */
export const now = ref(serverNow())
setInterval(() => (now.value = serverNow()), 30000)

function saveSession(s) {
  session.current = s
  try {
    if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s))
    else localStorage.removeItem(SESSION_KEY)
  } catch {
    /* ignore */
  }
}

let onUnauthorized = () => {}
export function setUnauthorizedHandler(f) {
  onUnauthorized = f
}

async function parse(res) {
  if (res.status === 204) return null
  const text = await res.text()
  let body = null
  try {
    body = text ? JSON.parse(text) : null
  } catch {
    body = null
  }
  if (!res.ok) {
    const e = body?.error || {}
    throw new ApiError(res.status, e.code || `http_${res.status}`, e.message || text.slice(0, 200))
  }
  return body
}

export async function request(method, path, { body, headers = {}, auth = true, raw } = {}) {
  const h = { ...headers }
  if (auth && session.current?.token) h.Authorization = `Bearer ${session.current.token}`
  let payload
  if (raw !== undefined) {
    payload = raw
    h['Content-Type'] = h['Content-Type'] || 'application/octet-stream'
  } else if (body !== undefined) {
    payload = JSON.stringify(body)
    h['Content-Type'] = 'application/json'
  }
  let res
  try {
    res = await fetch(path, { method, headers: h, body: payload })
  } catch (err) {
    throw new ApiError(0, 'network', err.message)
  }
  try {
    return await parse(res)
  } catch (e) {
    if (e.status === 401 && auth && session.current) {
      saveSession(null)
      onUnauthorized()
    }
    throw e
  }
}

export const get = (path, opts) => request('GET', path, opts)
export const post = (path, body, opts = {}) => request('POST', path, { ...opts, body })

export function qs(params) {
  const u = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue
    u.set(k, Array.isArray(v) ? v.join(',') : String(v))
  }
  const s = u.toString()
  return s ? `?${s}` : ''
}

export async function login(username, password) {
  const r = await request('POST', '/api/v1/login', { body: { username, password }, auth: false })
  // The server's clock may run on --now: the session ends SESSION_HOURS after "now" there.
  const serverAtLogin = new Date(r.expires_at).getTime() - SESSION_HOURS * 3600e3
  const offset = Math.abs(serverAtLogin - Date.now()) < 5000 ? 0 : serverAtLogin - Date.now()
  clockOffset.value = offset
  now.value = serverNow()
  saveSession({ token: r.token, user: r.user, expires_at: r.expires_at, offset })
  return r.user
}

export async function logout() {
  try {
    await request('POST', '/api/v1/logout')
  } catch {
    /* the token may have expired already */
  }
  saveSession(null)
}

/** A random key for Idempotency-Key (crypto.randomUUID needs a secure context). */
export function randomKey() {
  const a = new Uint8Array(16)
  crypto.getRandomValues(a)
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** Uploads a file as the raw body; returns {id, content_type, size}. */
export function upload(file, { publicUpload = false } = {}) {
  const path = publicUpload ? '/api/v1/public/attachments' : '/api/v1/attachments'
  return request('POST', path, { raw: file, headers: { 'Content-Type': file.type || 'application/octet-stream' }, auth: !publicUpload })
}

/** Fetches every page of a case list, up to maxPages. Returns {items, truncated}. */
export async function allCases(params, { maxPages = 10, stopWhen } = {}) {
  const items = []
  let cursor
  for (let i = 0; i < maxPages; i++) {
    const page = await get(`/api/v1/cases${qs({ ...params, limit: 200, cursor })}`)
    items.push(...page.items)
    if (!page.next_cursor) return { items, truncated: false }
    if (stopWhen && page.items.length && stopWhen(page.items[page.items.length - 1])) return { items, truncated: false }
    cursor = page.next_cursor
  }
  return { items, truncated: true }
}
