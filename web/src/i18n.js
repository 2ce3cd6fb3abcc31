// A tiny i18n: two dictionaries, a persisted locale, `t(key, params)`.
// Missing English strings fall back to Chinese, then to the key (tests check none is missing).
import { ref } from 'vue'
import zh from './locales/zh-CN.js'
import en from './locales/en.js'

export const LOCALES = { 'zh-CN': zh, en }
const KEY = 'gl.lang'

function initial() {
  try {
    const saved = localStorage.getItem(KEY)
    if (saved && LOCALES[saved]) return saved
  } catch {
    /* storage may be disabled */
  }
  return 'zh-CN'
}

export const locale = ref(initial())
document.documentElement.lang = locale.value

export function setLocale(l) {
  if (!LOCALES[l]) return
  locale.value = l
  document.documentElement.lang = l
  try {
    localStorage.setItem(KEY, l)
  } catch {
    /* ignore */
  }
}

function lookup(dict, key) {
  let v = dict
  for (const part of key.split('.')) {
    if (v == null) return undefined
    v = v[part]
  }
  return typeof v === 'string' ? v : undefined
}

export function t(key, params) {
  const s = lookup(LOCALES[locale.value], key) ?? lookup(zh, key) ?? key
  if (!params) return s
  return s.replace(/\{(\w+)\}/g, (m, k) => (params[k] !== undefined && params[k] !== null ? String(params[k]) : m))
}

/** Whether a key exists in the current locale (e.g. an enum value the UI may not know). */
export function has(key) {
  return lookup(LOCALES[locale.value], key) !== undefined
}

/** Label of an enum value: `enumLabel('status', 'reported')` → 待受理. Unknown values as is. */
export function enumLabel(group, value) {
  if (value == null || value === '') return '—'
  const k = `${group}.${value}`
  return has(k) || lookup(zh, k) ? t(k) : String(value)
}

export const isZh = () => locale.value === 'zh-CN'
