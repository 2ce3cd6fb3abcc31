//! A smoke test of concurrent creations from two processes (two pools), each durable when
//! answered. Appends serialize on the chain head, so the rate is bounded by the commit
//! latency. Prints the rate; asserts only correctness.

mod common;

use std::sync::Arc;

use common::*;
use gridloop_store::Store;

const CASES: usize = 1_000;
const TASKS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creations() {
    let Some(db) = TestDb::new("throughput").await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(open_with_tree(&db).await);
    let other: Arc<dyn Store> = Arc::new(db.store().await);
    // Even tasks write through one pool, odd ones through the other.
    let secs = create_concurrently(&[store, other], CASES, TASKS).await;
    println!(
        "created {CASES} cases from {TASKS} tasks in {secs:.2} s: {:.0} cases/s (durable, two pools)",
        CASES as f64 / secs
    );
}
