//! Routing a location to the grid that contains it: point-in-polygon over GeoJSON
//! Polygon/MultiPolygon boundaries (WGS-84, `[lng, lat]` order), holes respected.
//!
//! A [`Boundary`] keeps its vertices in one flat array with the ring ends beside it (no
//! allocation per polygon or ring). A [`BoundarySet`] holds many boundaries in a few shared
//! arrays, for the routing index of a province (half a million micro-grids): vertices that
//! are whole multiples of 10⁻⁷ degree, as GIS exports write them, are kept as `i32` in that
//! unit (half the bytes), the rest as `f64`. Both answer exactly the same as the GeoJSON
//! coordinates would: a vertex is stored as `i32` only when dividing it by 10⁷ gives back the
//! very `f64` it was parsed as.

use serde_json::Value;

use crate::case::Location;

/// Set on a ring's end offset when the ring is the outer ring of a polygon (the rings after
/// it, up to the next such ring, are its holes).
const OUTER: u32 = 1 << 31;

/// The unit of vertices kept as integers: 10⁻⁷ degree (about a centimetre).
const FIXED_SCALE: f64 = 1e7;

/// A boundary parsed once for fast repeated tests.
#[derive(Debug, Clone)]
pub struct Boundary {
    /// Every ring's (lng, lat) vertices, ring after ring, polygon after polygon.
    points: Vec<(f64, f64)>,
    /// Where each ring ends in `points`, [`OUTER`] set on each polygon's first ring.
    rings: Vec<u32>,
    /// Polygons, counted with those without rings (they contain nothing).
    polygons: usize,
    pub bbox: (f64, f64, f64, f64),
}

impl Boundary {
    /// Parses a GeoJSON Polygon or MultiPolygon geometry (or a Feature carrying one).
    pub fn from_geojson(v: &Value) -> Option<Boundary> {
        let geom = if v.get("type")?.as_str()? == "Feature" {
            v.get("geometry")?
        } else {
            v
        };
        let coords = geom.get("coordinates")?;
        let mut b = Boundary {
            points: Vec::new(),
            rings: Vec::new(),
            polygons: 0,
            bbox: (f64::MAX, f64::MAX, f64::MIN, f64::MIN),
        };
        match geom.get("type")?.as_str()? {
            "Polygon" => b.push_polygon(coords)?,
            "MultiPolygon" => {
                for polygon in coords.as_array()? {
                    b.push_polygon(polygon)?;
                }
            }
            _ => return None,
        }
        if b.polygons == 0 {
            return None;
        }
        b.points.shrink_to_fit();
        b.rings.shrink_to_fit();
        Some(b)
    }

    fn push_polygon(&mut self, v: &Value) -> Option<()> {
        self.polygons += 1;
        for (k, ring) in v.as_array()?.iter().enumerate() {
            let ring = ring.as_array()?;
            if ring.len() < 4 {
                return None;
            }
            for pt in ring {
                let (x, y) = (pt.get(0)?.as_f64()?, pt.get(1)?.as_f64()?);
                if k == 0 {
                    // The outer rings make the box; holes lie inside them.
                    self.bbox = (
                        self.bbox.0.min(x),
                        self.bbox.1.min(y),
                        self.bbox.2.max(x),
                        self.bbox.3.max(y),
                    );
                }
                self.points.push((x, y));
            }
            let end = offset(self.points.len());
            self.rings.push(if k == 0 { end | OUTER } else { end });
        }
        Some(())
    }

    /// Whether the point lies inside (or on the edge of) the boundary.
    pub fn contains(&self, p: Location) -> bool {
        let (x, y) = (p.lng, p.lat);
        if x < self.bbox.0 || x > self.bbox.2 || y < self.bbox.1 || y > self.bbox.3 {
            return false;
        }
        shape_contains(&self.rings, 0, &self.points[..], x, y)
    }

    pub fn polygons(&self) -> usize {
        self.polygons
    }

    pub fn rings(&self) -> usize {
        self.rings.len()
    }

    pub fn vertices(&self) -> usize {
        self.points.len()
    }
}

