//! The SQLite store's hash chain without a stored `prev_hash`: each event's previous hash is
//! read from the event before it, and the chain is exactly as tamper-evident as when the link
//! was stored twice. Copies (`export_records`/`import_records`) still carry the links.

mod common;

use common::*;
use gridloop_domain::role::Actor;
use gridloop_domain::timeline::{Event, GENESIS};
use gridloop_store::{Record, Store};
use gridloop_store_sqlite::SqliteStore;
use rusqlite::Connection;

fn hour(n: i64) -> chrono::DateTime<chrono::Utc> {
    t0() + chrono::Duration::hours(n)
}

/// Five events, the two cases' interleaved: a 1, b 2 (hour 0), a 3, b 4 (hour 1), a 5
/// (hour 2).
async fn five_events(dir: &TempDir) -> (SqliteStore, i64) {
    let store = open_with_tree(dir).await;
    let w = World::new();
    let a = create(&store, &w, "占道经营", GRID_A1, &Actor::Resident, hour(0)).await;
    let b = create(&store, &w, "垃圾满溢", GRID_B1, &Actor::Resident, hour(0)).await;
    act(
        &store,
        a.id,
        accept(),
        dispatcher(),
        Default::default(),
        hour(1),
    )
    .await
    .unwrap();
    act(
        &store,
        b.id,
        accept(),
        dispatcher(),
        Default::default(),
        hour(1),
    )
    .await
    .unwrap();
    let (d, r) = dispatch_to(GRID_A1);
    act(&store, a.id, d, dispatcher(), r, hour(2))
        .await
        .unwrap();
    let ids: Vec<i64> = store
        .events(a.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, [1, 3, 5]);
    (store, a.id)
}

/// A connection behind the store's back, with the append-only triggers gone.
fn intruder(dir: &TempDir) -> Connection {
    let raw = Connection::open(dir.path().join("gridloop.db")).unwrap();
    raw.execute_batch("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;")
        .unwrap();
    raw
}

/// The first break the store's verification reports, as (event id, events checked).
async fn first_break(store: &SqliteStore) -> Option<(i64, u64)> {
    let report = store.verify_chain().await.unwrap();
    report.first_break.map(|b| (b.event_id, report.checked))
}

/// Events with `from <= at < hour(3)`.
async fn events_from(store: &SqliteStore, from: i64) -> Vec<Event> {
    store
        .events_between(hour(from), hour(3), 100)
        .await
        .unwrap()
}

async fn all_events(store: &SqliteStore) -> Vec<Event> {
    events_from(store, 0).await
}

#[tokio::test]
async fn each_event_links_to_the_hash_of_the_one_before() {
    let dir = TempDir::new("sqlite-chain-links");
    let (store, a) = five_events(&dir).await;
    let raw = Connection::open(dir.path().join("gridloop.db")).unwrap();
    let stored: Vec<String> = raw
        .prepare("SELECT name FROM pragma_table_info('events')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!stored.iter().any(|c| c == "prev_hash"), "{stored:?}");

    let all = all_events(&store).await;
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].prev_hash, GENESIS);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for e in &all {
        assert_eq!(e.compute_hash(), e.hash, "event {}", e.id);
    }
    // One case's timeline skips the other's events, and still links to them.
    let timeline = store.events(a).await.unwrap();
    let by_id = |id: i64| all.iter().find(|e| e.id == id).unwrap().clone();
    assert_eq!(timeline, [by_id(1), by_id(3), by_id(5)]);
    // A page that starts mid-chain looks its first link up.
    assert_eq!(events_from(&store, 1).await, [by_id(3), by_id(4), by_id(5)]);
    assert_eq!(first_break(&store).await, None);
}

#[tokio::test]
async fn an_edited_event_breaks_the_chain_at_itself() {
    let dir = TempDir::new("sqlite-chain-edit");
    let (store, _) = five_events(&dir).await;
    intruder(&dir)
        .execute(
            r#"UPDATE events SET details = '{"org":"somewhere else"}' WHERE id = 3"#,
            [],
        )
        .unwrap();
    assert_eq!(first_break(&store).await, Some((3, 2)));
}

#[tokio::test]
async fn an_edited_hash_breaks_the_chain_at_itself() {
    let dir = TempDir::new("sqlite-chain-hash");
    let (store, _) = five_events(&dir).await;
    intruder(&dir)
        .execute(
            "UPDATE events SET hash = (SELECT hash FROM events WHERE id = 2) WHERE id = 3",
            [],
        )
        .unwrap();
    assert_eq!(first_break(&store).await, Some((3, 2)));
}

/// The intruder edits an event and gives it the right hash for its new content: the next
/// event, hashed over the old one, no longer follows — as when the link was stored.
#[tokio::test]
async fn an_edited_and_rehashed_event_breaks_the_chain_at_the_next() {
    let dir = TempDir::new("sqlite-chain-rehash");
    let (store, _) = five_events(&dir).await;
    let mut e = all_events(&store).await.remove(2);
    assert_eq!(e.id, 3);
    e.details = serde_json::json!({"org": "somewhere else"});
    e.hash = e.compute_hash();
    intruder(&dir)
        .execute(
            "UPDATE events SET details = ?1, hash = ?2 WHERE id = 3",
            rusqlite::params![e.details.to_string(), e.hash],
        )
        .unwrap();
    assert_eq!(all_events(&store).await[2], e, "the edit reads back");
    assert_eq!(first_break(&store).await, Some((4, 3)));
}

