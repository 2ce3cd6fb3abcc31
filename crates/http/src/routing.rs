//! Routing a reported location to the org responsible for that spot.
//!
//! The answer is the deepest org whose boundary contains the point: a micro-grid (a `unit`
//! with a boundary) inside a grid wins over the grid, a grid over its community, and outside
//! every grid the smallest org that still contains the point (a community, a street). Outside
//! every boundary there is no answer and callers fall back (to the centre, or the reporter's
//! org).
//!
//! Boundaries sit in an R-tree over their bounding boxes (a static one, packed in Hilbert
//! order as by `flatbush`: `PackedTree`); a lookup asks the tree for the boxes that hold the
//! point and runs the exact point-in-polygon test
//! ([`BoundarySet::contains`], holes and MultiPolygons included) only on those. Entries are
//! numbered in order of preference — deeper first, then smaller bounding box, then code — and
//! the lowest-numbered hit wins, so a point on the border two grids share always routes to
//! the same one of them (edges count as inside for both), whatever order the tree visits
//! them in.
//!
//! Memory: a province has half a million boundaries, so the index keeps them compactly —
//! every vertex in one flat array ([`BoundarySet`]), the tree's boxes as `f32` rounded
//! outwards in flat arrays too (a superset of the candidates; the exact test decides), the
//! orgs' codes in one string and their parents' paths once each — and [`Router::load`] reads
//! them from the store a page at a time, so their GeoJSON is never in memory all at once.
//!
//! [`Routing`] holds the current index and swaps in a rebuilt one after an org import.

use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use gridloop_domain::case::Location;
use gridloop_domain::geo::{Boundary, BoundarySet};
use gridloop_domain::org::{Org, OrgRef, depth};
use gridloop_store::{Result, Store, StoreError};

/// A box, `[x0, y0, x1, y1]`.
type Rect = [f32; 4];

/// Orgs read from the store at once while loading: a page of micro-grids is ~1 MB of JSON
/// values, which the allocator reuses for the next page.
const PAGE: u32 = 2_000;

/// An immutable index of every boundary. Build one with [`Router::load`],
/// [`Router::from_orgs`] or a [`RouterBuilder`]; replace it as a whole through [`Routing`].
pub struct Router {
    tree: PackedTree,
    /// By rank (the tree's data; the lowest rank that contains a point wins), the number of
    /// the boundary in `shapes` and `names`.
    by_rank: Vec<u32>,
    shapes: BoundarySet,
    names: Names,
    /// The [`OrgRef`]s [`Router::locate`] has lent out, made on first use: one for each of
    /// half a million orgs would cost ~75 MB, most of them never routed to.
    refs: Box<[OnceLock<Box<OrgRef>>]>,
    stats: RouterStats,
}

/// Size figures of an index, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Orgs with a usable boundary.
    pub orgs: usize,
    pub polygons: usize,
    pub vertices: usize,
    /// Estimated heap bytes held by the index: the R-tree, the boundaries and the org codes
    /// and paths, not counting the org references lent out by [`Router::locate`].
    pub approx_bytes: usize,
}

/// Builds a [`Router`] one org at a time, keeping only the compact form of each boundary.
pub struct RouterBuilder {
    shapes: BoundarySet,
    names: Names,
    /// Per boundary, what ranks it and where the tree puts it; dropped by `finish`.
    keys: Vec<Key>,
    stats: RouterStats,
}

struct Key {
    area: f64,
    depth: u32,
    /// `None` for a boundary that contains nothing (polygons without rings).
    rect: Option<Rect>,
}

impl Default for RouterBuilder {
    fn default() -> Self {
        RouterBuilder::new()
    }
}

impl RouterBuilder {
    pub fn new() -> RouterBuilder {
        RouterBuilder {
            shapes: BoundarySet::new(),
            names: Names::default(),
            keys: Vec::new(),
            stats: RouterStats::default(),
        }
    }

    /// Adds an org; one without a (valid) boundary is left out.
    pub fn add(&mut self, org: &Org) {
        let Some(geometry) = org.boundary.as_ref() else {
            return;
        };
        let Some(boundary) = Boundary::from_geojson(geometry) else {
            tracing::warn!(org = %org.code, "boundary is not a valid Polygon/MultiPolygon; not routed to");
            return;
        };
        self.stats.polygons += boundary.polygons();
        self.stats.vertices += boundary.vertices();
        let (x0, y0, x1, y1) = boundary.bbox;
        let rect = (boundary.rings() > 0).then(|| [down(x0), down(y0), up(x1), up(y1)]);
        self.keys.push(Key {
            area: (x1 - x0) * (y1 - y0),
            depth: u32::try_from(depth(&org.path)).unwrap_or(u32::MAX),
            rect,
        });
        self.shapes.push(&boundary);
        self.names.push(&org.code, &org.path);
    }

