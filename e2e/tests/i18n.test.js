// Every Chinese string has its English, and the language choice persists.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import zh from '../../web/src/locales/zh-CN.js'
import en from '../../web/src/locales/en.js'
import { launch, newContext, assertSameOrigin, BASE, MOBILE } from '../lib.js'

function keys(o, prefix = '') {
  return Object.entries(o).flatMap(([k, v]) => (typeof v === 'string' ? [`${prefix}${k}`] : keys(v, `${prefix}${k}.`)))
}

test('the English dictionary has every key of the Chinese one, and no more', () => {
  const z = new Set(keys(zh))
  const e = new Set(keys(en))
  assert.deepEqual([...z].filter((k) => !e.has(k)), [], 'missing in English')
  assert.deepEqual([...e].filter((k) => !z.has(k)), [], 'only in English')
  const placeholders = (s) => (s.match(/\{\w+\}/g) || []).sort().join()
  const get = (o, k) => k.split('.').reduce((v, p) => v[p], o)
  for (const k of z) assert.equal(placeholders(get(en, k)), placeholders(get(zh, k)), `placeholders of ${k}`)
})

test('every key the sources use exists', () => {
  const src = new URL('../../web/src/', import.meta.url).pathname
  const files = []
  const walk = (d) => readdirSync(d).forEach((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : /\.(vue|js)$/.test(n) && files.push(join(d, n))))
  walk(src)
  const z = new Set(keys(zh))
  const used = new Set()
  for (const f of files) for (const m of readFileSync(f, 'utf8').matchAll(/\$?\bt\(\s*'([a-z_0-9]+(?:\.[a-z_0-9]+)+)'/g)) used.add(m[1])
  assert.ok(used.size > 100, `found ${used.size} keys`)
  assert.deepEqual([...used].filter((k) => !z.has(k)), [], 'keys used but not translated')
})

let browser
before(async () => {
  browser = await launch()
})
after(() => browser?.close())

test('Chinese first, English on request, remembered', async () => {
  const ctx = await newContext(browser, { viewport: MOBILE, mobile: true })
  const page = await ctx.newPage()
  await page.goto(`${BASE}/report`)
  assert.equal(await page.textContent('h1'), '我要报事')
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN')
  await page.click('[data-t=lang]')
  assert.equal(await page.textContent('h1'), 'Report a problem')
  await page.goto(`${BASE}/track`)
  assert.equal(await page.textContent('h1'), 'Track a report')
  assert.equal(await page.getAttribute('html', 'lang'), 'en')
  await page.click('[data-t=lang]')
  assert.equal(await page.textContent('h1'), '进度查询')
  // the console's routes are served by the server itself (deep links work)
  for (const path of ['/login', '/workbench', '/cases/1', '/inbox', '/dashboard', '/supervision']) {
    const res = await page.request.get(`${BASE}${path}`)
    assert.equal(res.status(), 200, path)
    assert.match(res.headers()['content-type'], /text\/html/)
  }
  // unknown API paths still answer the API's JSON 404
  const api404 = await page.request.get(`${BASE}/api/v1/no-such-thing`)
  assert.equal(api404.status(), 404)
  assert.equal((await api404.json()).error.code, 'not_found')
  assertSameOrigin(ctx)
  await ctx.close()
})
