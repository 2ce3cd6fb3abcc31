//! A smoke test of concurrent creations from two processes (two pools), each durable when
//! answered. Appends serialize on the chain head, so the rate is bounded by the commit
//! latency. Prints the rate; asserts only correctness.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use gridloop_domain::role::Actor;
use gridloop_store::{CreateCase, Store};

const CASES: usize = 1_000;
const TASKS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creations() {
    let Some(db) = TestDb::new("throughput").await else {
        return;
    };
    let store = Arc::new(open_with_tree(&db).await);
    let other = Arc::new(db.store().await);
    let w = Arc::new(World::new());
    let grids = [GRID_A1, GRID_A2, GRID_B1];

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let store = if t % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let w = w.clone();
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
        "created {CASES} cases from {TASKS} tasks in {secs:.2} s: {:.0} cases/s (durable, two pools)",
        CASES as f64 / secs
    );

    let report = store.verify_chain().await.unwrap();
    assert_eq!(report.checked, CASES as u64);
    assert_eq!(report.first_break, None);
    let g = store.gauges(&[CITY.to_string()]).await.unwrap();
    assert_eq!(g[CITY]["reported"], CASES as i64);
}
