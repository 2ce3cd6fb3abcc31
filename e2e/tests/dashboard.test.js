// The leader's dashboard draws its charts from the demo data, drills down, ranks communities.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { launch, newContext, assertSameOrigin, login, shot, BASE } from '../lib.js'

let browser
before(async () => {
  browser = await launch()
})
after(() => browser?.close())

/** How many pixels of each chart canvas are painted. */
const paintedPixels = (page) =>
  page.$$eval('[data-t=chart] canvas', (cs) =>
    cs.map((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
      let n = 0
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++
      return n
    }),
  )

test('the dashboard renders charts, a map of grids and the red/yellow flags', async () => {
  const ctx = await newContext(browser)
  const page = await ctx.newPage()
  await login(page, 'leader')
  await page.waitForURL('**/dashboard')
  await page.waitForFunction(() => document.querySelectorAll('[data-t=chart] canvas').length >= 6, null, { timeout: 20000 })
  await page.waitForSelector('[data-t=kpis] .kpi')
  await page.waitForSelector('[data-t=red-flag]')
  await page.waitForTimeout(800) // let the charts finish their animation
  const painted = await paintedPixels(page)
  assert.ok(painted.length >= 6, `charts: ${painted.length}`)
  for (const n of painted) assert.ok(n > 500, `every chart canvas is drawn on (${painted})`)
  assert.ok((await page.textContent('[data-t=formula]')).includes('办结率'), 'the scoring formula is shown')
  assert.ok((await page.locator('[data-t=yellow-flag]').count()) >= 1)
  await shot(page, 'dashboard', { fullPage: true })

  // drill down: street → community (click the first community of the table)
  const before = await page.locator('[data-t=crumbs] button').count()
  await page.locator('[data-t=child-table] tbody tr').first().click()
  await page.waitForFunction((n) => document.querySelectorAll('[data-t=crumbs] button').length === n + 1, before)
  await page.waitForFunction(() => document.querySelectorAll('[data-t=chart] canvas').length >= 4)
  // and the English dashboard has no untranslated keys
  await page.click('[data-t=lang]')
  await page.waitForTimeout(300)
  const text = await page.textContent('main')
  assert.ok(text.includes('Dashboard'), 'switched to English')
  assert.ok(!/\b(dash|flags|m|wb|case)\.[a-z_]+\b/.test(text), 'no raw i18n keys on the page')
  assertSameOrigin(ctx)
  await ctx.close()
})
