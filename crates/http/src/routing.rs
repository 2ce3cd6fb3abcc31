//! Routing a reported location to the org responsible for that spot.
//!
//! The answer is the deepest org whose boundary contains the point: a micro-grid (a `unit`
//! with a boundary) inside a grid wins over the grid, a grid over its community, and outside
//! every grid the smallest org that still contains the point (a community, a street). Outside
//! every boundary there is no answer and callers fall back (to the centre, or the reporter's
//! org).
//!
//! Boundaries sit in an R-tree over their bounding boxes ([`rstar`]); a lookup asks the tree
//! for the boxes that hold the point and runs the exact point-in-polygon test
//! ([`Boundary::contains`], holes and MultiPolygons included) only on those. Entries are
//! numbered in order of preference — deeper first, then smaller bounding box, then code — and
//! the lowest-numbered hit wins, so a point on the border two grids share always routes to
//! the same one of them (edges count as inside for both), whatever order the tree visits
//! them in.
//!
//! [`Routing`] holds the current index and swaps in a rebuilt one after an org import.

use std::cmp::Reverse;
use std::sync::{Arc, RwLock};

use gridloop_domain::case::Location;
use gridloop_domain::geo::Boundary;
use gridloop_domain::org::{Org, OrgRef, depth};
use gridloop_store::{Result, Store, StoreError};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, RTreeNode};
use serde_json::Value;

type Node = GeomWithData<Rectangle<[f64; 2]>, u32>;

struct Entry {
    boundary: Boundary,
    org: OrgRef,
}

/// An immutable index of every boundary. Build one with [`Router::load`] or
/// [`Router::from_orgs`]; replace it as a whole through [`Routing`].
pub struct Router {
    tree: RTree<Node>,
    /// In order of preference: the lowest index that contains a point wins.
    entries: Vec<Entry>,
    stats: RouterStats,
}

/// Size figures of an index, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Orgs with a usable boundary.
    pub orgs: usize,
    pub polygons: usize,
    pub vertices: usize,
    /// Estimated heap bytes held by the index: the R-tree, the parsed boundaries and the org
    /// codes and paths (allocator overhead counted at 16 bytes an allocation).
    pub approx_bytes: usize,
}

impl Router {
    /// Loads every boundary from the store and builds the index off the async threads.
    pub async fn load(store: &dyn Store) -> Result<Router> {
        let orgs = store.orgs_with_boundary().await?;
        tokio::task::spawn_blocking(move || Router::from_orgs(orgs))
            .await
            .map_err(|e| StoreError::Backend(format!("building the routing index failed: {e}")))
    }

    /// Builds the index from orgs; those without a (valid) boundary are left out.
    pub fn from_orgs(orgs: impl IntoIterator<Item = Org>) -> Router {
        let mut stats = RouterStats::default();
        let mut ranked: Vec<(Reverse<usize>, f64, Entry)> = Vec::new();
        for org in orgs {
            let Some(geometry) = org.boundary.as_ref() else {
                continue;
            };
            let Some(boundary) = Boundary::from_geojson(geometry) else {
                tracing::warn!(org = %org.code, "boundary is not a valid Polygon/MultiPolygon; not routed to");
                continue;
            };
            let (polygons, rings, vertices) = shape_counts(geometry);
            stats.polygons += polygons;
            stats.vertices += vertices;
            stats.approx_bytes += 16 * (1 + polygons + rings + 2)
                + 24 * (polygons + rings)
                + 16 * vertices
                + org.code.len()
                + org.path.len();
            let (x0, y0, x1, y1) = boundary.bbox;
            let area = (x1 - x0) * (y1 - y0);
            ranked.push((
                Reverse(depth(&org.path)),
                area,
                Entry {
                    boundary,
                    org: org.as_ref(),
                },
            ));
        }
        ranked.sort_by(|a, b| {
            (a.0, a.1)
                .partial_cmp(&(b.0, b.1))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.2.org.code.cmp(&b.2.org.code))
        });
        let entries: Vec<Entry> = ranked.into_iter().map(|(_, _, e)| e).collect();
        let nodes: Vec<Node> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let (x0, y0, x1, y1) = e.boundary.bbox;
                GeomWithData::new(Rectangle::from_corners([x0, y0], [x1, y1]), i as u32)
            })
            .collect();
        let tree = RTree::bulk_load(nodes);
        stats.orgs = entries.len();
        // Leaves and inner nodes are `RTreeNode`s; bulk loading fills nodes well, so inner
        // nodes add about a fifth again.
        stats.approx_bytes += entries.len() * std::mem::size_of::<Entry>()
            + entries.len() * 6 / 5 * std::mem::size_of::<RTreeNode<Node>>();
        Router {
            tree,
            entries,
            stats,
        }
    }

    /// The org responsible for the point, if any boundary contains it.
    pub fn locate(&self, p: Location) -> Option<&OrgRef> {
        // Test the candidates best first and stop at the first hit: the micro-grid's few
        // vertices are tested, not the street's thousands.
        let mut candidates: Vec<u32> = Vec::with_capacity(8);
        candidates.extend(
            self.tree
                .locate_all_at_point(&[p.lng, p.lat])
                .map(|n| n.data),
        );
        candidates.sort_unstable();
        candidates
            .into_iter()
            .map(|i| &self.entries[i as usize])
            .find(|e| e.boundary.contains(p))
            .map(|e| &e.org)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn stats(&self) -> RouterStats {
        self.stats
    }
}

