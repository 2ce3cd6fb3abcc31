//! Two server processes on one PostgreSQL database, many clients acting on the same cases at
//! once through both: nothing lost, nothing doubled, every timeline complete and in order,
//! the chain intact. (SQLite belongs to one process: this test runs on PostgreSQL only.)

mod common;

use common::{App, NOW, fresh_pg_database, run_cli, temp_dir};
use std::sync::Arc;

use serde_json::json;

const CASES: usize = 4;
const COMMENTS_PER_CASE: usize = 24;
const RACERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_database_stay_consistent() {
    let Some(url) = fresh_pg_database("twoproc") else {
        eprintln!("skipped: GRIDLOOP_TEST_DATABASE_URL is not set (see scripts/pg.sh)");
        return;
    };
    let a = Arc::new(App::start(
        "demo",
        &temp_dir("two-a"),
        NOW,
        Some(url.clone()),
    ));
    let b = Arc::new(App::start(
        "serve",
        &temp_dir("two-b"),
        NOW,
        Some(url.clone()),
    ));
    let servers = [a.clone(), b.clone()];
    // A session opened on one server is good on the other: they share the database.
    let grid1 = a.login("grid1").await;
    let dispatcher = b.login("dispatcher").await;
    let (s, _) = a.get("/api/v1/cases?limit=1", Some(&dispatcher)).await;
    assert_eq!(s, 200);

    // The same idempotent report sent to both servers at once: one case.
    let body = json!({"channel": "grid_patrol", "title": "消防通道被占", "description": "三号楼消防通道堆满杂物"})
        .to_string();
    let sends = (0..RACERS).map(|i| {
        let (app, body, token) = (servers[i % 2].clone(), body.clone(), grid1.clone());
        async move {
            app.post_raw(
                "/api/v1/cases",
                Some(&token),
                body,
                &[("Idempotency-Key", "race-1")],
            )
            .await
        }
    });
    let answers = futures_join(sends).await;
    let ids: Vec<i64> = answers
        .iter()
        .map(|(s, v)| {
            assert!(*s == 200 || *s == 201, "{s} {v}");
            v["id"].as_i64().unwrap()
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one case: {ids:?}");

    // Fresh cases, then everyone comments on all of them through both servers at once.
    let mut cases = vec![ids[0]];
    for i in 1..CASES {
        let (s, c) = b
            .post(
                "/api/v1/cases",
                Some(&grid1),
                json!({"channel": "grid_patrol", "title": format!("路面坑洼 {i}"), "description": "车辆经过颠簸"}),
            )
            .await;
        assert_eq!(s, 201, "{c}");
        cases.push(c["id"].as_i64().unwrap());
    }
    let pairs: Vec<(i64, usize)> = cases
        .iter()
        .flat_map(|id| (0..COMMENTS_PER_CASE).map(move |n| (*id, n)))
        .collect();
    let comments = pairs.into_iter().map(|(id, n)| {
        let (app, token) = (servers[n % 2].clone(), dispatcher.clone());
        async move {
            let (s, v) = app
                .post(
                    &format!("/api/v1/cases/{id}/actions"),
                    Some(&token),
                    json!({"action": "comment", "text": format!("跟进 {n}")}),
                )
                .await;
            assert_eq!(s, 200, "comment {n} on {id}: {v}");
        }
    });
    futures_join(comments).await;

    // Racing the same transition from the same version: exactly one wins, the rest are 409.
    for &id in &cases {
        let (_, case) = a
            .get(&format!("/api/v1/cases/{id}"), Some(&dispatcher))
            .await;
        let version = case["version"].as_i64().unwrap();
        let accepts = (0..RACERS).map(|i| {
            let (app, token) = (servers[i % 2].clone(), dispatcher.clone());
            async move {
                app.post(
                    &format!("/api/v1/cases/{id}/actions"),
                    Some(&token),
                    json!({"action": "accept", "expected_version": version,
                           "handling_mode": "immediate", "difficulty": "simple"}),
                )
                .await
                .0
            }
        });
        let mut statuses = futures_join(accepts).await;
        statuses.sort();
        let mut want = vec![409; RACERS - 1];
        want.insert(0, 200);
        assert_eq!(statuses, want, "case {id}");
    }

    // Every timeline is complete and in chain order, whichever server is asked. (Event times
    // are when each server took the request, so racing requests may differ by a few ms from
    // the order in which the database serialized them; `seq` is the order.)
    for (i, id) in cases.iter().enumerate() {
        let (_, case) = servers[i % 2]
            .get(&format!("/api/v1/cases/{id}"), Some(&dispatcher))
            .await;
        let events = case["events"].as_array().unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as i64).collect::<Vec<_>>(),
            "case {id}"
        );
        let count = |action: &str| events.iter().filter(|e| e["action"] == action).count();
        assert_eq!(count("create"), 1, "case {id}: {events:?}");
        assert_eq!(count("comment"), COMMENTS_PER_CASE, "case {id}");
        assert_eq!(count("accept"), 1, "case {id}");
        assert_eq!(case["status"], "accepted");
    }
    drop((a, b, servers));

    let (code, out) = run_cli(&["audit", "verify", "--database-url", &url], None);
    assert_eq!(code, 0, "{out}");
}

/// Runs futures concurrently on the test's runtime and collects their outputs in order.
async fn futures_join<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("a client task panicked"));
    }
    out
}
