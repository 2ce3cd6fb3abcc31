// Duplicate suggestions: text similarity (character bigrams, good for Chinese), same category,
// and distance between reported locations.

function bigrams(s) {
  const clean = (s || '').toLowerCase().replace(/[\s\p{P}]+/gu, '')
  const out = new Set()
  for (let i = 0; i < clean.length - 1; i++) out.add(clean.slice(i, i + 2))
  if (clean.length === 1) out.add(clean)
  return out
}

export function dice(a, b) {
  const A = bigrams(a), B = bigrams(b)
  if (!A.size || !B.size) return 0
  let n = 0
  for (const x of A) if (B.has(x)) n++
  return (2 * n) / (A.size + B.size)
}

export function metres(a, b) {
  if (!a || !b) return Infinity
  const R = 6371000, rad = Math.PI / 180
  const dLat = (b.lat - a.lat) * rad, dLng = (b.lng - a.lng) * rad
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2
  return 2 * R * Math.asin(Math.sqrt(h))
}

/** Score of `b` as a duplicate of `a`, 0..1, with the reasons. */
export function dupScore(a, b) {
  const text = Math.max(dice(a.title, b.title), dice(`${a.title}${a.description}`, `${b.title}${b.description}`))
  const d = metres(a.location, b.location)
  let score = text * 0.6
  if (a.category && a.category === b.category) score += 0.15
  if (d < 100) score += 0.25
  else if (d < 300) score += 0.15
  if (a.area_org === b.area_org) score += 0.05
  return { score: Math.min(1, score), text, distance: d }
}