/// Many boundaries in shared flat arrays, numbered in the order they were pushed.
#[derive(Debug, Default)]
pub struct BoundarySet {
    /// Per boundary, its first ring in `rings`; one more at the end.
    first_ring: Vec<u32>,
    /// Per boundary, its first vertex, in `float` when [`OUTER`] is set, else in `fixed`.
    first_vertex: Vec<u32>,
    /// Ring ends in the boundary's vertex array, [`OUTER`] marking each polygon's first ring.
    rings: Vec<u32>,
    fixed: Vec<[i32; 2]>,
    float: Vec<(f64, f64)>,
}

impl BoundarySet {
    pub fn new() -> BoundarySet {
        BoundarySet {
            first_ring: vec![0],
            ..BoundarySet::default()
        }
    }

    /// Adds a boundary and returns its number.
    pub fn push(&mut self, b: &Boundary) -> u32 {
        let n = offset(self.first_vertex.len());
        let fixed: Option<Vec<[i32; 2]>> = b
            .points
            .iter()
            .map(|&(x, y)| Some([to_fixed(x)?, to_fixed(y)?]))
            .collect();
        let base = match fixed {
            Some(points) => {
                let base = self.fixed.len();
                self.fixed.extend(points);
                self.first_vertex.push(offset(base));
                base
            }
            None => {
                let base = self.float.len();
                self.float.extend_from_slice(&b.points);
                self.first_vertex.push(offset(base) | OUTER);
                base
            }
        };
        self.rings.extend(
            b.rings
                .iter()
                .map(|&end| offset((end & !OUTER) as usize + base) | (end & OUTER)),
        );
        self.first_ring.push(offset(self.rings.len()));
        n
    }

    pub fn len(&self) -> usize {
        self.first_vertex.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first_vertex.is_empty()
    }

    /// [`Boundary::contains`] of boundary `i`.
    pub fn contains(&self, i: u32, p: Location) -> bool {
        let i = i as usize;
        let rings = &self.rings[self.first_ring[i] as usize..self.first_ring[i + 1] as usize];
        let first = self.first_vertex[i];
        let start = (first & !OUTER) as usize;
        let (x, y) = (p.lng, p.lat);
        // The exact test first: the index asking has already checked (a rounded) box, so
        // the box here only matters for points a hair outside it.
        if first & OUTER != 0 {
            shape_contains(rings, start, &self.float[..], x, y)
                && in_box(bbox_of(rings, start, &self.float[..]), x, y)
        } else {
            let fixed = Fixed(&self.fixed);
            shape_contains(rings, start, &fixed, x, y)
                && in_box(bbox_of(rings, start, &fixed), x, y)
        }
    }

    /// Heap bytes held (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        4 * (self.first_ring.capacity() + self.first_vertex.capacity() + self.rings.capacity())
            + 8 * self.fixed.capacity()
            + 16 * self.float.capacity()
    }

    /// Vertices kept as integers and as floats.
    pub fn vertices(&self) -> (usize, usize) {
        (self.fixed.len(), self.float.len())
    }

    pub fn shrink_to_fit(&mut self) {
        self.first_ring.shrink_to_fit();
        self.first_vertex.shrink_to_fit();
        self.rings.shrink_to_fit();
        self.fixed.shrink_to_fit();
        self.float.shrink_to_fit();
    }
}

/// An index into the flat arrays, which stay below 2³¹ entries (the top bit is a flag).
fn offset(n: usize) -> u32 {
    u32::try_from(n)
        .ok()
        .filter(|n| n & OUTER == 0)
        .expect("fewer than 2³¹ vertices and rings")
}

/// The coordinate as a whole number of 10⁻⁷ degrees, if that gives it back exactly.
fn to_fixed(c: f64) -> Option<i32> {
    let n = (c * FIXED_SCALE).round();
    if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&n) {
        return None;
    }
    let n = n as i32;
    (from_fixed(n).to_bits() == c.to_bits()).then_some(n)
}

/// Division, not multiplication by 10⁻⁷: it is correctly rounded, so it gives back the
/// `f64` nearest the decimal, which is what parsing the decimal gave.
fn from_fixed(n: i32) -> f64 {
    f64::from(n) / FIXED_SCALE
}

