//! A smoke test of group commit: many concurrent creations, each durable when answered.
//! Prints the rate; asserts only correctness (timings vary too much between machines).

mod common;

use std::sync::Arc;

use common::*;
use gridloop_store::Store;

const CASES: usize = 2_000;
const TASKS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creations() {
    let dir = TempDir::new("sqlite-throughput");
    let store: Arc<dyn Store> = Arc::new(open_with_tree(&dir).await);
    let secs = create_concurrently(&[store], CASES, TASKS).await;
    println!(
        "created {CASES} cases from {TASKS} tasks in {secs:.2} s: {:.0} cases/s (durable, group commit)",
        CASES as f64 / secs
    );
}