#[tokio::test]
async fn swapped_events_break_the_chain() {
    let dir = TempDir::new("sqlite-chain-swap");
    let (store, _) = five_events(&dir).await;
    intruder(&dir)
        .execute_batch(
            "CREATE TEMP TABLE moved AS SELECT * FROM events WHERE id IN (2, 3);
             DELETE FROM events WHERE id IN (2, 3);
             INSERT INTO events SELECT 5 - id, case_id, seq, action, actor, at, details, hash
             FROM moved;",
        )
        .unwrap();
    assert_eq!(first_break(&store).await, Some((2, 1)));
}

#[tokio::test]
async fn a_deleted_event_breaks_the_chain() {
    let dir = TempDir::new("sqlite-chain-delete");
    let (store, a) = five_events(&dir).await;
    intruder(&dir)
        .execute("DELETE FROM events WHERE id = 3", [])
        .unwrap();
    assert_eq!(first_break(&store).await, Some((4, 2)));
    // The timeline still reads; the event after the gap links to no hash at all.
    let timeline = store.events(a).await.unwrap();
    assert_eq!(timeline.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 5]);
    let all = all_events(&store).await;
    assert_eq!(all[2].id, 4);
    assert_eq!(all[2].prev_hash, "");
}

async fn export_all(store: &SqliteStore, limit: u32) -> Vec<Record> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.export_records(cursor, limit).await.unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn events_of(records: &[Record]) -> Vec<Event> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn copies_carry_the_links_and_refuse_a_broken_one() {
    let src_dir = TempDir::new("sqlite-chain-copy-from");
    let (src, _) = five_events(&src_dir).await;
    let records = export_all(&src, 1000).await;
    // Pages of 2 split the events mid-chain (each page's first link is looked up) and the
    // daily counters and the gauges between their `(org, day)` and `(org, key)` keys.
    let counters = records
        .iter()
        .filter(|r| matches!(r, Record::Counters { .. }))
        .count();
    assert!(counters > 2, "{counters} counter rows");
    let gauges = records
        .iter()
        .filter(|r| matches!(r, Record::Gauge { .. }))
        .count();
    assert!(gauges > 2, "{gauges} gauges");
    assert_eq!(export_all(&src, 2).await, records);
    assert_eq!(events_of(&records), all_events(&src).await);

    let dst_dir = TempDir::new("sqlite-chain-copy-to");
    let dst = SqliteStore::open(dst_dir.path()).unwrap();
    for chunk in records.chunks(3) {
        dst.import_records(chunk.to_vec()).await.unwrap();
    }
    assert_eq!(export_all(&dst, 1000).await, records);
    assert_eq!(first_break(&dst).await, None);
    assert_eq!(dst.verify_chain().await.unwrap().checked, 5);

    // A record whose link disagrees with the event before it (a source broken there) is
    // refused, since the target keeps no link of its own to show the disagreement.
    let mut broken = records.clone();
    for r in &mut broken {
        if let Record::Event(e) = r
            && e.id == 4
        {
            e.prev_hash = "ab".repeat(32);
        }
    }
    for chunk_size in [1000, 3] {
        let dir = TempDir::new("sqlite-chain-copy-broken");
        let dst = SqliteStore::open(dir.path()).unwrap();
        let mut result = Ok(());
        for chunk in broken.chunks(chunk_size) {
            result = dst.import_records(chunk.to_vec()).await;
            if result.is_err() {
                break;
            }
        }
        let err = result.expect_err("the broken link is refused").to_string();
        assert!(err.contains("event 4"), "{err}");
    }
}

/// A database written before the column was dropped: the migration drops it, and the chain
/// verifies and reads exactly as before.
#[tokio::test]
async fn the_migration_drops_the_stored_links() {
    let dir = TempDir::new("sqlite-chain-migrate");
    let (store, a) = five_events(&dir).await;
    let before = all_events(&store).await;
    let timeline = store.events(a).await.unwrap();
    drop(store);
    {
        let raw = Connection::open(dir.path().join("gridloop.db")).unwrap();
        let triggers: Vec<String> = raw
            .prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(triggers.len(), 2);
        raw.execute_batch(
            "DROP TRIGGER events_no_update;
             DROP TRIGGER events_no_delete;
             ALTER TABLE events ADD COLUMN prev_hash TEXT;
             UPDATE events SET prev_hash = coalesce(
                 (SELECT p.hash FROM events p WHERE p.id = events.id - 1),
                 unhex('0000000000000000000000000000000000000000000000000000000000000000'));
             -- Documents were in the case rows until migration 0023, and 0017 reads them there.
             ALTER TABLE cases ADD COLUMN doc TEXT;
             UPDATE cases SET doc = (SELECT doc FROM case_docs WHERE case_docs.id = cases.id);
             DROP TABLE case_docs;
             DELETE FROM schema_migrations WHERE version >= 8;",
        )
        .unwrap();
        raw.execute_batch(&triggers.join(";\n")).unwrap();
        let linked: i64 = raw
            .query_row("SELECT count(prev_hash) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(linked, 5);
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let raw = Connection::open(dir.path().join("gridloop.db")).unwrap();
    let columns: i64 = raw
        .query_row(
            "SELECT count(*) FROM pragma_table_info('events') WHERE name = 'prev_hash'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(columns, 0);
    // The append-only triggers survived the rewrite.
    assert!(raw.execute("DELETE FROM events WHERE id = 5", []).is_err());
    assert_eq!(all_events(&store).await, before);
    assert_eq!(store.events(a).await.unwrap(), timeline);
    assert_eq!(first_break(&store).await, None);
}
