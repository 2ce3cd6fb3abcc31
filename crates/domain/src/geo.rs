//! Routing a location to the grid that contains it: point-in-polygon over GeoJSON
//! Polygon/MultiPolygon boundaries (WGS-84, `[lng, lat]` order), holes respected.

use serde_json::Value;

use crate::case::Location;

/// A boundary parsed once for fast repeated tests.
#[derive(Debug, Clone)]
pub struct Boundary {
    /// Polygons, each a list of rings (outer first, then holes), each a list of (lng, lat).
    polygons: Vec<Vec<Vec<(f64, f64)>>>,
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
        let polygons = match geom.get("type")?.as_str()? {
            "Polygon" => vec![parse_polygon(coords)?],
            "MultiPolygon" => coords
                .as_array()?
                .iter()
                .map(parse_polygon)
                .collect::<Option<_>>()?,
            _ => return None,
        };
        let mut bbox = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for (x, y) in polygons.iter().flat_map(|p| p.first()).flatten() {
            bbox = (
                bbox.0.min(*x),
                bbox.1.min(*y),
                bbox.2.max(*x),
                bbox.3.max(*y),
            );
        }
        if polygons.is_empty() {
            return None;
        }
        Some(Boundary { polygons, bbox })
    }

    /// Whether the point lies inside (or on the edge of) the boundary.
    pub fn contains(&self, p: Location) -> bool {
        let (x, y) = (p.lng, p.lat);
        if x < self.bbox.0 || x > self.bbox.2 || y < self.bbox.1 || y > self.bbox.3 {
            return false;
        }
        self.polygons.iter().any(|rings| {
            let Some((outer, holes)) = rings.split_first() else {
                return false;
            };
            in_ring(outer, x, y) && !holes.iter().any(|h| in_ring(h, x, y) && !on_ring(h, x, y))
        })
    }
}

fn parse_polygon(v: &Value) -> Option<Vec<Vec<(f64, f64)>>> {
    v.as_array()?
        .iter()
        .map(|ring| {
            let pts: Vec<(f64, f64)> = ring
                .as_array()?
                .iter()
                .map(|pt| Some((pt.get(0)?.as_f64()?, pt.get(1)?.as_f64()?)))
                .collect::<Option<_>>()?;
            (pts.len() >= 4).then_some(pts)
        })
        .collect()
}

/// Even-odd ray casting; points on an edge count as inside.
fn in_ring(ring: &[(f64, f64)], x: f64, y: f64) -> bool {
    if on_ring(ring, x, y) {
        return true;
    }
    let mut inside = false;
    let mut j = ring.len() - 1;
    for i in 0..ring.len() {
        let (xi, yi) = ring[i];
        let (xj, yj) = ring[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

fn on_ring(ring: &[(f64, f64)], x: f64, y: f64) -> bool {
    ring.windows(2).any(|w| {
        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
        let cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1);
        cross.abs() < 1e-12
            && x >= x1.min(x2) - 1e-12
            && x <= x1.max(x2) + 1e-12
            && y >= y1.min(y2) - 1e-12
            && y <= y1.max(y2) + 1e-12
    })
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
