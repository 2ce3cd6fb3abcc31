// A dispatcher sees only their own street: a case of another street is neither listed nor
// shown (its page reads "not found", exactly like a missing case).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { launch, newContext, assertSameOrigin, login, api, token, BASE } from '../lib.js'

let browser
before(async () => {
  browser = await launch()
})
after(() => browser?.close())

test('the dispatcher cannot see a case of another street', async () => {
  const bin = process.env.GL_BIN
  const data = process.env.GL_DATA
  assert.ok(bin && data, 'GL_BIN and GL_DATA are set by scripts/e2e.sh')
  // another street with its own centre (made here unless the demo city has it already)
  const cityOrgs = (await api('GET', '/api/v1/orgs', { token: await token('admin') })).body.items
  if (!cityOrgs.some((o) => o.code === '330782004'))
    execFileSync(bin, ['org', 'add', '--data', data, '--code', '330782004', '--name', '北苑街道', '--level', 'street', '--parent', '330782'], { stdio: 'pipe' })
  execFileSync(bin, ['user', 'add', '--data', data, '--username', 'dispatcher_b', '--role', 'dispatcher', '--org', '330782004'], { input: 'pw12345678\n', stdio: ['pipe', 'pipe', 'pipe'] })
  const tb = await token('dispatcher_b', 'pw12345678')
  const title = `北苑街道 E2E 井盖缺失 ${Date.now()}`
  const made = await api('POST', '/api/v1/cases', { token: tb, body: { channel: 'hotline', title, description: '北苑街道的事件', org: '330782004', reporter: { name: '李四', phone: '13900002222' } } })
  assert.equal(made.status, 201, JSON.stringify(made.body))
  const id = made.body.id

  const ctx = await newContext(browser)
  const page = await ctx.newPage()
  await login(page, 'dispatcher')
  await page.goto(`${BASE}/cases?queue=all&q=${encodeURIComponent('北苑街道 E2E')}`)
  await page.waitForSelector('[data-t=empty]')
  assert.equal(await page.locator(`[data-id="${id}"]`).count(), 0)
  await page.goto(`${BASE}/workbench`)
  await page.waitForSelector('[data-t=case-table] tbody tr')
  assert.equal(await page.locator(`[data-id="${id}"]`).count(), 0, 'not in the new-case queue')
  await page.goto(`${BASE}/cases/${id}`)
  await page.waitForSelector('[data-t=not-found]')
  // and the API agrees
  assert.equal((await api('GET', `/api/v1/cases/${id}`, { token: await token('dispatcher') })).status, 404)
  // while its own dispatcher sees it
  assert.equal((await api('GET', `/api/v1/cases/${id}`, { token: tb })).status, 200)
  assertSameOrigin(ctx)
  await ctx.close()
})
