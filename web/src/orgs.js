// The org tree the caller may see (GET /api/v1/orgs?include=boundary), loaded once per login.
import { reactive } from 'vue'
import { get } from './api.js'
import { t } from './i18n.js'

export const orgs = reactive({ list: [], loaded: false, error: null })
const byCode = new Map()
const children = new Map()
let loading = null

export function resetOrgs() {
  orgs.list = []
  orgs.loaded = false
  byCode.clear()
  children.clear()
  loading = null
}

export function loadOrgs() {
  if (orgs.loaded) return Promise.resolve(orgs.list)
  if (loading) return loading
  loading = get('/api/v1/orgs?include=boundary')
    .then((r) => {
      byCode.clear()
      children.clear()
      for (const o of r.items) byCode.set(o.code, o)
      for (const o of r.items) {
        if (o.parent && byCode.has(o.parent)) {
          if (!children.has(o.parent)) children.set(o.parent, [])
          children.get(o.parent).push(o)
        }
      }
      for (const list of children.values()) list.sort((a, b) => a.code.localeCompare(b.code))
      orgs.list = r.items
      orgs.loaded = true
      return r.items
    })
    .catch((e) => {
      orgs.error = e
      loading = null
      throw e
    })
  return loading
}

// Each reader touches `orgs.list` so that what it renders updates once the tree has loaded.
export const org = (code) => (void orgs.list, byCode.get(code))
// Orgs outside the caller's subtree (e.g. the city a case was escalated to) have no name here.
export const orgName = (code) => (code ? org(code)?.name || (orgs.loaded ? t('common.outside_org', { code }) : code) : '—')
export const childrenOf = (code) => (void orgs.list, children.get(code) || [])
/** Whether the caller's subtree holds this org. */
export const inMyTree = (code) => (void orgs.list, byCode.has(code))

/** The top orgs of the caller's tree (those whose parent is not visible). */
export function roots() {
  return orgs.list.filter((o) => !o.parent || !byCode.has(o.parent))
}

/** Ancestors of an org, root first, the org itself last (only the visible part). */
export function pathOf(code) {
  const out = []
  let o = org(code)
  while (o) {
    out.unshift(o)
    o = o.parent ? byCode.get(o.parent) : null
  }
  return out
}

/** Every org below `code` (not itself), depth first. */
export function descendants(code) {
  const out = []
  const walk = (c) => {
    for (const ch of childrenOf(c)) {
      out.push(ch)
      walk(ch.code)
    }
  }
  walk(code)
  return out
}

/** Whether `code` is `ancestor` or below it. */
export function isUnder(code, ancestor) {
  let o = byCode.get(code)
  while (o) {
    if (o.code === ancestor) return true
    o = o.parent ? byCode.get(o.parent) : null
  }
  return false
}

/** The nearest ancestor-or-self of `code` at a given level. */
export function ancestorAt(code, level) {
  let o = byCode.get(code)
  while (o) {
    if (o.level === level) return o
    o = o.parent ? byCode.get(o.parent) : null
  }
  return null
}

/** Orgs a case may be dispatched to: grids, communities, streets and departments. */
export const DISPATCH_LEVELS = ['street', 'community', 'grid', 'department']

/** The tree flattened for a <select>, with depth for indentation, units left out. */
export function flatTree(filter = (o) => o.level !== 'unit') {
  const out = []
  const walk = (o, depth) => {
    if (!filter(o)) return
    out.push({ ...o, depth })
    for (const ch of childrenOf(o.code)) walk(ch, depth + 1)
  }
  for (const r of roots()) walk(r, 0)
  return out
}

/** Orgs that carry a boundary, as GeoMap features. */
export function boundaryFeatures(filter = () => true) {
  return orgs.list.filter((o) => o.boundary && filter(o)).map((o) => ({ code: o.code, name: o.name, level: o.level, geometry: o.boundary }))
}
