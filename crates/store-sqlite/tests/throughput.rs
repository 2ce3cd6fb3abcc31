//! A smoke test of group commit: many concurrent creations, each durable when answered.
//! Prints the rate; asserts only correctness (timings vary too much between machines).

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use gridloop_domain::role::Actor;
use gridloop_store::{CreateCase, Store};

const CASES: usize = 2_000;
const TASKS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creations() {
    let dir = TempDir::new("throughput");
    let store = Arc::new(open_with_tree(&dir).await);
    let w = Arc::new(World::new());
    let grids = [GRID_A1, GRID_A2, GRID_B1];

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let (store, w) = (store.clone(), w.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..CASES).step_by(TASKS) {
                let now = t0();
                let decision = w.report(&format!("事件 {i}"), grids[i % 3], &Actor::Resident, now);
                store
                    .create_case(CreateCase {
                        decision,
                        number_day: local_day(&w, now),
                        idempotency: key("public", &format!("k{i}"), "fp"),
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "created {CASES} cases from {TASKS} tasks in {secs:.2} s: {:.0} cases/s (durable, group commit)",
        CASES as f64 / secs
    );

    let report = store.verify_chain().await.unwrap();
    assert_eq!(report.checked, CASES as u64);
    assert_eq!(report.first_break, None);
    let g = store.gauges(&[CITY.to_string()]).await.unwrap();
    assert_eq!(g[CITY]["reported"], CASES as i64);
}