/// Vertices by number, however they are kept.
trait Vertices {
    fn at(&self, i: usize) -> (f64, f64);
}

impl Vertices for [(f64, f64)] {
    #[inline]
    fn at(&self, i: usize) -> (f64, f64) {
        self[i]
    }
}

struct Fixed<'a>(&'a [[i32; 2]]);

impl Vertices for Fixed<'_> {
    #[inline]
    fn at(&self, i: usize) -> (f64, f64) {
        let [x, y] = self.0[i];
        (from_fixed(x), from_fixed(y))
    }
}

/// Whether any polygon of the rings (ends as in [`Boundary::rings`], the first ring
/// starting at `start`) contains the point: inside its outer ring and not strictly inside
/// one of its holes.
fn shape_contains<V: Vertices + ?Sized>(
    rings: &[u32],
    start: usize,
    v: &V,
    x: f64,
    y: f64,
) -> bool {
    let mut k = 0;
    let mut from = start;
    while k < rings.len() {
        let outer_end = (rings[k] & !OUTER) as usize;
        let inside = in_ring(v, from, outer_end, x, y);
        from = outer_end;
        k += 1;
        let mut in_hole = false;
        while k < rings.len() && rings[k] & OUTER == 0 {
            let end = rings[k] as usize;
            if inside && !in_hole {
                in_hole = in_ring(v, from, end, x, y) && !on_ring(v, from, end, x, y);
            }
            from = end;
            k += 1;
        }
        if inside && !in_hole {
            return true;
        }
    }
    false
}

/// The box of the outer rings.
fn bbox_of<V: Vertices + ?Sized>(rings: &[u32], start: usize, v: &V) -> (f64, f64, f64, f64) {
    let mut bbox = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    let mut from = start;
    for &end in rings {
        let to = (end & !OUTER) as usize;
        if end & OUTER != 0 {
            for i in from..to {
                let (x, y) = v.at(i);
                bbox = (bbox.0.min(x), bbox.1.min(y), bbox.2.max(x), bbox.3.max(y));
            }
        }
        from = to;
    }
    bbox
}

fn in_box(bbox: (f64, f64, f64, f64), x: f64, y: f64) -> bool {
    !(x < bbox.0 || x > bbox.2 || y < bbox.1 || y > bbox.3)
}

/// Even-odd ray casting over the vertices `from..to`; points on an edge count as inside.
fn in_ring<V: Vertices + ?Sized>(v: &V, from: usize, to: usize, x: f64, y: f64) -> bool {
    if on_ring(v, from, to, x, y) {
        return true;
    }
    let mut inside = false;
    let (mut xj, mut yj) = v.at(to - 1);
    for i in from..to {
        let (xi, yi) = v.at(i);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        (xj, yj) = (xi, yi);
    }
    inside
}

