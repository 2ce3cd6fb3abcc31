//! What only a shared database server brings: several server processes (here, separate
//! stores with pools of their own) acting on the same cases at once, the sweep lock
//! between them, the schema migrated once, regions, and copying a store's content.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Duration;
use common::*;
use gridloop_domain::DomainError;
use gridloop_domain::calendar::{CalendarYear, NamedDay};
use gridloop_domain::case::{Action, Resolved, Status, decide};
use gridloop_domain::role::{Actor, Role};
use gridloop_store::{
    Attachment, CaseFilter, CreateCase, HotlineCall, NewUser, NightVisit, Record, Store,
    StoreError, TowerGroup,
};
use gridloop_store_postgres::PgStore;

fn comment(text: &str) -> Action {
    Action::Comment { text: text.into() }
}

/// Runs `action` by the dispatcher, expecting `version` when given.
async fn act_at(
    store: &PgStore,
    id: i64,
    version: Option<i64>,
    action: Action,
) -> Result<gridloop_domain::case::Case, StoreError> {
    store
        .update_case(
            id,
            version,
            Box::new(move |c| {
                let w = World::new();
                decide(
                    c,
                    &action,
                    &dispatcher(),
                    &Resolved::default(),
                    &w.ctx(t0()),
                )
            }),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_the_same_cases_lose_and_double_nothing() {
    let Some(db) = TestDb::new("concurrent").await else {
        return;
    };
    let a = Arc::new(PgStore::connect_with(&db.url, 6).await.unwrap());
    let b = Arc::new(PgStore::connect_with(&db.url, 6).await.unwrap());
    a.put_orgs(tree()).await.unwrap();
    let w = World::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            create(
                &*a,
                &w,
                &format!("并发{i}"),
                GRID_A1,
                &Actor::Resident,
                t0(),
            )
            .await
            .id,
        );
    }

    // Per task: an accept (only the first per case wins), an unconditional comment, a
    // comment at the version just read (may lose to another task), and a new case.
    let mut tasks = Vec::new();
    for i in 0..48_usize {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = ids[i % ids.len()];
        tasks.push(tokio::spawn(async move {
            let w = World::new();
            let mut ok = 0;
            match act_at(&store, id, None, accept()).await {
                Ok(_) => ok += 1,
                Err(StoreError::Domain(_)) => {}
                Err(e) => panic!("accept: {e}"),
            }
            act_at(&store, id, None, comment(&format!("任务{i}")))
                .await
                .unwrap();
            ok += 1;
            let seen = store.case(id).await.unwrap().unwrap();
            match act_at(&store, id, Some(seen.version), comment("按版本")).await {
                Ok(c) => {
                    assert_eq!(c.version, seen.version + 1);
                    ok += 1;
                }
                Err(StoreError::VersionConflict { expected, current }) => {
                    assert_eq!(expected, seen.version);
                    assert!(current > expected);
                }
                Err(e) => panic!("versioned comment: {e}"),
            }
            let new = create(&*store, &w, "新事件", GRID_B1, &Actor::Resident, t0()).await;
            (id, ok, new.id)
        }));
    }
    let mut done: HashMap<i64, usize> = HashMap::new();
    let mut new_ids = Vec::new();
    for t in tasks {
        let (id, ok, new_id) = t.await.unwrap();
        *done.entry(id).or_default() += ok;
        new_ids.push(new_id);
    }

    // Every case's events are numbered 1..=n without gaps, one per successful action.
    let mut total = 0;
    for id in &ids {
        let events = a.events(*id).await.unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
        assert_eq!(events.len(), 1 + done[id], "case {id}");
        assert_eq!(events.iter().filter(|e| e.action == "accept").count(), 1);
        let case = b.case(*id).await.unwrap().unwrap();
        assert_eq!(case.status, Status::Accepted);
        total += events.len();
    }
    // New cases got distinct, gapless ids after the first four.
    new_ids.sort_unstable();
    assert_eq!(new_ids, (5..5 + 48).collect::<Vec<i64>>());
    total += new_ids.len();

    let report = b.verify_chain().await.unwrap();
    assert_eq!((report.checked, report.first_break), (total as u64, None));

    // The rollups saw every change exactly once.
    let g = a.gauges(&[CITY.into(), GRID_A1.into()]).await.unwrap();
    assert_eq!(g[CITY].get("accepted"), Some(&4));
    assert_eq!(g[CITY].get("reported"), Some(&48));
    assert_eq!(g[GRID_A1].get("reported"), None);
    let day = local_day(&w, t0());
    let c = a.counters(&[CITY.into()], day, day).await.unwrap();
    assert_eq!(c[CITY].received, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_creates_one_case_across_processes() {
    let Some(db) = TestDb::new("idem-race").await else {
        return;
    };
    let a = Arc::new(db.store().await);
    let b = Arc::new(db.store().await);
    a.put_orgs(tree()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let w = World::new();
            let fp = if i == 15 { "other" } else { "fp" };
            store
                .create_case(CreateCase {
                    decision: w.report("重复提交", GRID_A1, &Actor::Resident, t0()),
                    number_day: local_day(&w, t0()),
                    idempotency: key("public", "same-key", fp),
                })
                .await
        }));
    }
    let mut created = Vec::new();
    let mut mismatches = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(c) => created.push(c),
            Err(StoreError::IdempotencyMismatch) => mismatches += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let firsts = created.iter().filter(|c| !c.replayed).count();
    let ids: HashSet<i64> = created.iter().map(|c| c.case.id).collect();
    // The odd one out either lost to the others (a mismatch) or came first (then every
    // other request is the mismatch).
    if mismatches == 1 {
        assert_eq!((firsts, created.len(), ids.len()), (1, 15, 1));
    } else {
        assert_eq!((firsts, created.len(), mismatches), (1, 1, 15));
    }
    assert_eq!(a.verify_chain().await.unwrap().checked, 1);
}

