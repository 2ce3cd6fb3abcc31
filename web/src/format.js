// Dates, durations and numbers in the conventions of the current locale.
// Times show in the deployment's zone (China Standard Time), whatever the browser's zone.
import { locale, t } from './i18n.js'

export const TZ = 'Asia/Shanghai'

const partsFmt = new Intl.DateTimeFormat('en-CA', {
  timeZone: TZ,
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23',
  weekday: 'short',
})

/** {y, m, d, hh, mm, wd} of an instant in the deployment's zone. */
export function localParts(date) {
  const d = date instanceof Date ? date : new Date(date)
  const p = {}
  for (const { type, value } of partsFmt.formatToParts(d)) p[type] = value
  return {
    y: +p.year,
    m: +p.month,
    d: +p.day,
    hh: p.hour === '24' ? '00' : p.hour,
    mm: p.minute,
    wd: p.weekday,
  }
}

const MONTHS_EN = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** 2026年11月24日 10:00 / 24 Nov 2026 10:00 */
export function fmtDateTime(v) {
  if (!v) return '—'
  const p = localParts(v)
  if (locale.value === 'zh-CN') return `${p.y}年${p.m}月${p.d}日 ${p.hh}:${p.mm}`
  return `${p.d} ${MONTHS_EN[p.m - 1]} ${p.y} ${p.hh}:${p.mm}`
}

/** 2026年11月24日 / 24 Nov 2026 */
export function fmtDate(v) {
  if (!v) return '—'
  const p = localParts(v)
  if (locale.value === 'zh-CN') return `${p.y}年${p.m}月${p.d}日`
  return `${p.d} ${MONTHS_EN[p.m - 1]} ${p.y}`
}

/** 11月24日 10:00 when in the current year; the full form otherwise. */
export function fmtShort(v, now = Date.now()) {
  if (!v) return '—'
  const p = localParts(v)
  const n = localParts(now)
  if (p.y !== n.y) return fmtDateTime(v)
  if (locale.value === 'zh-CN') return `${p.m}月${p.d}日 ${p.hh}:${p.mm}`
  return `${p.d} ${MONTHS_EN[p.m - 1]} ${p.hh}:${p.mm}`
}

/** 2026年11月 / Nov 2026 from 'YYYY-MM' */
export function fmtMonth(ym) {
  const [y, m] = ym.split('-').map(Number)
  if (locale.value === 'zh-CN') return `${y}年${m}月`
  return `${MONTHS_EN[m - 1]} ${y}`
}

/** 'YYYY-MM-DD' of an instant in the deployment's zone. */
export function isoDay(v) {
  const p = localParts(v)
  return `${p.y}-${String(p.m).padStart(2, '0')}-${String(p.d).padStart(2, '0')}`
}

/** A duration in words: 3 天 4 小时 / 3 d 4 h. */
export function fmtDuration(ms) {
  const mins = Math.max(0, Math.floor(ms / 60000))
  const days = Math.floor(mins / 1440)
  const hours = Math.floor((mins % 1440) / 60)
  const m = mins % 60
  if (days > 0) return hours > 0 ? t('time.dh', { d: days, h: hours }) : t('time.d', { d: days })
  if (hours > 0) return t('time.h', { h: hours })
  return t('time.m', { m: Math.max(m, 1) })
}

/** 剩余 3 小时 / 超期 2 天 and an urgency class for a deadline. */
export function countdown(deadline, now) {
  if (!deadline) return { text: '—', level: 'none' }
  const left = new Date(deadline).getTime() - now
  if (left < 0) return { text: t('time.overdue_by', { d: fmtDuration(-left) }), level: 'over' }
  const level = left < 4 * 3600e3 ? 'urgent' : left < 24 * 3600e3 ? 'soon' : 'ok'
  return { text: t('time.left', { d: fmtDuration(left) }), level }
}

export function fmtNumber(n) {
  if (n == null || Number.isNaN(n)) return '—'
  return new Intl.NumberFormat(locale.value === 'zh-CN' ? 'zh-CN' : 'en-GB').format(n)
}

/** A rate (0..1) as 85.3%. */
export function fmtRate(r, digits = 1) {
  if (r == null || Number.isNaN(r)) return '—'
  return `${(r * 100).toFixed(digits)}%`
}