    pub fn finish(self) -> Router {
        let RouterBuilder {
            mut shapes,
            mut names,
            keys,
            mut stats,
        } = self;
        shapes.shrink_to_fit();
        names.finish();
        let mut by_rank: Vec<u32> = (0..keys.len() as u32).collect();
        by_rank.sort_unstable_by(|&a, &b| {
            let (ka, kb) = (&keys[a as usize], &keys[b as usize]);
            (Reverse(ka.depth), ka.area)
                .partial_cmp(&(Reverse(kb.depth), kb.area))
                .unwrap_or(Ordering::Equal)
                .then_with(|| names.code(a).cmp(names.code(b)))
        });
        let boxes: Vec<(Rect, u32)> = by_rank
            .iter()
            .enumerate()
            .filter_map(|(rank, &i)| Some((keys[i as usize].rect?, rank as u32)))
            .collect();
        drop(keys);
        let tree = PackedTree::new(boxes);
        let refs: Box<[OnceLock<Box<OrgRef>>]> = by_rank.iter().map(|_| OnceLock::new()).collect();
        stats.orgs = by_rank.len();
        stats.approx_bytes = tree.heap_bytes()
            + shapes.heap_bytes()
            + names.heap_bytes()
            + by_rank.capacity() * 4
            + refs.len() * std::mem::size_of::<OnceLock<Box<OrgRef>>>();
        Router {
            tree,
            by_rank,
            shapes,
            names,
            refs,
            stats,
        }
    }
}

impl Router {
    /// Loads every boundary from the store, a page at a time, and builds the index off the
    /// async threads. The pages are separate reads: an import during a load is seen in part,
    /// and the reload that follows the import sees all of it.
    pub async fn load(store: &dyn Store) -> Result<Router> {
        Router::load_pages(PAGE, |after, limit| async move {
            store.boundaries_page(after.as_deref(), limit).await
        })
        .await
    }

    /// [`Router::load`] from pages of `limit` orgs that `page(after, limit)` reads.
    async fn load_pages<F, Fut>(limit: u32, page: F) -> Result<Router>
    where
        F: Fn(Option<String>, u32) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Org>>>,
    {
        let mut builder = RouterBuilder::new();
        let mut after: Option<String> = None;
        loop {
            let page = page(after.take(), limit).await?;
            let last_page = page.len() < limit as usize;
            after = page.last().map(|o| o.code.clone());
            builder = blocking(move || {
                for org in &page {
                    builder.add(org);
                }
                builder
            })
            .await?;
            if last_page {
                break;
            }
        }
        blocking(move || builder.finish()).await
    }

    /// Builds the index from orgs; those without a (valid) boundary are left out.
    pub fn from_orgs(orgs: impl IntoIterator<Item = Org>) -> Router {
        let mut builder = RouterBuilder::new();
        for org in orgs {
            builder.add(&org);
        }
        builder.finish()
    }

    /// The org responsible for the point, if any boundary contains it.
    pub fn locate(&self, p: Location) -> Option<&OrgRef> {
        let i = self.find(p)?;
        Some(self.refs[i as usize].get_or_init(|| Box::new(self.org_ref(i))))
    }

    /// [`Router::locate`], answered with a new [`OrgRef`] instead of a lent one.
    pub fn route(&self, p: Location) -> Option<OrgRef> {
        self.find(p).map(|i| self.org_ref(i))
    }

    /// The number of the best boundary that contains the point.
    fn find(&self, p: Location) -> Option<u32> {
        // Test the candidates best first and stop at the first hit: the micro-grid's few
        // vertices are tested, not the street's thousands. Rounding the point to `f32` keeps
        // it in every box that holds it (rounding is monotone, the boxes' corners are `f32`).
        let mut candidates: Vec<u32> = Vec::with_capacity(8);
        self.tree
            .at_point(p.lng as f32, p.lat as f32, &mut candidates);
        candidates.sort_unstable();
        candidates
            .into_iter()
            .map(|rank| self.by_rank[rank as usize])
            .find(|&i| self.shapes.contains(i, p))
    }

    fn org_ref(&self, i: u32) -> OrgRef {
        OrgRef {
            code: self.names.code(i).to_string(),
            path: self.names.path(i),
        }
    }

