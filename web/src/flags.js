// 红黄旗: the month's ranking of a street's communities, computed from GET /api/v1/stats
// by_child. The formula is shown in the UI (locales: flags.formula).
//
//   score = 30 × 办结率 + 30 × 按期办结率 + 30 × 满意率 + 10 × (1 − 返工率) − min(10, 超期件数)
//
// A rate with nothing to count (no case closed, none rated) takes the street's average for
// that rate, so a community is neither rewarded nor punished for it; a community that
// received nothing in the month is not ranked. The best two get a red flag, the last two a
// yellow flag (one each when fewer than six communities are ranked).

export const SCORE_WEIGHTS = { closure: 30, on_time: 30, satisfaction: 30, rework: 10, overdue_cap: 10 }

export function scoreCommunities(children) {
  const ranked = children.filter((c) => c.received > 0)
  const avg = (num, den) => {
    const n = ranked.reduce((s, c) => s + num(c), 0)
    const d = ranked.reduce((s, c) => s + den(c), 0)
    return d > 0 ? n / d : 0
  }
  const street = {
    closure: avg((c) => c.closed, (c) => c.received),
    on_time: avg((c) => c.closed_on_time, (c) => c.closed),
    satisfaction: avg((c) => c.satisfied, (c) => c.rated),
    rework: avg((c) => c.rework, (c) => c.closed),
  }
  const W = SCORE_WEIGHTS
  const rows = children.map((c) => {
    const part = (rate, den, key, weight, invert = false) => {
      const imputed = den === 0
      const r = imputed ? street[key] : rate
      return { rate: r, imputed, points: weight * (invert ? 1 - r : r) }
    }
    const parts = {
      closure: part(c.closure_rate, c.received, 'closure', W.closure),
      on_time: part(c.on_time_rate, c.closed, 'on_time', W.on_time),
      satisfaction: part(c.satisfaction_rate, c.rated, 'satisfaction', W.satisfaction),
      rework: part(c.rework_rate, c.closed, 'rework', W.rework, true),
    }
    const penalty = Math.min(W.overdue_cap, c.overdue)
    const score = c.received > 0 ? parts.closure.points + parts.on_time.points + parts.satisfaction.points + parts.rework.points - penalty : null
    return { org: c.org, name: c.name, received: c.received, overdue: c.overdue, parts, penalty, score, rank: null, flag: '' }
  })
  const order = rows.filter((r) => r.score != null).sort((a, b) => b.score - a.score || b.received - a.received)
  order.forEach((r, i) => (r.rank = i + 1))
  const k = order.length >= 6 ? 2 : order.length >= 2 ? 1 : 0
  order.slice(0, k).forEach((r) => (r.flag = 'red'))
  order.slice(order.length - k).forEach((r) => (r.flag = 'yellow'))
  rows.sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9))
  return { rows, street }
}