#[tokio::test]
async fn one_sweeper_at_a_time_across_processes() {
    let Some(db) = TestDb::new("sweep").await else {
        return;
    };
    let a = db.store().await;
    let b = db.store().await;
    let held = a.try_sweep_lock().await.unwrap().expect("free at first");
    assert!(b.try_sweep_lock().await.unwrap().is_none());
    assert!(a.try_sweep_lock().await.unwrap().is_none());
    drop(held);
    // The server releases the lock when the session ends, a moment after the drop.
    let mut again = None;
    for _ in 0..100 {
        again = b.try_sweep_lock().await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the lock is free again once dropped");
    assert!(a.try_sweep_lock().await.unwrap().is_none());
}

#[tokio::test]
async fn servers_starting_together_migrate_once() {
    let Some(db) = TestDb::new("migrate").await else {
        return;
    };
    let (a, b, c) = tokio::join!(
        PgStore::connect(&db.url),
        PgStore::connect(&db.url),
        PgStore::connect(&db.url)
    );
    let (_a, _b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let raw = db.raw().await;
    // Each migration recorded once.
    let (n, versions): (i64, i64) = raw
        .query_one(
            "SELECT count(*), count(DISTINCT version) FROM schema_version",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((n, versions), (3, 3));
    // A database from a newer gridloop is refused.
    raw.batch_execute("INSERT INTO schema_version VALUES (999, 'future', 0)")
        .await
        .unwrap();
    assert!(matches!(
        PgStore::connect(&db.url).await,
        Err(StoreError::Backend(_))
    ));
}

#[tokio::test]
async fn chinese_search_and_regions() {
    let Some(db) = TestDb::new("search").await else {
        return;
    };
    let store = open_with_tree(&db).await;
    let w = World::new();
    let a = create(&store, &w, "井盖缺失", GRID_A1, &Actor::Resident, t0()).await;
    let b = create(
        &store,
        &w,
        "Street LAMP 不亮",
        GRID_B1,
        &Actor::Resident,
        t0(),
    )
    .await;
    let ids = |q: &str| {
        let store = &store;
        let q = q.to_string();
        async move {
            let page = store
                .list_cases(CaseFilter {
                    q: Some(q),
                    limit: 50,
                    ..CaseFilter::default()
                })
                .await
                .unwrap();
            page.items.iter().map(|c| c.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("井盖").await, vec![a.id]);
    assert_eq!(ids("请尽快").await, vec![b.id, a.id]); // in the description
    assert_eq!(ids(&a.number[..8]).await, vec![b.id, a.id]); // the day part of numbers
    assert_eq!(ids("lamp").await, vec![b.id]); // ASCII case folds, as in SQLite
    assert!(ids("盖井").await.is_empty());
    assert!(ids("%").await.is_empty());

    act(
        &store,
        a.id,
        accept(),
        dispatcher(),
        Resolved::default(),
        t0(),
    )
    .await
    .unwrap();

    let raw = db.raw().await;
    for table in [
        "cases",
        "events",
        "rollup_counters",
        "rollup_gauges",
        "orgs",
    ] {
        let regions: Vec<String> = raw
            .query(&format!("SELECT DISTINCT region FROM {table}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(regions, vec![CITY.to_string()], "{table}");
    }
}

/// A store with something in every table.
async fn fill(store: &PgStore) {
    store.put_orgs(tree()).await.unwrap();
    let w = World::new();
    store
        .put_tower_groups(vec![TowerGroup {
            code: "T1".into(),
            name: "一级塔群".into(),
            tier: 1,
            parent: None,
            org: COMMUNITY_A.into(),
            org_path: path_of(COMMUNITY_A),
            commander_name: "周".into(),
            commander_phone: Some("13900000000".into()),
            members: 40,
        }])
        .await
        .unwrap();
    for name in ["zhao", "qian"] {
        store
            .create_user(NewUser {
                username: name.into(),
                display_name: "用户".into(),
                role: Role::Dispatcher,
                org: STREET.into(),
                password_hash: "$argon2id$x".into(),
                created_at: t0(),
            })
            .await
            .unwrap();
    }
    store.create_api_key("open311", "kh", t0()).await.unwrap();
    store
        .put_calendar_year(&CalendarYear {
            year: 2026,
            source: "国办".into(),
            holidays: vec![NamedDay {
                date: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
                name: "国庆节".into(),
            }],
            workdays: vec![],
        })
        .await
        .unwrap();
    store.put_setting("intake_org", STREET).await.unwrap();
    store
        .put_attachment(
            Attachment {
                id: String::new(),
                content_type: "image/jpeg".into(),
                size: 0,
                uploaded_by: "resident".into(),
                created_at: t0(),
            },
            vec![0xff, 0xd8, 0, 1, 2],
        )
        .await
        .unwrap();
    store
        .create_night_visit(NightVisit {
            id: 0,
            org: GRID_A1.into(),
            org_path: path_of(GRID_A1),
            group_name: "夜访组".into(),
            leader: "王".into(),
            visited_at: t0(),
            place: "1号楼".into(),
            households: 3,
            people_met: 5,
            notes: "路灯".into(),
            created_by: "zhao".into(),
            created_at: t0(),
        })
        .await
        .unwrap();
    for i in 0..7 {
        let now = t0() + Duration::minutes(i);
        let mut d = w.report(&format!("事件{i}"), GRID_A1, &Actor::Resident, now);
        // Coordinates that only read back equal when stored bit for bit.
        d.case.location = Some(gridloop_domain::case::Location {
            lat: 29.301_234_567_890_123 + i as f64 * 1e-9,
            lng: 120.071_111_111_111_11,
        });
        let c = store
            .create_case(CreateCase {
                decision: d,
                number_day: local_day(&w, now),
                idempotency: key("public", &format!("k{i}"), "fp"),
            })
            .await
            .unwrap()
            .case;
        if i % 2 == 0 {
            act(
                store,
                c.id,
                accept(),
                dispatcher(),
                Resolved::default(),
                now,
            )
            .await
            .unwrap();
        }
        if i == 3 {
            store
                .record_call(HotlineCall {
                    id: 0,
                    phone: "13800000000".into(),
                    operator: "op".into(),
                    org_path: path_of(STREET),
                    at: now,
                    summary: "来电".into(),
                    case_id: Some(c.id),
                })
                .await
                .unwrap();
        }
    }
}

async fn export_all(store: &PgStore, limit: u32) -> Vec<Record> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = store.export_records(cursor, limit).await.unwrap();
        assert!(page.items.len() <= limit as usize);
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("the export does not end");
}

#[tokio::test]
async fn a_copy_is_exact_and_goes_on_where_the_original_was() {
    let Some(src_db) = TestDb::new("copy-from").await else {
        return;
    };
    let Some(dst_db) = TestDb::new("copy-to").await else {
        return;
    };
    let src = src_db.store().await;
    let dst = dst_db.store().await;
    fill(&src).await;

    let records = export_all(&src, 1000).await;
    assert_eq!(
        export_all(&src, 3).await,
        records,
        "page size changes nothing"
    );
    // Every kind of record is there, in the documented order.
    let kinds: Vec<String> = records
        .iter()
        .map(|r| {
            serde_json::to_value(r).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut order = kinds.clone();
    order.dedup();
    assert_eq!(
        order,
        [
            "org",
            "tower_group",
            "user",
            "api_key",
            "calendar_year",
            "setting",
            "attachment",
            "night_visit",
            "case",
            "idempotency",
            "case_number",
            "event",
            "hotline_call",
            "counters",
            "gauge"
        ]
    );

    for chunk in records.chunks(5) {
        dst.import_records(chunk.to_vec()).await.unwrap();
    }
    assert_eq!(export_all(&dst, 1000).await, records);
    let report = dst.verify_chain().await.unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.checked, src.verify_chain().await.unwrap().checked);

    // New rows continue after the copied ones: ids, numbers, the chain.
    let w = World::new();
    let next = create(&dst, &w, "复制后", GRID_A2, &Actor::Resident, t0()).await;
    assert_eq!(next.id, 8);
    assert!(next.number.ends_with("-000008"), "{}", next.number);
    let user = dst
        .create_user(NewUser {
            username: "sun".into(),
            display_name: "孙".into(),
            role: Role::Handler,
            org: GRID_A1.into(),
            password_hash: "$argon2id$x".into(),
            created_at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(user.id, 3);
    let visit = dst
        .create_night_visit(NightVisit {
            id: 0,
            ..dst.night_visit(1).await.unwrap().unwrap()
        })
        .await
        .unwrap();
    assert_eq!(visit.id, 2);
    assert_eq!(dst.verify_chain().await.unwrap().first_break, None);
    // Idempotency keys came along: a retry replays the copied case.
    let replay = dst
        .create_case(CreateCase {
            decision: w.report("事件0", GRID_A1, &Actor::Resident, t0()),
            number_day: local_day(&w, t0()),
            idempotency: key("public", "k0", "fp"),
        })
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.case.id, 1);

    // A second import of the same records is refused as a duplicate, writing nothing.
    let again = dst.import_records(records[..20].to_vec()).await;
    assert!(matches!(again, Err(StoreError::Duplicate(_))), "{again:?}");

    // Bad cursors are bad input.
    assert!(matches!(
        src.export_records(Some("garbage".into()), 10).await,
        Err(StoreError::Domain(DomainError::Invalid { .. }))
    ));
}

/// A bulk import larger than one pipeline batch: every case before its events, the chain
/// in order, numbers and measures continued.
#[tokio::test]
async fn a_large_import_keeps_order_across_batches() {
    use gridloop_domain::case::format_number;
    use gridloop_domain::measures::MeasureDelta;
    use gridloop_store::ImportCase;

    let Some(db) = TestDb::new("import-batches").await else {
        return;
    };
    let store = open_with_tree(&db).await;
    let w = World::new();
    let day = local_day(&w, t0());
    let imports: Vec<ImportCase> = (1..=300)
        .map(|seq| {
            let d = w.report(&format!("历史{seq}"), GRID_A2, &Actor::Resident, t0());
            let accepted = decide(
                &d.case,
                &accept(),
                &dispatcher(),
                &Resolved::default(),
                &w.ctx(t0()),
            )
            .unwrap();
            let mut measures = MeasureDelta::default();
            measures.extend(d.measures);
            measures.extend(accepted.measures);
            let mut events = d.events;
            events.extend(accepted.events);
            let mut case = accepted.case;
            case.number = format_number(day, seq);
            ImportCase {
                case,
                events,
                measures,
            }
        })
        .collect();
    store.import_cases(imports).await.unwrap();
    let report = store.verify_chain().await.unwrap();
    assert_eq!((report.checked, report.first_break), (600, None));
    let events = store.events(300).await.unwrap();
    assert_eq!(
        events.iter().map(|e| (e.id, e.seq)).collect::<Vec<_>>(),
        [(599, 1), (600, 2)]
    );
    let next = create(&store, &w, "之后", GRID_A1, &Actor::Resident, t0()).await;
    assert_eq!((next.id, next.number), (301, format_number(day, 301)));
    let g = store.gauges(&[CITY.into()]).await.unwrap();
    assert_eq!(g[CITY].get("accepted"), Some(&300));
}

/// A bulk import refused while its rows still stream in (a number taken by its first case,
/// thousands of cases before the end): a duplicate, nothing of it written, and the chain,
/// ids and numbers go on as if it had never been tried.
#[tokio::test]
async fn a_refused_large_import_writes_nothing() {
    use gridloop_domain::case::format_number;
    use gridloop_domain::measures::MeasureDelta;
    use gridloop_store::ImportCase;

    let Some(db) = TestDb::new("import-refused").await else {
        return;
    };
    let store = open_with_tree(&db).await;
    let w = World::new();
    let day = local_day(&w, t0());
    let live = create(&store, &w, "先到的", GRID_A1, &Actor::Resident, t0()).await;
    let imports = |seqs: std::ops::RangeInclusive<u64>| -> Vec<ImportCase> {
        seqs.map(|seq| {
            let d = w.report(&format!("历史{seq}"), GRID_A2, &Actor::Resident, t0());
            let mut measures = MeasureDelta::default();
            measures.extend(d.measures);
            let mut case = d.case;
            case.number = format_number(day, seq);
            ImportCase {
                case,
                events: d.events,
                measures,
            }
        })
        .collect()
    };
    // Numbers 1..=3000: the first is the live case's.
    let refused = store.import_cases(imports(1..=3000)).await;
    assert!(
        matches!(refused, Err(StoreError::Duplicate(_))),
        "{refused:?}"
    );
    let report = store.verify_chain().await.unwrap();
    assert_eq!((report.checked, report.first_break), (1, None));
    let g = store.gauges(&[CITY.into()]).await.unwrap();
    assert_eq!(g[CITY].get("reported"), Some(&1));

    store.import_cases(imports(2..=3000)).await.unwrap();
    let report = store.verify_chain().await.unwrap();
    assert_eq!((report.checked, report.first_break), (3000, None));
    let last = store
        .case_by_number(&format_number(day, 3000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.id, live.id + 2999);
    let next = create(&store, &w, "之后", GRID_A1, &Actor::Resident, t0()).await;
    assert_eq!((next.id, next.number), (3001, format_number(day, 3001)));
    let g = store.gauges(&[CITY.into()]).await.unwrap();
    assert_eq!(g[CITY].get("reported"), Some(&3001));
}
