//! Gauges of orgs that the tree moves between the levels near a root (kept as rows) and the
//! levels below (counted from the cases when read).

mod common;

use common::*;
use gridloop_domain::org::{Level, Org};
use gridloop_domain::role::Actor;
use gridloop_store::{CreateCase, Store};

fn moved(code: &str, parent: &str, path: &str, level: Level) -> Org {
    let mut o = tree().into_iter().find(|o| o.code == code).unwrap();
    o.parent = Some(parent.into());
    o.path = path.into();
    o.level = level;
    o
}

async fn gauge(store: &dyn Store, org: &str, key: &str) -> i64 {
    let one = store.gauge(&[org.to_string()], key).await.unwrap()[org];
    let all = store.gauges(&[org.to_string()]).await.unwrap();
    assert_eq!(all[org].get(key).copied().unwrap_or(0), one, "{org} {key}");
    one
}

/// A community moved right under the city keeps its gauges as rows from then on, counted
/// from the cases of its new subtree; moved back, it is counted again from the cases under
/// its old path. Either way its gauges are its subtree's cases, as lists see them.
#[tokio::test]
async fn gauges_follow_an_org_moved_near_a_root_and_back() {
    let dir = TempDir::new("sqlite-gauges-moved");
    let store = gridloop_store_sqlite::SqliteStore::open(dir.path()).unwrap();
    store.put_orgs(tree()).await.unwrap();
    let w = World::new();
    let now = t0();
    for _ in 0..3 {
        create(&store, &w, "垃圾满溢", GRID_A1, &Actor::Resident, now).await;
    }
    assert_eq!(gauge(&store, COMMUNITY_A, "reported").await, 3);

    let near = format!("/{CITY}/{COMMUNITY_A}/");
    store
        .put_orgs(vec![
            moved(COMMUNITY_A, CITY, &near, Level::Street),
            moved(
                GRID_A1,
                COMMUNITY_A,
                &format!("{near}{GRID_A1}/"),
                Level::Community,
            ),
        ])
        .await
        .unwrap();
    // Its old cases lie under its old path: none in its subtree now.
    assert_eq!(gauge(&store, COMMUNITY_A, "reported").await, 0);
    for _ in 0..2 {
        // Reported in the grid at its new place.
        let mut decision = w.report("路面破损", GRID_A1, &Actor::Resident, now);
        let path = format!("{near}{GRID_A1}/");
        decision.case.area_path = path.clone();
        decision.case.org_path = path;
        store
            .create_case(CreateCase {
                decision,
                number_day: local_day(&w, now),
                idempotency: None,
            })
            .await
            .unwrap();
    }
    assert_eq!(gauge(&store, COMMUNITY_A, "reported").await, 2);
    let raw = rusqlite::Connection::open(dir.path().join("gridloop.db")).unwrap();
    let rows: i64 = raw
        .query_row(
            "SELECT n FROM rollup_gauges WHERE org = ?1 AND key = 'reported'",
            [COMMUNITY_A],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 2, "kept as a row near the root");

    let back = tree().into_iter().find(|o| o.code == COMMUNITY_A).unwrap();
    store.put_orgs(vec![back]).await.unwrap();
    assert_eq!(gauge(&store, COMMUNITY_A, "reported").await, 3);
    let rows: i64 = raw
        .query_row(
            "SELECT count(*) FROM rollup_gauges WHERE org = ?1",
            [COMMUNITY_A],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0, "counted again below");
}