    pub fn len(&self) -> usize {
        self.by_rank.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_rank.is_empty()
    }

    pub fn stats(&self) -> RouterStats {
        self.stats
    }
}

/// Children of a node of the [`PackedTree`].
const NODE: usize = 16;

/// A static R-tree: boxes sorted along a Hilbert curve through their centres, grouped
/// [`NODE`] at a time into parents, level after level up to one root (the layout of
/// `flatbush`). Flat arrays only: ~21 bytes a box, against ~50 in a pointer tree.
struct PackedTree {
    /// The boxes of every level, the leaves first and the root last.
    boxes: Vec<Rect>,
    /// Per leaf, the rank of its boundary.
    ids: Vec<u32>,
    /// Where each level starts in `boxes`, and where the last one ends.
    levels: Vec<usize>,
}

impl PackedTree {
    fn new(items: Vec<(Rect, u32)>) -> PackedTree {
        let mut extent = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        for (r, _) in &items {
            extent = union(extent, *r);
        }
        let (w, h) = (extent[2] - extent[0], extent[3] - extent[1]);
        let scale = |v: f32, from: f32, size: f32| {
            if size > 0.0 {
                ((v - from) / size * 65_535.0) as u32
            } else {
                0
            }
        };
        let mut order: Vec<(u64, u32)> = items
            .iter()
            .enumerate()
            .map(|(k, (r, _))| {
                let x = scale((r[0] + r[2]) / 2.0, extent[0], w);
                let y = scale((r[1] + r[3]) / 2.0, extent[1], h);
                (hilbert(x, y), k as u32)
            })
            .collect();
        order.sort_unstable();
        let n = items.len();
        let mut boxes: Vec<Rect> = Vec::with_capacity(n + n / (NODE - 1) + 1);
        let mut ids = Vec::with_capacity(n);
        for &(_, k) in &order {
            let (r, id) = items[k as usize];
            boxes.push(r);
            ids.push(id);
        }
        drop(order);
        drop(items);
        let mut levels = vec![0, n];
        // At least one level above the leaves, so that a lookup starts at a parent.
        while levels.len() < 3 || levels[levels.len() - 1] - levels[levels.len() - 2] > 1 {
            let (start, end) = (levels[levels.len() - 2], levels[levels.len() - 1]);
            for first in (start..end).step_by(NODE) {
                let last = (first + NODE).min(end);
                let parent = boxes[first..last]
                    .iter()
                    .fold([f32::MAX, f32::MAX, f32::MIN, f32::MIN], |a, &b| {
                        union(a, b)
                    });
                boxes.push(parent);
            }
            levels.push(boxes.len());
        }
        boxes.shrink_to_fit();
        PackedTree { boxes, ids, levels }
    }