/// (polygons, rings, vertices) of a GeoJSON Polygon/MultiPolygon (or a Feature with one).
fn shape_counts(v: &Value) -> (usize, usize, usize) {
    let geom = v.get("geometry").unwrap_or(v);
    let polygon = |p: &Value| {
        let rings = p.as_array().map_or(&[][..], Vec::as_slice);
        let vertices = rings
            .iter()
            .map(|r| r.as_array().map_or(0, Vec::len))
            .sum::<usize>();
        (1, rings.len(), vertices)
    };
    let coords = &geom["coordinates"];
    match geom["type"].as_str() {
        Some("Polygon") => polygon(coords),
        Some("MultiPolygon") => coords
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(polygon)
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2)),
        _ => (0, 0, 0),
    }
}

/// The index in use, swappable while the server runs: readers take the current `Arc` and keep
/// it for their lookup; a reload builds a new index beside it and swaps it in.
pub struct Routing {
    current: RwLock<Arc<Router>>,
    /// Serialises reloads, so that the last one to finish is the last one to have read the
    /// store: an import's boundaries are never replaced by an older snapshot.
    reloading: tokio::sync::Mutex<()>,
}

impl Routing {
    pub fn new(router: Router) -> Routing {
        Routing {
            current: RwLock::new(Arc::new(router)),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    pub fn current(&self) -> Arc<Router> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rebuilds the index from the store and swaps it in.
    pub async fn reload(&self, store: &dyn Store) -> Result<RouterStats> {
        let _one_at_a_time = self.reloading.lock().await;
        let router = Router::load(store).await?;
        let stats = router.stats();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(router);
        Ok(stats)
    }
}

#[cfg(test)]
#[path = "../benches/support/lattice.rs"]
mod lattice;

#[cfg(test)]
mod tests {
    use super::*;
    use gridloop_domain::org::Level;
    use serde_json::json;

    fn at(lng: f64, lat: f64) -> Location {
        Location { lat, lng }
    }

    fn org(code: &str, path: &str, boundary: Value) -> Org {
        Org {
            code: code.into(),
            name: code.into(),
            level: match depth(path) {
                1 => Level::City,
                2 => Level::Street,
                3 => Level::Community,
                4 => Level::Grid,
                _ => Level::Unit,
            },
            parent: None,
            path: path.into(),
            boundary: Some(boundary),
        }
    }

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
        json!({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
    }

    fn code(r: &Router, lng: f64, lat: f64) -> Option<&str> {
        r.locate(at(lng, lat)).map(|o| o.code.as_str())
    }

    /// A street (0..10 × 0..10) with one community (0..10 × 0..5) holding three grids: a
    /// concave L, a grid with a hole (a lake that belongs to nobody but the street), a
    /// MultiPolygon grid (an enclave away from its main part), and a unit (micro-grid)
    /// inside the L.
    fn town() -> Router {
        Router::from_orgs(vec![
            org("S", "/C/S/", rect(0.0, 0.0, 10.0, 10.0)),
            org("M", "/C/S/M/", rect(0.0, 0.0, 10.0, 5.0)),
            // L: the west column and the bottom row of 0..4 × 0..4.
            org(
                "G_L",
                "/C/S/M/G_L/",
                json!({"type": "Polygon", "coordinates": [[[0,0],[4,0],[4,1],[1,1],[1,4],[0,4],[0,0]]]}),
            ),
            // The square 4..8 × 0..4 with a hole 5..7 × 1..3.
            org(
                "G_HOLE",
                "/C/S/M/G_HOLE/",
                json!({"type": "Polygon", "coordinates": [
                    [[4,0],[8,0],[8,4],[4,4],[4,0]],
                    [[5,1],[7,1],[7,3],[5,3],[5,1]]
                ]}),
            ),
            // Two parts: 8..10 × 0..4 and an enclave 2..3 × 2..3 inside the L's notch.
            org(
                "G_MULTI",
                "/C/S/M/G_MULTI/",
                json!({"type": "MultiPolygon", "coordinates": [
                    [[[8,0],[10,0],[10,4],[8,4],[8,0]]],
                    [[[2,2],[3,2],[3,3],[2,3],[2,2]]]
                ]}),
            ),
            org("U1", "/C/S/M/G_L/U1/", rect(0.2, 0.2, 0.8, 0.8)),
        ])
    }

    #[test]
    fn deepest_boundary_wins_holes_and_concave_shapes_respected() {
        let r = town();
        assert_eq!(r.len(), 6);
        assert_eq!(
            code(&r, 0.5, 0.5),
            Some("U1"),
            "a micro-grid beats its grid"
        );
        assert_eq!(code(&r, 0.5, 3.0), Some("G_L"));
        assert_eq!(code(&r, 3.0, 0.5), Some("G_L"));
        // Inside the L's bounding box but in its notch: not the L.
        assert_eq!(
            code(&r, 1.5, 1.5),
            Some("M"),
            "the notch belongs to the community"
        );
        assert_eq!(code(&r, 2.5, 2.5), Some("G_MULTI"), "the enclave part");
        assert_eq!(code(&r, 9.0, 2.0), Some("G_MULTI"), "the main part");
        assert_eq!(code(&r, 4.5, 2.0), Some("G_HOLE"));
        assert_eq!(code(&r, 6.0, 2.0), Some("M"), "the hole is not the grid's");
        assert_eq!(
            code(&r, 5.0, 8.0),
            Some("S"),
            "outside every community: the street"
        );
        assert_eq!(
            code(&r, 5.0, 4.5),
            Some("M"),
            "outside every grid: the community"
        );
        assert_eq!(code(&r, 11.0, 1.0), None, "outside everything");
        assert_eq!(code(&r, f64::NAN, 1.0), None);
    }

    #[test]
    fn border_points_route_deterministically() {
        let r = town();
        // G_L and G_HOLE share the edge x = 4 from y = 0 to 1; G_HOLE and G_MULTI share
        // x = 8. Edges count as inside both: the tie goes by bounding-box area, then code.
        let shared_l_hole = code(&r, 4.0, 0.5);
        let shared_hole_multi = code(&r, 8.0, 2.0);
        // L's box is 4 × 4 = 16, the holed square's 16 too: code decides (G_HOLE < G_L).
        assert_eq!(shared_l_hole, Some("G_HOLE"));
        // G_MULTI's box (2..10 × 0..4 = 32) is larger than G_HOLE's (16).
        assert_eq!(shared_hole_multi, Some("G_HOLE"));
        // The answer never depends on the order the orgs were loaded in.
        let mut orgs: Vec<Org> = vec![
            org("U1", "/C/S/M/G_L/U1/", rect(0.2, 0.2, 0.8, 0.8)),
            org("S", "/C/S/", rect(0.0, 0.0, 10.0, 10.0)),
        ];
        orgs.push(org("B", "/C/S/M/B/", rect(1.0, 0.0, 2.0, 1.0)));
        orgs.push(org("A", "/C/S/M/A/", rect(0.0, 0.0, 1.0, 1.0)));
        let forward = Router::from_orgs(orgs.clone());
        orgs.reverse();
        let backward = Router::from_orgs(orgs);
        for (x, y) in [(1.0, 0.5), (1.0, 0.0), (1.0, 1.0), (0.8, 0.5)] {
            assert_eq!(code(&forward, x, y), code(&backward, x, y), "({x}, {y})");
        }
        assert_eq!(code(&forward, 1.0, 0.5), Some("A"));
        // A hole's edge belongs to the polygon around it.
        assert_eq!(code(&r, 5.0, 2.0), Some("G_HOLE"));
    }

    #[test]
    fn nested_levels_and_invalid_boundaries() {
        let r = Router::from_orgs(vec![
            org("C", "/C/", rect(-1.0, -1.0, 20.0, 20.0)),
            org("S", "/C/S/", rect(0.0, 0.0, 10.0, 10.0)),
            org("M", "/C/S/M/", rect(0.0, 0.0, 5.0, 5.0)),
            org("G", "/C/S/M/G/", rect(0.0, 0.0, 2.0, 2.0)),
            org("U", "/C/S/M/G/U/", rect(0.0, 0.0, 1.0, 1.0)),
            org(
                "BAD",
                "/C/S/M/BAD/",
                json!({"type": "Point", "coordinates": [3, 3]}),
            ),
            Org {
                boundary: None,
                ..org("NONE", "/C/S/M/NONE/", Value::Null)
            },
        ]);
        assert_eq!(r.len(), 5, "no boundary or a broken one: not indexed");
        assert_eq!(code(&r, 0.5, 0.5), Some("U"));
        assert_eq!(code(&r, 1.5, 1.5), Some("G"));
        assert_eq!(code(&r, 3.0, 3.0), Some("M"));
        assert_eq!(code(&r, 7.0, 7.0), Some("S"));
        assert_eq!(code(&r, 15.0, 15.0), Some("C"));
        assert_eq!(r.locate(at(0.5, 0.5)).unwrap().path, "/C/S/M/G/U/");
        let s = r.stats();
        assert_eq!((s.orgs, s.polygons, s.vertices), (5, 5, 25));
        assert!(s.approx_bytes > 0);
    }

    #[test]
    fn real_shaped_parts_of_yiwu() {
        // Two neighbouring irregular grids with a shared, many-vertex border, in degrees.
        let border = [
            [120.050, 29.280],
            [120.0512, 29.2811],
            [120.0507, 29.2823],
            [120.0519, 29.2838],
            [120.0515, 29.2850],
        ];
        let mut west: Vec<[f64; 2]> = vec![[120.046, 29.2795]];
        west.extend(border);
        west.push([120.0455, 29.2852]);
        west.push([120.046, 29.2795]);
        let mut east: Vec<[f64; 2]> = border.iter().rev().copied().collect();
        east.push([120.056, 29.279]);
        east.push([120.0565, 29.2853]);
        east.push(border[border.len() - 1]);
        let r = Router::from_orgs(vec![
            org(
                "W",
                "/C/S/M/W/",
                json!({"type": "Polygon", "coordinates": [west]}),
            ),
            org(
                "E",
                "/C/S/M/E/",
                json!({"type": "Polygon", "coordinates": [east]}),
            ),
        ]);
        assert_eq!(code(&r, 120.048, 29.282), Some("W"));
        assert_eq!(code(&r, 120.053, 29.282), Some("E"));
        assert_eq!(
            code(&r, 120.0504, 29.2806),
            Some("W"),
            "just west of the first leg"
        );
        assert_eq!(code(&r, 120.0507, 29.2806), Some("E"), "just east of it");
        // Points on the shared border: both contain them, one always answers.
        for w in border.windows(2) {
            let mid = ((w[0][0] + w[1][0]) / 2.0, (w[0][1] + w[1][1]) / 2.0);
            let first = code(&r, mid.0, mid.1);
            assert!(first.is_some(), "a border point routes somewhere");
            for _ in 0..3 {
                assert_eq!(code(&r, mid.0, mid.1), first);
            }
        }
    }

    /// The benchmark's synthetic city at a CI-friendly size: every lookup agrees with an
    /// exhaustive scan under the same preference rule.
    #[test]
    fn lattice_smoke_agrees_with_a_full_scan() {
        let lattice = lattice::Lattice::new(200, 100, 7);
        let orgs: Vec<Org> = lattice.orgs().collect();
        let r = Router::from_orgs(orgs.clone());
        assert_eq!(
            r.len(),
            orgs.len() - 1,
            "all but the city, which has no boundary"
        );
        assert_eq!(lattice.units(), 20_000);
        let brute = |p: Location| -> Option<&str> {
            r.entries
                .iter()
                .find(|e| e.boundary.contains(p))
                .map(|e| e.org.code.as_str())
        };
        let mut rng = lattice::Rng::new(42);
        let mut units = 0;
        for _ in 0..1_000 {
            let p = lattice.random_point(&mut rng);
            let got = r.locate(p).map(|o| o.code.as_str());
            assert_eq!(got, brute(p), "{p:?}");
            units += usize::from(got.is_some_and(|c| c.starts_with('U')));
        }
        assert_eq!(units, 1_000, "the units tile the whole street");
        // Centres go to their own unit; shared edges to one of the two neighbours, always
        // the same.
        for (i, j) in [(0, 0), (57, 33), (198, 99), (120, 50)] {
            let c = lattice.unit_centre(i, j);
            assert_eq!(
                r.locate(c).map(|o| o.code.clone()),
                Some(lattice::Lattice::unit_code(i, j))
            );
            let m = lattice.east_edge_midpoint(i.min(198), j);
            let got = r.locate(m).map(|o| o.code.clone()).unwrap();
            let pair = [
                lattice::Lattice::unit_code(i.min(198), j),
                lattice::Lattice::unit_code(i.min(198) + 1, j),
            ];
            assert!(pair.contains(&got), "{got} not in {pair:?}");
            assert_eq!(r.locate(m).map(|o| o.code.clone()), Some(got));
        }
    }
}
