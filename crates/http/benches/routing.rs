//! Point lookup in the routing index with 450,000 micro-grids.
//!
//! `cargo bench -p gridloop-http --bench routing`
//!
//! Builds a synthetic street of 750 × 600 irregular quadrilateral micro-grids (units, ~50 m
//! across, under 18,000 grids under 180 communities: 468,181 boundaries in all), prints the
//! build time and the memory the index takes, then measures `Router::locate` at random points
//! with criterion. The target is ≤ 10 µs a lookup.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gridloop_domain::case::Location;
use gridloop_http::routing::Router;

#[path = "support/lattice.rs"]
mod lattice;

use lattice::{Lattice, Rng};

const COLS: usize = 750;
const ROWS: usize = 600;
const POINTS: usize = 1 << 16;

/// Resident memory of this process, from /proc (Linux); `None` elsewhere.
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn routing(c: &mut Criterion) {
    let lattice = Lattice::new(COLS, ROWS, 1);

    // Generating the GeoJSON alone, to tell it apart from building the index.
    let t = Instant::now();
    let generated = lattice.orgs().count();
    let generate = t.elapsed();

    let rss_before = rss_bytes();
    let t = Instant::now();
    let router = Router::from_orgs(lattice.orgs());
    let build = t.elapsed();
    let rss_after = rss_bytes();
    let stats = router.stats();

    println!();
    println!(
        "routing index: {} boundaries ({} micro-grids), {} vertices",
        stats.orgs,
        lattice.units(),
        stats.vertices
    );
    println!(
        "  build: {:.2} s from GeoJSON values ({:.2} s of it generating them; index alone ≈ {:.2} s)",
        build.as_secs_f64(),
        generate.as_secs_f64(),
        build.saturating_sub(generate).as_secs_f64()
    );
    println!(
        "  memory: estimate {:.0} MiB ({:.0} bytes a boundary){}",
        mib(stats.approx_bytes),
        stats.approx_bytes as f64 / stats.orgs as f64,
        match (rss_before, rss_after) {
            (Some(a), Some(b)) => format!(
                ", resident set grew {:.0} MiB while building",
                mib(b.saturating_sub(a))
            ),
            _ => String::new(),
        }
    );
    assert_eq!(
        generated,
        stats.orgs + 1,
        "every org but the city has a boundary"
    );

    // Random points over the whole street; every one lands in a micro-grid.
    let mut rng = Rng::new(99);
    let points: Vec<Location> = (0..POINTS)
        .map(|_| lattice.random_point(&mut rng))
        .collect();
    for p in points.iter().take(1_000) {
        let o = router.locate(*p).expect("inside the street");
        assert!(o.code.starts_with('U'), "{p:?} → {}", o.code);
    }
    for (i, j) in [(0, 0), (374, 299), (749, 599)] {
        assert_eq!(
            router
                .locate(lattice.unit_centre(i, j))
                .map(|o| o.code.clone()),
            Some(Lattice::unit_code(i, j))
        );
    }

    // A plain timing loop too, so the figure is printed even with criterion's output filtered.
    let rounds = 1_000_000;
    let t = Instant::now();
    let mut found = 0usize;
    for k in 0..rounds {
        found += usize::from(router.locate(black_box(points[k % POINTS])).is_some());
    }
    let per = t.elapsed() / rounds as u32;
    assert_eq!(found, rounds);
    println!(
        "  lookup: {:.2} µs a random point (mean of {rounds}; target ≤ 10 µs)",
        per.as_nanos() as f64 / 1000.0
    );
    println!();

    let mut group = c.benchmark_group("routing");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("locate, 450k micro-grids, random point", |b| {
        let mut k = 0usize;
        b.iter(|| {
            k = (k + 1) & (POINTS - 1);
            black_box(router.locate(black_box(points[k])))
        })
    });
    let outside = Location {
        lat: 30.5,
        lng: 121.5,
    };
    group.bench_function("locate, 450k micro-grids, outside every boundary", |b| {
        b.iter(|| black_box(router.locate(black_box(outside))))
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
