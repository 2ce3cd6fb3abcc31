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
