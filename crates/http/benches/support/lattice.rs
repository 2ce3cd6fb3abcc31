//! A synthetic city for the routing benchmark and its smoke test: a lattice of irregular
//! quadrilateral micro-grids (units, ~50 m across) that tile the plane exactly (neighbours
//! share their jittered corners), grouped 5 × 5 into grids and 50 × 50 into communities whose
//! outlines run through every lattice vertex on the way, like a real tree of boundaries.
//! Coordinates have seven decimals, as real boundaries do.

#![allow(dead_code)] // shared by the benchmark and the smoke test, which use different parts

use gridloop_domain::case::Location;
use gridloop_domain::org::{Level, Org};
use serde_json::{Value, json};

pub const WEST: f64 = 120.0;
pub const SOUTH: f64 = 29.2;
pub const DX: f64 = 0.0005;
pub const DY: f64 = 0.00045;
const GRID: usize = 5;
const COMMUNITY: usize = 50;

/// A small, fast, seedable generator (splitmix64): no dependency, same numbers everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// To 10⁻⁷ degree (a centimetre), as GIS exports write coordinates.
fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

pub struct Lattice {
    pub cols: usize,
    pub rows: usize,
    /// `(cols + 1) × (rows + 1)` corners, row-major from the south-west.
    vertices: Vec<(f64, f64)>,
}

impl Lattice {
    /// `cols × rows` units; interior corners jittered by up to 30 % of a cell.
    pub fn new(cols: usize, rows: usize, seed: u64) -> Lattice {
        let mut rng = Rng::new(seed);
        let mut vertices = Vec::with_capacity((cols + 1) * (rows + 1));
        for j in 0..=rows {
            for i in 0..=cols {
                let interior = i > 0 && i < cols && j > 0 && j < rows;
                let (jx, jy) = if interior {
                    ((rng.unit() - 0.5) * 0.6 * DX, (rng.unit() - 0.5) * 0.6 * DY)
                } else {
                    (0.0, 0.0)
                };
                vertices.push((
                    round7(WEST + i as f64 * DX + jx),
                    round7(SOUTH + j as f64 * DY + jy),
                ));
            }
        }
        Lattice {
            cols,
            rows,
            vertices,
        }
    }

    pub fn units(&self) -> usize {
        self.cols * self.rows
    }

    fn v(&self, i: usize, j: usize) -> (f64, f64) {
        self.vertices[j * (self.cols + 1) + i]
    }

    /// A uniformly random point of the lattice's extent.
    pub fn random_point(&self, rng: &mut Rng) -> Location {
        Location {
            lng: WEST + rng.unit() * self.cols as f64 * DX,
            lat: SOUTH + rng.unit() * self.rows as f64 * DY,
        }
    }

    /// The middle of the edge shared by unit (i, j) and its eastern neighbour.
    pub fn east_edge_midpoint(&self, i: usize, j: usize) -> Location {
        let (a, b) = (self.v(i + 1, j), self.v(i + 1, j + 1));
        Location {
            lng: (a.0 + b.0) / 2.0,
            lat: (a.1 + b.1) / 2.0,
        }
    }

    /// Roughly the centre of unit (i, j), always inside it (the jitter is small).
    pub fn unit_centre(&self, i: usize, j: usize) -> Location {
        let c = [
            self.v(i, j),
            self.v(i + 1, j),
            self.v(i + 1, j + 1),
            self.v(i, j + 1),
        ];
        Location {
            lng: c.iter().map(|p| p.0).sum::<f64>() / 4.0,
            lat: c.iter().map(|p| p.1).sum::<f64>() / 4.0,
        }
    }

    pub fn unit_code(i: usize, j: usize) -> String {
        format!("U{i:04}{j:04}")
    }

    /// Counter-clockwise outline of cells `x0..x1` × `y0..y1` through every lattice vertex.
    fn block(&self, x0: usize, x1: usize, y0: usize, y1: usize) -> Value {
        let mut ring = Vec::new();
        ring.extend((x0..x1).map(|i| self.v(i, y0)));
        ring.extend((y0..y1).map(|j| self.v(x1, j)));
        ring.extend((x0 + 1..=x1).rev().map(|i| self.v(i, y1)));
        ring.extend((y0 + 1..=y1).rev().map(|j| self.v(x0, j)));
        ring.push(ring[0]);
        let coords: Vec<Value> = ring.iter().map(|(x, y)| json!([x, y])).collect();
        json!({"type": "Polygon", "coordinates": [coords]})
    }

    /// The whole tree, parents first: a city (no boundary), a street, communities, grids
    /// and one unit per cell. Generated lazily, so 450,000 boundaries never sit in memory
    /// as JSON at once.
    pub fn orgs(&self) -> impl Iterator<Item = Org> + '_ {
        let org = |code: String, level, parent: Option<&str>, path: String, boundary| Org {
            name: code.clone(),
            code,
            level,
            parent: parent.map(str::to_string),
            path,
            boundary,
        };
        let top = [
            org("C".into(), Level::City, None, "/C/".into(), None),
            org(
                "S".into(),
                Level::Street,
                Some("C"),
                "/C/S/".into(),
                Some(self.block(0, self.cols, 0, self.rows)),
            ),
        ];
        let blocks = |size: usize| {
            let (cols, rows) = (self.cols, self.rows);
            (0..rows.div_ceil(size)).flat_map(move |by| {
                (0..cols.div_ceil(size)).map(move |bx| {
                    let (x0, y0) = (bx * size, by * size);
                    (bx, by, x0, (x0 + size).min(cols), y0, (y0 + size).min(rows))
                })
            })
        };
        let communities = blocks(COMMUNITY).map(move |(bx, by, x0, x1, y0, y1)| {
            let code = format!("M{bx:02}{by:02}");
            let path = format!("/C/S/{code}/");
            org(
                code,
                Level::Community,
                Some("S"),
                path,
                Some(self.block(x0, x1, y0, y1)),
            )
        });
        let grids = blocks(GRID).map(move |(_, _, x0, x1, y0, y1)| {
            let (m, code) = self.grid_of(x0, y0);
            let path = format!("/C/S/{m}/{code}/");
            org(
                code,
                Level::Grid,
                Some(&m),
                path,
                Some(self.block(x0, x1, y0, y1)),
            )
        });
        let units = (0..self.rows).flat_map(move |j| {
            (0..self.cols).map(move |i| {
                let (m, g) = self.grid_of(i, j);
                let code = Lattice::unit_code(i, j);
                let path = format!("/C/S/{m}/{g}/{code}/");
                org(
                    code,
                    Level::Unit,
                    Some(&g),
                    path,
                    Some(self.block(i, i + 1, j, j + 1)),
                )
            })
        });
        top.into_iter().chain(communities).chain(grids).chain(units)
    }

    /// The community and grid codes of the cell (i, j).
    fn grid_of(&self, i: usize, j: usize) -> (String, String) {
        let m = format!("M{:02}{:02}", i / COMMUNITY, j / COMMUNITY);
        let g = format!("G{:03}{:03}", i / GRID, j / GRID);
        (m, g)
    }
}
