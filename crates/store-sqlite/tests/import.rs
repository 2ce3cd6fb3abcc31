//! Bulk imports in chunks: an import's encoder prepares its cases before its write job has
//! started (queued behind another import), and each document still carries the id it is
//! stored under.

mod common;

use common::*;
use gridloop_domain::case::format_number;
use gridloop_domain::role::Actor;
use gridloop_store::{ImportCase, Store};
use gridloop_store_sqlite::SqliteStore;

fn batch(w: &World, seqs: std::ops::Range<u64>) -> Vec<ImportCase> {
    let day = local_day(w, t0());
    seqs.map(|seq| {
        let d = w.report("历史事件", GRID_A1, &Actor::Resident, t0());
        let mut case = d.case;
        case.number = format_number(day, seq);
        // Some cases with several events, chained one after the other.
        let mut events = d.events;
        for _ in 0..seq % 3 {
            let mut more = events[0].clone();
            more.action = "note".into();
            more.details = serde_json::json!({"seq": seq, "text": "又一条记录"});
            events.push(more);
        }
        ImportCase {
            case,
            events,
            measures: d.measures,
        }
    })
    .collect()
}

#[tokio::test]
async fn imports_queued_behind_each_other_keep_their_order_ids_and_chain() {
    let dir = TempDir::new("sqlite-import-chunks");
    let store = SqliteStore::open(dir.path()).unwrap();
    store.put_orgs(tree()).await.unwrap();
    let w = World::new();
    // Several chunks each (500 cases a chunk); the second import's job waits for the first.
    let (first, second) = (batch(&w, 1..1301), batch(&w, 1301..2021));
    let events: usize = first.iter().chain(&second).map(|c| c.events.len()).sum();
    let (a, b) = tokio::join!(store.import_cases(first), store.import_cases(second));
    a.unwrap();
    b.unwrap();

    let day = local_day(&w, t0());
    for seq in 1..2021 {
        let number = format_number(day, seq);
        let case = store.case_by_number(&number).await.unwrap().unwrap();
        assert_eq!(case.id, seq as i64, "ids follow the imports' order");
        let again = store.case(case.id).await.unwrap().unwrap();
        assert_eq!((again.id, &again.number), (case.id, &number));
    }
    let report = store.verify_chain().await.unwrap();
    assert_eq!(
        (report.checked as usize, report.first_break),
        (events, None)
    );
}