    /// Appends the ids of the leaves whose box holds the point.
    fn at_point(&self, x: f32, y: f32, out: &mut Vec<u32>) {
        let holds = |r: &Rect| x >= r[0] && x <= r[2] && y >= r[1] && y <= r[3];
        let top = self.levels.len() - 2;
        if self.ids.is_empty() || !holds(&self.boxes[self.levels[top]]) {
            return;
        }
        // (level, node in the level) of nodes whose box holds the point: at most NODE - 1
        // left waiting on each level below the one being read, and under 16 levels.
        let mut stack = [(0u8, 0u32); 16 * NODE];
        let mut len = 1;
        stack[0] = (top as u8, 0);
        while len > 0 {
            len -= 1;
            let (level, node) = (usize::from(stack[len].0), stack[len].1 as usize);
            let below = level - 1;
            let (start, end) = (self.levels[below], self.levels[below + 1]);
            let first = start + node * NODE;
            for child in first..(first + NODE).min(end) {
                if holds(&self.boxes[child]) {
                    if below == 0 {
                        out.push(self.ids[child]);
                    } else {
                        stack[len] = (below as u8, (child - start) as u32);
                        len += 1;
                    }
                }
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        16 * self.boxes.capacity() + 4 * self.ids.capacity() + 8 * self.levels.capacity()
    }
}

fn union(a: Rect, b: Rect) -> Rect {
    [
        a[0].min(b[0]),
        a[1].min(b[1]),
        a[2].max(b[2]),
        a[3].max(b[3]),
    ]
}

/// The position of the cell (x, y) of a 2¹⁶ × 2¹⁶ grid along a Hilbert curve through it.
fn hilbert(mut x: u32, mut y: u32) -> u64 {
    const N: u32 = 1 << 16;
    let mut d = 0u64;
    let mut s = N / 2;
    while s > 0 {
        let rx = u32::from(x & s > 0);
        let ry = u32::from(y & s > 0);
        d += u64::from(s) * u64::from(s) * u64::from((3 * rx) ^ ry);
        if ry == 0 {
            if rx == 1 {
                x = N - 1 - x;
                y = N - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    d
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("building the routing index failed: {e}")))
}

/// The largest `f32` at or below `v`.
fn down(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) <= v {
        f
    } else {
        next_toward_zero_or_below(f)
    }
}

/// The smallest `f32` at or above `v`.
fn up(v: f64) -> f32 {
    -down(-v)
}

/// The `f32` just below `f` (finite `f` only; the boxes come from finite coordinates).
fn next_toward_zero_or_below(f: f32) -> f32 {
    if f == 0.0 {
        -f32::from_bits(1)
    } else if f > 0.0 {
        f32::from_bits(f.to_bits() - 1)
    } else {
        f32::from_bits(f.to_bits() + 1)
    }
}

/// Orgs' codes and paths. A path is its parent's path and the code: the parents' paths are
/// kept once each (a province's 450,000 micro-grids hang under 85,000 grids), the codes in
/// one string.
#[derive(Default)]
struct Names {
    codes: String,
    /// Where each org's code ends in `codes`.
    code_ends: Vec<u32>,
    /// Per org, its parent's path in `prefixes`; [`WHOLE_PATH`] set when that is the org's
    /// whole path (a path that does not end with the code, which a store's tree never has).
    prefix_of: Vec<u32>,
    prefixes: String,
    prefix_ends: Vec<u32>,
    /// Prefixes seen so far, while building.
    seen: HashMap<Box<str>, u32>,
}

const WHOLE_PATH: u32 = 1 << 31;

impl Names {
    fn push(&mut self, code: &str, path: &str) {
        let parent = path
            .strip_suffix('/')
            .and_then(|p| p.strip_suffix(code))
            .filter(|p| p.ends_with('/'));
        let (prefix, flag) = match parent {
            Some(parent) => (parent, 0),
            None => (path, WHOLE_PATH),
        };
        let id = match self.seen.get(prefix) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.prefix_ends.len())
                    .ok()
                    .filter(|id| id & WHOLE_PATH == 0)
                    .expect("fewer than 2³¹ parents");
                self.prefixes.push_str(prefix);
                self.prefix_ends.push(end(&self.prefixes));
                self.seen.insert(prefix.into(), id);
                id
            }
        };
        self.prefix_of.push(id | flag);
        self.codes.push_str(code);
        self.code_ends.push(end(&self.codes));
    }

    fn code(&self, i: u32) -> &str {
        slice(&self.codes, &self.code_ends, i)
    }

    fn path(&self, i: u32) -> String {
        let p = self.prefix_of[i as usize];
        let prefix = slice(&self.prefixes, &self.prefix_ends, p & !WHOLE_PATH);
        if p & WHOLE_PATH != 0 {
            return prefix.to_string();
        }
        let code = self.code(i);
        let mut path = String::with_capacity(prefix.len() + code.len() + 1);
        path.push_str(prefix);
        path.push_str(code);
        path.push('/');
        path
    }

    /// Drops the building aids and spare capacity.
    fn finish(&mut self) {
        self.seen = HashMap::new();
        self.codes.shrink_to_fit();
        self.code_ends.shrink_to_fit();
        self.prefix_of.shrink_to_fit();
        self.prefixes.shrink_to_fit();
        self.prefix_ends.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.codes.capacity()
            + self.prefixes.capacity()
            + 4 * (self.code_ends.capacity()
                + self.prefix_of.capacity()
                + self.prefix_ends.capacity())
    }
}

/// The end of a string just pushed to, as an index of the string (under 4 GB).
fn end(s: &str) -> u32 {
    u32::try_from(s.len()).expect("under 4 GB of org codes and paths")
}