/// Whether the point is on one of the edges between consecutive vertices of `from..to`.
fn on_ring<V: Vertices + ?Sized>(v: &V, from: usize, to: usize, x: f64, y: f64) -> bool {
    let (mut x1, mut y1) = v.at(from);
    for i in from + 1..to {
        let (x2, y2) = v.at(i);
        let cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1);
        if cross.abs() < 1e-12
            && x >= x1.min(x2) - 1e-12
            && x <= x1.max(x2) + 1e-12
            && y >= y1.min(y2) - 1e-12
            && y <= y1.max(y2) + 1e-12
        {
            return true;
        }
        (x1, y1) = (x2, y2);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(lng: f64, lat: f64) -> Location {
        Location { lat, lng }
    }

    #[test]
    fn polygon_with_hole_and_concave() {
        // A "U" shape with a hole in the left arm.
        let b = Boundary::from_geojson(&json!({"type":"Polygon","coordinates":[
            [[0,0],[3,0],[3,3],[2,3],[2,1],[1,1],[1,3],[0,3],[0,0]],
            [[0.2,1.5],[0.8,1.5],[0.8,2.5],[0.2,2.5],[0.2,1.5]]
        ]}))
        .unwrap();
        assert!(b.contains(at(0.5, 0.5)));
        assert!(!b.contains(at(1.5, 2.0)), "the notch of the U is outside");
        assert!(!b.contains(at(0.5, 2.0)), "the hole is outside");
        assert!(b.contains(at(2.5, 2.5)));
        assert!(b.contains(at(3.0, 1.0)), "a point on the border is inside");
        assert!(!b.contains(at(4.0, 1.0)));
    }

    #[test]
    fn multipolygon() {
        let b = Boundary::from_geojson(&json!({"type":"MultiPolygon","coordinates":[
            [[[0,0],[1,0],[1,1],[0,1],[0,0]]],
            [[[5,5],[6,5],[6,6],[5,6],[5,5]]]
        ]}))
        .unwrap();
        assert!(b.contains(at(5.5, 5.5)));
        assert!(!b.contains(at(3.0, 3.0)));
        assert!(Boundary::from_geojson(&json!({"type":"Point","coordinates":[0,0]})).is_none());
        assert!(Boundary::from_geojson(&json!({"type":"MultiPolygon","coordinates":[]})).is_none());
        let short = json!({"type":"Polygon","coordinates":[[[0,0],[1,0],[0,0]]]});
        assert!(
            Boundary::from_geojson(&short).is_none(),
            "a ring needs four positions"
        );
    }

    #[test]
    fn a_set_answers_as_its_boundaries() {
        // Whole 10⁻⁷ degrees (kept as integers), finer ones (kept as floats), holes, several
        // polygons, a -0.0 and a polygon without rings, side by side in one set.
        let shapes = [
            json!({"type":"Polygon","coordinates":[
                [[120.05,29.28],[120.0512,29.2811],[120.0507,29.2823],[120.046,29.2852],[120.05,29.28]],
                [[120.049,29.281],[120.0495,29.281],[120.0495,29.2815],[120.049,29.281]]
            ]}),
            json!({"type":"MultiPolygon","coordinates":[
                [[[0.1,0.1],[0.300000001,0.1],[0.3,0.3],[0.1,0.3],[0.1,0.1]]],
                [[[-0.0,-1],[1,-1],[1,-0.5],[-0.0,-1]]],
                []
            ]}),
            json!({"type":"Polygon","coordinates":[[[0,0],[3,0],[3,3],[2,3],[2,1],[1,1],[1,3],[0,3],[0,0]]]}),
        ];
        let boundaries: Vec<Boundary> = shapes
            .iter()
            .map(|v| Boundary::from_geojson(v).unwrap())
            .collect();
        let mut set = BoundarySet::new();
        for (k, b) in boundaries.iter().enumerate() {
            assert_eq!(set.push(b), k as u32);
        }
        assert_eq!(set.len(), 3);
        assert_eq!(
            set.vertices(),
            (18, 9),
            "the first and the last as integers"
        );
        assert_eq!(boundaries[1].polygons(), 3);
        let mut probes = vec![at(120.048, 29.282), at(120.0492, 29.2811), at(3.0, 1.5)];
        for b in &boundaries {
            let (x0, y0, x1, y1) = b.bbox;
            for i in 0..=40 {
                for j in 0..=40 {
                    let (fx, fy) = (i as f64 / 40.0, j as f64 / 40.0);
                    probes.push(at(x0 + (x1 - x0) * fx, y0 + (y1 - y0) * fy));
                }
            }
            // Every vertex and every edge's midpoint: on the border.
            for w in b.points.windows(2) {
                probes.push(at(w[0].0, w[0].1));
                probes.push(at((w[0].0 + w[1].0) / 2.0, (w[0].1 + w[1].1) / 2.0));
            }
        }
        let mut inside = 0;
        for p in probes {
            for (k, b) in boundaries.iter().enumerate() {
                assert_eq!(set.contains(k as u32, p), b.contains(p), "{k} {p:?}");
                inside += usize::from(b.contains(p));
            }
        }
        assert!(inside > 1_000);
    }
}

/// The coordinate systems reports arrive in. Phones' GPS and 天地图 give WGS-84/CGCS2000;
/// 高德 and 腾讯 give GCJ-02; 百度 gives BD-09. Everything is stored in WGS-84.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Crs {
    #[default]
    Wgs84,
    Cgcs2000,
    Gcj02,
    Bd09,
}

