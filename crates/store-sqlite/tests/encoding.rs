//! How the SQLite store keeps cases and events on disk: compressed, searchable, on the
//! chain, and still able to read rows written before compression.

mod common;

use common::*;
use gridloop_domain::case::format_number;
use gridloop_domain::measures::Counters;
use gridloop_domain::role::Actor;
use gridloop_store::{CaseFilter, ImportCase, Store};
use gridloop_store_sqlite::SqliteStore;
use rusqlite::Connection;
use rusqlite::types::ValueRef;

#[tokio::test]
async fn records_are_compressed_searchable_and_legacy_text_still_reads() {
    let dir = TempDir::new("sqlite-encoding");
    let store = SqliteStore::open(dir.path()).unwrap();
    store.put_orgs(tree()).await.unwrap();
    let w = World::new();
    let case = create(&store, &w, "小区路灯不亮", GRID_A1, &dispatcher(), t0()).await;
    let case = act(
        &store,
        case.id,
        accept(),
        dispatcher(),
        Default::default(),
        t0(),
    )
    .await
    .unwrap();

    let raw = Connection::open(dir.path().join("gridloop.db")).unwrap();
    let json = serde_json::to_string(&case).unwrap();
    let stored: Vec<u8> = raw
        .query_row(
            "SELECT doc FROM case_docs WHERE id = ?1",
            [case.id],
            |r| match r.get_ref(0)? {
                ValueRef::Blob(b) => Ok(b.to_vec()),
                other => panic!("the document is stored as {:?}", other.data_type()),
            },
        )
        .unwrap();
    assert!(
        stored.len() < json.len() / 2,
        "{} bytes stored for {} of JSON",
        stored.len(),
        json.len()
    );
    let blobs: i64 = raw
        .query_row(
            "SELECT count(*) FROM events WHERE case_id = ?1 AND typeof(details) = 'blob'",
            [case.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(blobs, 2, "both events' details are compressed");

    // Read back whole, found by text inside the compressed document, chain intact.
    assert_eq!(store.case(case.id).await.unwrap().unwrap(), case);
    assert_eq!(store.events(case.id).await.unwrap().len(), 2);
    let found = |q: &str| {
        let filter = CaseFilter {
            q: Some(q.into()),
            limit: 50,
            ..CaseFilter::default()
        };
        let store = &store;
        async move { store.list_cases(filter).await.unwrap().items.len() }
    };
    assert_eq!(found("路灯").await, 1);
    assert_eq!(found("井盖").await, 0);
    let report = store.verify_chain().await.unwrap();
    assert_eq!((report.checked, report.first_break), (2, None));

    // A document written as plain JSON by an older version reads and searches the same.
    raw.execute(
        "UPDATE case_docs SET doc = ?1 WHERE id = ?2",
        rusqlite::params![json, case.id],
    )
    .unwrap();
    assert_eq!(store.case(case.id).await.unwrap().unwrap(), case);
    assert_eq!(found("路灯").await, 1);

    // A corrupt document is an error, not a panic.
    raw.execute(
        "UPDATE case_docs SET doc = x'01ffff' WHERE id = ?1",
        [case.id],
    )
    .unwrap();
    assert!(store.case(case.id).await.is_err());
}

/// Indexes set aside for a bulk import are back after the import, and after a crash in the
/// middle of one (at the next open); a store with cases refuses to set them aside.
#[tokio::test]
async fn bulk_imports_set_indexes_aside_and_always_bring_them_back() {
    let dir = TempDir::new("sqlite-bulk");
    let count = || -> i64 {
        Connection::open(dir.path().join("gridloop.db"))
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let store = SqliteStore::open(dir.path()).unwrap();
    store.put_orgs(tree()).await.unwrap();
    let all = count();
    store.begin_bulk_import().await.unwrap();
    // The five dense case indexes not in time order (`bulk::DEFERRABLE`).
    assert_eq!(count(), all - 5, "the cases' dense indexes are set aside");
    store.end_bulk_import().await.unwrap();
    assert_eq!(count(), all);

    // The import never ends, after writing cases whose daily counters it staged and whose
    // running totals it left for its end.
    let w = World::new();
    let day = local_day(&w, t0());
    store.begin_bulk_import().await.unwrap();
    let cases = (1..=3)
        .map(|seq| {
            let d = w.report("历史事件", GRID_A1, &Actor::Resident, t0());
            let mut case = d.case;
            case.number = format_number(day, seq);
            // Accepted and closed that day, as a historic case is.
            let mut measures = d.measures;
            let counted = Counters {
                received: 1,
                closed: 1,
                ..Counters::default()
            };
            measures.counters.push((day, counted));
            ImportCase {
                case,
                events: d.events,
                measures,
            }
        })
        .collect();
    store.import_cases(cases).await.unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(count(), all, "the next open builds them");
    let received = store
        .counters(
            &[GRID_A1.to_string()],
            day - chrono::Duration::days(40),
            day + chrono::Duration::days(3),
        )
        .await
        .unwrap()[GRID_A1]
        .received;
    assert_eq!(received, 3, "and the running totals");
    let staged: i64 = Connection::open(dir.path().join("gridloop.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM rollup_days_staged", [], |r| r.get(0))
        .unwrap();
    assert_eq!(staged, 0, "the days the import staged are summed in");

    create(&store, &w, "井盖缺失", GRID_A1, &dispatcher(), t0()).await;
    assert!(store.begin_bulk_import().await.is_err());
    assert_eq!(count(), all);
}