/// Item `i` of strings pushed one after another onto `text`, ending at `ends`.
fn slice<'a>(text: &'a str, ends: &[u32], i: u32) -> &'a str {
    let i = i as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &text[start..ends[i] as usize]
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
    use serde_json::{Value, json};

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

    #[tokio::test]
    async fn loads_page_by_page_as_from_all_at_once() {
        let lattice = lattice::Lattice::new(20, 10, 3);
        let mut orgs: Vec<Org> = lattice.orgs().collect();
        // As the store pages them: by code, boundaries only.
        orgs.retain(|o| o.boundary.is_some());
        orgs.sort_by(|a, b| a.code.cmp(&b.code));
        let asked = std::sync::Mutex::new(Vec::new());
        let paged = Router::load_pages(7, |after, limit| {
            asked.lock().unwrap().push(after.clone());
            let page: Vec<Org> = orgs
                .iter()
                .filter(|o| after.as_deref().is_none_or(|a| o.code.as_str() > a))
                .take(limit as usize)
                .cloned()
                .collect();
            async move { Ok(page) }
        })
        .await
        .unwrap();
        let asked = asked.into_inner().unwrap();
        assert_eq!(
            asked.len(),
            orgs.len().div_ceil(7) + usize::from(orgs.len().is_multiple_of(7))
        );
        assert_eq!(asked[0], None);
        assert_eq!(asked[1].as_deref(), Some(orgs[6].code.as_str()));
        let whole = Router::from_orgs(orgs.clone());
        assert_eq!(paged.len(), orgs.len());
        assert_eq!(paged.stats(), whole.stats());
        let mut rng = lattice::Rng::new(5);
        for _ in 0..500 {
            let p = lattice.random_point(&mut rng);
            let got = paged.locate(p).cloned();
            assert!(got.is_some());
            assert_eq!(got, whole.locate(p).cloned());
            assert_eq!(got, paged.route(p));
        }
    }

    #[test]
    fn names_give_back_codes_and_paths() {
        let orgs = [
            ("G1", "/C/S/M/G1/"),
            ("U1", "/C/S/M/G1/U1/"),
            ("U2", "/C/S/M/G1/U2/"),
            ("M", "/C/S/M/"),
            ("X", "/C/S/M/G1/Y/"),
            ("Z", "Z"),
            ("", "//"),
        ];
        let mut names = Names::default();
        for (code, path) in orgs {
            names.push(code, path);
        }
        names.finish();
        for (i, (code, path)) in orgs.into_iter().enumerate() {
            assert_eq!(names.code(i as u32), code);
            assert_eq!(names.path(i as u32), path);
        }
        assert_eq!(names.prefix_ends.len(), 6, "U1 and U2 share G1's path");
    }

    #[test]
    fn the_packed_tree_finds_every_box_that_holds_a_point() {
        let mut rng = lattice::Rng::new(11);
        for n in [0, 1, 2, 15, 16, 17, 255, 256, 257, 3_000] {
            let items: Vec<(Rect, u32)> = (0..n)
                .map(|k| {
                    let (x, y) = (rng.unit() as f32 * 100.0, rng.unit() as f32 * 50.0);
                    let (w, h) = (rng.unit() as f32 * 8.0, rng.unit() as f32 * 8.0);
                    ([x, y, x + w, y + h], k as u32 * 3)
                })
                .collect();
            let tree = PackedTree::new(items.clone());
            for _ in 0..300 {
                let (x, y) = (rng.unit() as f32 * 110.0, rng.unit() as f32 * 60.0);
                let mut got = Vec::new();
                tree.at_point(x, y, &mut got);
                got.sort_unstable();
                let want: Vec<u32> = items
                    .iter()
                    .filter(|(r, _)| x >= r[0] && x <= r[2] && y >= r[1] && y <= r[3])
                    .map(|&(_, id)| id)
                    .collect();
                assert_eq!(got, want, "{n} boxes, ({x}, {y})");
            }
            // Corners count as inside.
            if let Some(&([x0, y0, x1, y1], id)) = items.first() {
                for (x, y) in [(x0, y0), (x1, y1)] {
                    let mut got = Vec::new();
                    tree.at_point(x, y, &mut got);
                    assert!(got.contains(&id));
                }
            }
            let mut none = Vec::new();
            tree.at_point(f32::NAN, 1.0, &mut none);
            assert!(none.is_empty());
        }
    }

    #[test]
    fn boxes_round_outwards() {
        for v in [120.0512, 29.2811, -0.3, 0.0, 1e-40, -1e-40, 118.001922, 1.0] {
            let (d, u) = (down(v), up(v));
            assert!(f64::from(d) <= v && v <= f64::from(u), "{v}: {d} {u}");
            assert!(
                u - d <= 2.0 * f32::EPSILON * v.abs() as f32 + 1e-38,
                "{v}: tight"
            );
            // A point rounded to f32 stays in the rounded box.
            assert!(d <= v as f32 && v as f32 <= u);
        }
        assert_eq!(down(1.0), 1.0);
        assert_eq!(up(1.0), 1.0);
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
            r.by_rank
                .iter()
                .find(|&&i| r.shapes.contains(i, p))
                .map(|&i| r.names.code(i))
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
