// Point in polygon (ray casting) for GeoJSON Polygon / MultiPolygon, [lng, lat] order.
function inRing(lng, lat, ring) {
  let inside = false
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i]
    const [xj, yj] = ring[j]
    if (yi > lat !== yj > lat && lng < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside
  }
  return inside
}

export function contains(geometry, { lat, lng }) {
  if (!geometry) return false
  const polys = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.type === 'MultiPolygon' ? geometry.coordinates : []
  return polys.some((rings) => rings.length && inRing(lng, lat, rings[0]) && !rings.slice(1).some((h) => inRing(lng, lat, h)))
}

/** The first feature (with `geometry`) that contains the point. */
export function locate(features, point) {
  return features.find((f) => contains(f.geometry, point)) || null
}

/** A point inside a polygon's outer ring (its bbox centre, or a vertex-average fallback). */
export function interiorPoint(geometry) {
  const rings = geometry.type === 'Polygon' ? geometry.coordinates : geometry.coordinates[0]
  const ring = rings[0]
  let minx = Infinity, miny = Infinity, maxx = -Infinity, maxy = -Infinity
  for (const [x, y] of ring) {
    minx = Math.min(minx, x); miny = Math.min(miny, y); maxx = Math.max(maxx, x); maxy = Math.max(maxy, y)
  }
  const c = { lng: (minx + maxx) / 2, lat: (miny + maxy) / 2 }
  if (contains(geometry, c)) return c
  const n = ring.length - 1
  return { lng: ring.slice(0, n).reduce((s, p) => s + p[0], 0) / n, lat: ring.slice(0, n).reduce((s, p) => s + p[1], 0) / n }
}