impl Crs {
    pub fn parse(s: &str) -> Option<Crs> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "wgs84" | "epsg4326" => Some(Crs::Wgs84),
            "cgcs2000" | "epsg4490" => Some(Crs::Cgcs2000),
            "gcj02" => Some(Crs::Gcj02),
            "bd09" | "bd09ll" => Some(Crs::Bd09),
            _ => None,
        }
    }

    /// Converts a point in this system to WGS-84. GCJ-02 has no closed-form inverse; the
    /// iteration converges to well under a metre.
    pub fn to_wgs84(self, p: Location) -> Location {
        match self {
            Crs::Wgs84 | Crs::Cgcs2000 => p,
            Crs::Gcj02 => gcj02_to_wgs84(p),
            Crs::Bd09 => gcj02_to_wgs84(bd09_to_gcj02(p)),
        }
    }
}

const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;

fn out_of_china(p: Location) -> bool {
    !(72.004..=137.8347).contains(&p.lng) || !(0.8293..=55.8271).contains(&p.lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lng(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS-84 → GCJ-02 (the published "Mars coordinates" offset).
pub fn wgs84_to_gcj02(p: Location) -> Location {
    use std::f64::consts::PI;
    if out_of_china(p) {
        return p;
    }
    let dlat = transform_lat(p.lng - 105.0, p.lat - 35.0);
    let dlng = transform_lng(p.lng - 105.0, p.lat - 35.0);
    let radlat = p.lat / 180.0 * PI;
    let magic = 1.0 - EE * radlat.sin() * radlat.sin();
    let sqrtmagic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrtmagic) * PI);
    let dlng = (dlng * 180.0) / (A / sqrtmagic * radlat.cos() * PI);
    Location {
        lat: p.lat + dlat,
        lng: p.lng + dlng,
    }
}

/// GCJ-02 → WGS-84 by fixed-point iteration on the forward transform.
pub fn gcj02_to_wgs84(p: Location) -> Location {
    let mut w = p;
    for _ in 0..10 {
        let g = wgs84_to_gcj02(w);
        let (dlat, dlng) = (g.lat - p.lat, g.lng - p.lng);
        w = Location {
            lat: w.lat - dlat,
            lng: w.lng - dlng,
        };
        if dlat.abs() < 1e-9 && dlng.abs() < 1e-9 {
            break;
        }
    }
    w
}

/// BD-09 → GCJ-02 (Baidu's further offset).
pub fn bd09_to_gcj02(p: Location) -> Location {
    const X_PI: f64 = std::f64::consts::PI * 3000.0 / 180.0;
    let x = p.lng - 0.0065;
    let y = p.lat - 0.006;
    let z = (x * x + y * y).sqrt() - 0.00002 * (y * X_PI).sin();
    let theta = y.atan2(x) - 0.000003 * (x * X_PI).cos();
    Location {
        lat: z * theta.sin(),
        lng: z * theta.cos(),
    }
}

/// Great-circle distance in metres.
pub fn distance_m(a: Location, b: Location) -> f64 {
    let r = 6_371_008.8;
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dla = la2 - la1;
    let dlo = (b.lng - a.lng).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

#[cfg(test)]
mod crs_tests {
    use super::*;

    #[test]
    fn gcj02_round_trip_and_offset() {
        // 稠江, Yiwu.
        let w = Location {
            lat: 29.28,
            lng: 120.05,
        };
        let g = wgs84_to_gcj02(w);
        let offset = distance_m(w, g);
        assert!((50.0..=700.0).contains(&offset), "GCJ-02 offset {offset} m");
        let back = gcj02_to_wgs84(g);
        assert!(distance_m(back, w) < 0.5, "round trip within half a metre");
        // Outside China nothing moves.
        let paris = Location {
            lat: 48.85,
            lng: 2.35,
        };
        assert_eq!(wgs84_to_gcj02(paris), paris);
        assert_eq!(Crs::parse("GCJ-02"), Some(Crs::Gcj02));
        let bd = Crs::Bd09.to_wgs84(Location {
            lat: 29.2865,
            lng: 120.0612,
        });
        assert!(distance_m(bd, w) < 2000.0);
    }
}
