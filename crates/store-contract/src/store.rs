//! The core of the contract: idempotent creates, versioned updates, the hash chain, measures,
//! due cases, reopening, lists, imports, the directory, configuration and attachments.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use gridloop_domain::DomainError;
use gridloop_domain::calendar::{CalendarYear, NamedDay};
use gridloop_domain::case::{Action, Case, Resolved, Status, format_number};
use gridloop_domain::measures::{Counters, MeasureDelta};
use gridloop_domain::org::{Level, Org};
use gridloop_domain::role::{Actor, Role};
use gridloop_domain::timeline::NewEvent;
use gridloop_store::{
    Attachment, CaseFilter, CaseSort, CreateCase, ImportCase, NewUser, Session, Store, StoreError,
    TowerGroup, Visibility,
};

use crate::Harness;
use crate::fixtures::*;
use crate::lists::{expected, paged};

pub async fn idempotent_create_replays_and_refuses_a_different_request(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let req = |title: &str, fp: &str| CreateCase {
        decision: w.report(title, GRID_A1, &Actor::Resident, now),
        number_day: local_day(&w, now),
        idempotency: key("public", "k-1", fp),
    };

    let first = store.create_case(req("井盖缺失", "fp-1")).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(first.case.id, 1);
    assert_eq!(first.case.number, format_number(local_day(&w, now), 1));

    let again = store.create_case(req("井盖缺失", "fp-1")).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.case, first.case);

    let other = store.create_case(req("别的事", "fp-2")).await;
    assert!(matches!(other, Err(StoreError::IdempotencyMismatch)));

    // The same key in another scope is another request; numbers continue per day.
    let mut r = req("井盖缺失", "fp-1");
    r.idempotency = key("alice", "k-1", "fp-1");
    let second = store.create_case(r).await.unwrap();
    assert!(!second.replayed);
    assert_eq!(second.case.number, format_number(local_day(&w, now), 2));

    // Only one create event per stored case.
    assert_eq!(store.verify_chain().await.unwrap().checked, 2);
    let stored = store.case(first.case.id).await.unwrap().unwrap();
    assert_eq!(stored, first.case);
    let by_number = store.case_by_number(&first.case.number).await.unwrap();
    assert_eq!(by_number, Some(first.case));
}

pub async fn updates_check_versions_and_domain_rules(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let case = create(&*store, &w, "路灯不亮", GRID_A1, &Actor::Resident, now).await;

    let stale = store
        .update_case(
            case.id,
            Some(case.version + 1),
            Box::new(|_| unreachable!()),
        )
        .await;
    assert!(matches!(
        stale,
        Err(StoreError::VersionConflict {
            expected: 2,
            current: 1
        })
    ));

    let missing = store
        .update_case(999, None, Box::new(|_| unreachable!()))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));

    // A handler may not accept: the domain refuses and nothing is written.
    let refused = act(
        &*store,
        case.id,
        accept(),
        user("h", Role::Handler, GRID_A1),
        Resolved::default(),
        now,
    )
    .await;
    assert!(matches!(
        refused,
        Err(StoreError::Domain(DomainError::Forbidden(_)))
    ));

    let accepted = store
        .update_case(
            case.id,
            Some(1),
            Box::new(move |c| {
                let w = World::new();
                gridloop_domain::case::decide(
                    c,
                    &accept(),
                    &dispatcher(),
                    &Resolved::default(),
                    &w.ctx(now),
                )
            }),
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, Status::Accepted);
    assert_eq!(accepted.version, 2);
    assert_eq!(store.case(case.id).await.unwrap().unwrap(), accepted);

    // A panicking decision fails alone; the writer keeps working.
    let panicked = store
        .update_case(case.id, None, Box::new(|_| panic!("boom")))
        .await;
    assert!(matches!(panicked, Err(StoreError::Backend(_))));
    let events = store.events(case.id).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(events[1].action, "accept");
}

pub async fn events_form_a_chain_that_reveals_tampering(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let a = create(&*store, &w, "占道经营", GRID_A1, &Actor::Resident, now).await;
    let b = create(&*store, &w, "垃圾满溢", GRID_B1, &Actor::Resident, now).await;
    act(
        &*store,
        a.id,
        accept(),
        dispatcher(),
        Resolved::default(),
        now,
    )
    .await
    .unwrap();
    let (d, r) = dispatch_to(GRID_A1);
    act(&*store, a.id, d, dispatcher(), r, now).await.unwrap();
    // A reveal changes nothing but is still on the timeline.
    let revealer = dispatcher();
    let revealed = store
        .update_case(
            b.id,
            Some(1),
            Box::new(move |c| gridloop_domain::case::reveal(c, &revealer, now)),
        )
        .await
        .unwrap();
    assert_eq!(revealed, b);

    let events = store.events(a.id).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3, 4]);
    assert_eq!(store.events(b.id).await.unwrap().len(), 2);
    for e in &events {
        assert_eq!(e.compute_hash(), e.hash);
    }
    let report = store.verify_chain().await.unwrap();
    assert_eq!(report.checked, 5);
    assert_eq!(report.first_break, None);

    // The database itself refuses edits and deletions.
    let refused = h
        .raw_sql("UPDATE events SET actor = 'x' WHERE id = 3")
        .await
        .unwrap_err();
    assert!(refused.contains("append-only"), "{refused}");
    assert!(h.raw_sql("DELETE FROM events WHERE id = 5").await.is_err());
    assert!(h.raw_sql(h.empty_events()).await.is_err());

    // With the triggers gone, an edit is found by the chain.
    h.raw_sql(&h.drop_events_trigger("events_no_update"))
        .await
        .unwrap();
    h.raw_sql(r#"UPDATE events SET details = '{"org":"somewhere else"}' WHERE id = 3"#)
        .await
        .unwrap();
    let report = store.verify_chain().await.unwrap();
    let brk = report.first_break.expect("the edit is detected");
    assert_eq!((brk.event_id, brk.case_id), (3, a.id));
    assert_eq!(report.checked, 2);
}

pub async fn deleting_the_newest_event_is_detected(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    for i in 0..3 {
        create(
            &*store,
            &w,
            &format!("事件{i}"),
            GRID_A2,
            &Actor::Resident,
            t0(),
        )
        .await;
    }
    assert_eq!(store.verify_chain().await.unwrap().first_break, None);
    let drop_delete = h.drop_events_trigger("events_no_delete");
    h.raw_sql(&format!("{drop_delete}; DELETE FROM events WHERE id = 3;"))
        .await
        .unwrap();
    let report = store.verify_chain().await.unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.first_break.unwrap().event_id, 3);

    // Garbage in the details is a break too, not an error of the walk.
    let drop_update = h.drop_events_trigger("events_no_update");
    h.raw_sql(&format!(
        "{drop_update}; UPDATE events SET details = 'not json' WHERE id = 1;"
    ))
    .await
    .unwrap();
    let report = store.verify_chain().await.unwrap();
    assert_eq!(report.first_break.unwrap().event_id, 1);
}

pub async fn measures_count_at_the_area_and_its_ancestors(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let day = local_day(&w, now);
    let a = create(&*store, &w, "噪音扰民", GRID_A1, &Actor::Resident, now).await;
    create(&*store, &w, "违章停车", GRID_B1, &Actor::Resident, now).await;
    act(
        &*store,
        a.id,
        accept(),
        dispatcher(),
        Resolved::default(),
        now,
    )
    .await
    .unwrap();

    let codes: Vec<String> = [
        CITY,
        STREET,
        COMMUNITY_A,
        GRID_A1,
        GRID_A2,
        COMMUNITY_B,
        GRID_B1,
    ]
    .map(String::from)
    .to_vec();
    let counters = store.counters(&codes, day, day).await.unwrap();
    let received = |code: &str| counters[code].received;
    assert_eq!(received(GRID_A1), 1);
    assert_eq!(received(COMMUNITY_A), 1);
    assert_eq!(received(STREET), 1);
    assert_eq!(received(CITY), 1);
    assert_eq!(received(GRID_A2), 0);
    assert_eq!(received(GRID_B1), 0);
    assert_eq!(counters.len(), codes.len());

    // Outside the period nothing is counted.
    let before = day - Duration::days(1);
    let none = store.counters(&codes, before, before).await.unwrap();
    assert!(none.values().all(Counters::is_zero));

    let gauges = store.gauges(&codes).await.unwrap();
    assert_eq!(gauges[CITY].get("reported"), Some(&1));
    assert_eq!(gauges[CITY].get("accepted"), Some(&1));
    assert_eq!(gauges[GRID_A1].get("accepted"), Some(&1));
    // Zero gauges are left out.
    assert_eq!(gauges[GRID_A1].get("reported"), None);
    assert_eq!(gauges[GRID_B1].get("reported"), Some(&1));
    assert!(gauges[GRID_A2].is_empty());
}

pub async fn due_cases_come_from_the_due_index(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let a = create(&*store, &w, "树木倒伏", GRID_A1, &Actor::Resident, now).await;
    let b = create(&*store, &w, "井盖破损", GRID_A1, &Actor::Resident, now).await;
    assert!(
        store
            .due_cases(now + Duration::days(30), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let a = act(
        &*store,
        a.id,
        accept(),
        dispatcher(),
        Resolved::default(),
        now,
    )
    .await
    .unwrap();
    let due_at = a
        .due_at
        .expect("an accepted case falls due at its deadline");
    assert!(
        store
            .due_cases(due_at - Duration::milliseconds(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.due_cases(due_at, 10).await.unwrap(), [a.id]);
    let later = now + Duration::hours(1);
    let b = act(
        &*store,
        b.id,
        accept(),
        dispatcher(),
        Resolved::default(),
        later,
    )
    .await
    .unwrap();
    let far = now + Duration::days(30);
    assert_eq!(store.due_cases(far, 10).await.unwrap(), [a.id, b.id]);
    assert_eq!(store.due_cases(far, 1).await.unwrap(), [a.id]);
}

pub async fn writes_survive_a_reopen(h: &dyn Harness) {
    let w = World::new();
    let (case, user_id) = {
        let store = open_with_tree(h).await;
        let case = create(&*store, &w, "路面塌陷", GRID_B1, &Actor::Resident, t0()).await;
        let user = store
            .create_user(NewUser {
                username: "li".into(),
                display_name: "李四".into(),
                role: Role::Handler,
                org: GRID_B1.into(),
                password_hash: "$argon2id$x".into(),
                created_at: t0(),
            })
            .await
            .unwrap();
        store.put_setting("intake_org", STREET).await.unwrap();
        (case, user.id)
    };
    let store = h.open().await;
    assert_eq!(store.case(case.id).await.unwrap(), Some(case.clone()));
    assert_eq!(store.events(case.id).await.unwrap().len(), 1);
    assert_eq!(
        store.user_by_username("li").await.unwrap().unwrap().id,
        user_id
    );
    assert_eq!(store.settings().await.unwrap()["intake_org"], STREET);
    assert_eq!(store.verify_chain().await.unwrap().first_break, None);
    // Numbering and the chain continue where they were.
    let next = create(&*store, &w, "又一件", GRID_B1, &Actor::Resident, t0()).await;
    assert_eq!(next.id, case.id + 1);
    assert_eq!(next.number, format_number(local_day(&w, t0()), 2));
    assert_eq!(store.verify_chain().await.unwrap().checked, 2);
}

/// All cases, straight from the store, for comparing lists against.
async fn all_cases(store: &dyn Store) -> Vec<Case> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_cases(CaseFilter {
                limit: 200,
                cursor,
                ..CaseFilter::default()
            })
            .await
            .unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

pub async fn lists_filter_by_visibility_and_page_by_keyset(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let patrol = user("wang", Role::Handler, GRID_B1);
    // Mostly grid A1, a few elsewhere: sparse subtrees make the list switch from walking
    // the sort order to collecting from the path indexes.
    let mut n = 0;
    for i in 0..150 {
        let (area, actor) = match i % 25 {
            0 => (GRID_B1, Actor::Resident),
            7 => (GRID_A2, patrol.clone()), // reported by a B1 handler outside B1
            13 => (GRID_B1, patrol.clone()),
            _ => (GRID_A1, Actor::Resident),
        };
        let now = t0() + Duration::minutes(i);
        let title = if i % 10 == 3 {
            "50%_特殊"
        } else {
            "普通事件"
        };
        let c = create(&*store, &w, title, area, &actor, now).await;
        n += 1;
        // Accept some (deadline set) at various times; dispatch a few to grid B1.
        if i % 3 == 0 {
            let later = now + Duration::minutes(150 - i);
            act(
                &*store,
                c.id,
                accept(),
                dispatcher(),
                Resolved::default(),
                later,
            )
            .await
            .unwrap();
            if i % 2 == 0 {
                let (d, r) = dispatch_to(GRID_B1);
                act(&*store, c.id, d, dispatcher(), r, later).await.unwrap();
            }
        }
    }
    let all = all_cases(&*store).await;
    assert_eq!(all.len(), n);

    let vis = |code: &str, username: &str| {
        Some(Visibility {
            path: path_of(code),
            username: username.into(),
        })
    };
    let filters = [
        CaseFilter::default(),
        CaseFilter {
            visible_to: vis(GRID_B1, "wang"),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(GRID_A2, "nobody"),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(CITY, "x"),
            statuses: vec![Status::Reported],
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(COMMUNITY_B, "x"),
            statuses: vec![Status::Accepted, Status::Dispatched],
            ..CaseFilter::default()
        },
        CaseFilter {
            org_path: Some(path_of(GRID_B1)),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(STREET, "x"),
            area_path: Some(path_of(COMMUNITY_B)),
            ..CaseFilter::default()
        },
        CaseFilter {
            q: Some("50%_".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(GRID_B1, "wang"),
            q: Some("特殊".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            reporter_phone: Some("13800000000".into()),
            overdue: Some(false),
            ..CaseFilter::default()
        },
    ];
    for f in &filters {
        for sort in [CaseSort::Newest, CaseSort::Deadline, CaseSort::Updated] {
            let f = CaseFilter { sort, ..f.clone() };
            let want = expected(&all, &f);
            for limit in [1, 7, 200] {
                let got = paged(&*store, &f, limit).await;
                assert_eq!(got, want, "sort {sort:?}, limit {limit}, filter {f:?}");
            }
        }
    }

    // A grid handler sees the cases in their grid and the ones they reported elsewhere.
    let f = CaseFilter {
        visible_to: vis(GRID_B1, "wang"),
        ..CaseFilter::default()
    };
    let seen: HashSet<i64> = paged(&*store, &f, 50).await.into_iter().collect();
    let reported_elsewhere = all
        .iter()
        .filter(|c| c.area_path == path_of(GRID_A2) && c.org_path == path_of(GRID_A2))
        .count();
    assert!(reported_elsewhere > 0);
    assert!(all.iter().filter(|c| seen.contains(&c.id)).all(|c| {
        c.org_path.starts_with(&path_of(GRID_B1))
            || c.area_path.starts_with(&path_of(GRID_B1))
            || c.created_by.as_deref() == Some("wang")
    }));

    // Cursors of another sort are refused as bad input.
    let bad = store
        .list_cases(CaseFilter {
            sort: CaseSort::Updated,
            cursor: Some("12".into()),
            ..CaseFilter::default()
        })
        .await;
    assert!(matches!(
        bad,
        Err(StoreError::Domain(DomainError::Invalid { .. }))
    ));
}

pub async fn imports_keep_numbers_the_chain_and_measures(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let day = local_day(&w, now);
    let live = create(&*store, &w, "先到的", GRID_A1, &Actor::Resident, now).await;

    let mut imports = Vec::new();
    for seq in [5, 9] {
        let d = w.report("历史事件", GRID_A2, &Actor::Resident, now);
        let mut case = d.case.clone();
        let accepted = gridloop_domain::case::decide(
            &case,
            &accept(),
            &dispatcher(),
            &Resolved::default(),
            &w.ctx(now),
        )
        .unwrap();
        let mut measures = MeasureDelta::default();
        measures.extend(d.measures);
        measures.extend(accepted.measures);
        let mut events: Vec<NewEvent> = d.events;
        events.extend(accepted.events);
        case = accepted.case;
        case.number = format_number(day, seq);
        imports.push(ImportCase {
            case,
            events,
            measures,
        });
    }
    store.import_cases(imports).await.unwrap();

    let imported = store
        .case_by_number(&format_number(day, 9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(imported.id, live.id + 2);
    assert_eq!(imported.status, Status::Accepted);
    assert_eq!(store.events(imported.id).await.unwrap().len(), 2);
    let report = store.verify_chain().await.unwrap();
    assert_eq!((report.checked, report.first_break), (5, None));

    // The live counter continues after the highest imported number of that day.
    let next = create(&*store, &w, "后来的", GRID_A1, &Actor::Resident, now).await;
    assert_eq!(next.number, format_number(day, 10));

    let c = store
        .counters(&[GRID_A2.into(), CITY.into()], day, day)
        .await
        .unwrap();
    assert_eq!(c[GRID_A2].received, 2);
    assert_eq!(c[CITY].received, 2);
    let g = store.gauges(&[CITY.into()]).await.unwrap();
    assert_eq!(g[CITY].get("accepted"), Some(&2));
    assert_eq!(g[CITY].get("reported"), Some(&2));

    // A number taken already fails the whole import.
    let dup = ImportCase {
        case: next.clone(),
        events: vec![],
        measures: MeasureDelta::default(),
    };
    let err = store.import_cases(vec![dup]).await;
    assert!(matches!(err, Err(StoreError::Duplicate(_))));
    assert_eq!(all_cases(&*store).await.len(), 4);
}

/// A bulk import into an empty store (the benchmark's and the demo's seeding): whatever the
/// store sets aside meanwhile, afterwards — or after a crash in between and a reopen — every
/// list finds the imported cases and the chain verifies.
pub async fn bulk_imports_leave_a_complete_store(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let day = local_day(&w, now);
    let import = |seqs: std::ops::Range<u64>| {
        seqs.map(|seq| {
            let d = w.report("历史事件", GRID_A2, &Actor::Resident, now);
            let mut case = d.case;
            case.number = format_number(day, seq);
            // Counted as received that day, as a historic case accepted then is, so that
            // the stats below have something to show.
            let mut measures = d.measures;
            measures.counters = vec![(
                day,
                Counters {
                    received: 1,
                    ..Counters::default()
                },
            )];
            ImportCase {
                case,
                events: d.events,
                measures,
            }
        })
        .collect::<Vec<_>>()
    };
    store.begin_bulk_import().await.unwrap();
    store.import_cases(import(1..4)).await.unwrap();
    store.import_cases(import(4..6)).await.unwrap();
    store.end_bulk_import().await.unwrap();
    let reported = |store: Arc<dyn Store>| async move {
        store
            .list_cases(CaseFilter {
                statuses: vec![Status::Reported],
                area_path: Some(path_of(GRID_A2)),
                sort: CaseSort::Deadline,
                limit: 50,
                ..CaseFilter::default()
            })
            .await
            .unwrap()
            .items
            .len()
    };
    assert_eq!(reported(store.clone()).await, 5);
    let report = store.verify_chain().await.unwrap();
    assert_eq!(report.first_break, None);
    // The stats count the imported cases at the grid and every ancestor, over any period
    // that holds their day (a store may build some rollups only at the end).
    let received = |store: Arc<dyn Store>| async move {
        let orgs: Vec<String> = [GRID_A2, COMMUNITY_A, STREET]
            .iter()
            .map(|o| o.to_string())
            .collect();
        let counters = store
            .counters(&orgs, day - Duration::days(40), day + Duration::days(3))
            .await
            .unwrap();
        orgs.iter()
            .map(|o| counters.get(o).map_or(0, |c| c.received))
            .collect::<Vec<_>>()
    };
    assert_eq!(received(store.clone()).await, [5, 5, 5]);

    // Begun again on a store with cases: refused, or nothing set aside; either way the store
    // keeps answering. Then the process dies before the end: the next open completes it.
    let _ = store.begin_bulk_import().await;
    drop(store);
    let store = h.open().await;
    assert_eq!(reported(store.clone()).await, 5);
    store.end_bulk_import().await.unwrap();
    assert_eq!(reported(store.clone()).await, 5);
    assert_eq!(received(store.clone()).await, [5, 5, 5]);
}

pub async fn orgs_users_sessions_and_keys(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let now = t0();

    let street = store.org(STREET).await.unwrap().unwrap();
    assert_eq!(street.level, Level::Street);
    let sub = store
        .orgs_in_subtree(&path_of(COMMUNITY_A), false)
        .await
        .unwrap();
    assert_eq!(
        sub.iter().map(|o| o.code.as_str()).collect::<Vec<_>>(),
        [COMMUNITY_A, GRID_A1, GRID_A2]
    );
    let kids = store.child_orgs(STREET).await.unwrap();
    assert_eq!(
        kids.iter().map(|o| o.code.as_str()).collect::<Vec<_>>(),
        [COMMUNITY_A, COMMUNITY_B]
    );
    assert_eq!(
        store
            .first_org_of_level(Level::Grid)
            .await
            .unwrap()
            .unwrap()
            .code,
        GRID_A1
    );
    assert!(
        store
            .first_org_of_level(Level::Unit)
            .await
            .unwrap()
            .is_none()
    );

    // Upsert by code, with a boundary that comes back only when asked for.
    let mut grid = store.org(GRID_B1).await.unwrap().unwrap();
    grid.name = "B1网格(新)".into();
    grid.boundary = Some(serde_json::json!({
        "type": "Polygon",
        "coordinates": [[[120.0, 29.3], [120.1, 29.3], [120.1, 29.4], [120.0, 29.3]]]
    }));
    store.put_orgs(vec![grid.clone()]).await.unwrap();
    assert_eq!(
        store.boundaries_page(None, 10).await.unwrap(),
        [grid.clone()]
    );
    boundaries_page_by_keyset(store.as_ref(), &grid).await;
    let plain = store.orgs_in_subtree(&grid.path, false).await.unwrap();
    assert_eq!(plain[0].boundary, None);
    assert_eq!(plain[0].name, "B1网格(新)");
    assert_eq!(
        store.orgs_in_subtree(&grid.path, true).await.unwrap(),
        [grid]
    );

    let new_user = |username: &str, org: &str| NewUser {
        username: username.into(),
        display_name: "用户".into(),
        role: Role::Dispatcher,
        org: org.into(),
        password_hash: "$argon2id$v=19$x".into(),
        created_at: now,
    };
    let u = store.create_user(new_user("zhao", STREET)).await.unwrap();
    assert_eq!(u.org_path, path_of(STREET));
    assert!(matches!(
        store.create_user(new_user("zhao", CITY)).await,
        Err(StoreError::Duplicate(_))
    ));
    assert!(matches!(
        store.create_user(new_user("qian", "nope")).await,
        Err(StoreError::NotFound)
    ));
    store.create_user(new_user("sun", GRID_A1)).await.unwrap();
    let in_a = store.users_in_subtree(&path_of(COMMUNITY_A)).await.unwrap();
    assert_eq!(
        in_a.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(),
        ["sun"]
    );
    assert_eq!(
        store.user_by_username("zhao").await.unwrap(),
        Some(u.clone())
    );

    store
        .create_session("tok", u.id, now, now + Duration::hours(8))
        .await
        .unwrap();
    assert_eq!(
        store.session("tok", now).await.unwrap(),
        Some(Session {
            user: u.clone(),
            expires_at: now + Duration::hours(8)
        })
    );
    assert_eq!(
        store
            .session("tok", now + Duration::hours(9))
            .await
            .unwrap(),
        None
    );
    store.delete_session("tok").await.unwrap();
    assert_eq!(store.session("tok", now).await.unwrap(), None);

    let k = store.create_api_key("open311", "kh", now).await.unwrap();
    assert_eq!(store.api_key_by_hash("kh").await.unwrap(), Some(k));
    assert!(matches!(
        store.create_api_key("open311", "other", now).await,
        Err(StoreError::Duplicate(_))
    ));

    let group = |code: &str, tier: u8, org: &str| TowerGroup {
        code: code.into(),
        name: format!("{code}塔群"),
        tier,
        parent: None,
        org: org.into(),
        org_path: path_of(org),
        commander_name: "周".into(),
        commander_phone: None,
        members: 12,
    };
    store
        .put_tower_groups(vec![group("T1", 1, STREET), group("T2", 2, COMMUNITY_B)])
        .await
        .unwrap();
    let groups = store.tower_groups(&path_of(COMMUNITY_B)).await.unwrap();
    assert_eq!(groups, [group("T2", 2, COMMUNITY_B)]);
    assert_eq!(store.tower_groups(&path_of(CITY)).await.unwrap().len(), 2);
    assert!(
        store
            .put_tower_groups(vec![group("T9", 4, CITY)])
            .await
            .is_err()
    );
}

/// Boundaries come by code a page at a time, only orgs that have one, each exactly once.
async fn boundaries_page_by_keyset(store: &dyn Store, grid: &Org) {
    let mut bounded = Vec::new();
    for code in [GRID_A2, STREET, GRID_A1] {
        let mut o = store.org(code).await.unwrap().unwrap();
        o.boundary = grid.boundary.clone();
        bounded.push(o);
    }
    store.put_orgs(bounded).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.boundaries_page(after.as_deref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        assert!(page.iter().all(|o| o.boundary == grid.boundary));
        let Some(last) = page.last() else { break };
        after = Some(last.code.clone());
        seen.extend(page.into_iter().map(|o| o.code));
    }
    assert_eq!(
        seen,
        [STREET, GRID_A1, GRID_A2, GRID_B1],
        "by code, no gaps, no repeats"
    );
    let tail = store.boundaries_page(Some(GRID_A1), 10).await.unwrap();
    assert_eq!(
        tail.iter().map(|o| o.code.as_str()).collect::<Vec<_>>(),
        [GRID_A2, GRID_B1]
    );
    assert!(
        store
            .boundaries_page(Some(GRID_B1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Back as they were, for the rest of the test.
    let mut plain = Vec::new();
    for code in [STREET, GRID_A1, GRID_A2] {
        let mut o = store.org(code).await.unwrap().unwrap();
        o.boundary = None;
        plain.push(o);
    }
    store.put_orgs(plain).await.unwrap();
}

pub async fn calendars_settings_and_attachments(h: &dyn Harness) {
    let store = h.open().await;
    let year = CalendarYear {
        year: 2026,
        source: "国办发明电".into(),
        holidays: vec![NamedDay {
            date: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            name: "国庆节".into(),
        }],
        workdays: vec![],
    };
    store.put_calendar_year(&year).await.unwrap();
    store.put_calendar_year(&year).await.unwrap();
    assert_eq!(store.calendar_years().await.unwrap(), [year]);

    store.put_setting("a", "1").await.unwrap();
    store.put_setting("a", "2").await.unwrap();
    assert_eq!(store.settings().await.unwrap()["a"], "2");

    let bytes = b"\x89PNG fake image".to_vec();
    let meta = Attachment {
        id: "whatever the client says".into(),
        content_type: "image/png".into(),
        size: 0,
        uploaded_by: "resident".into(),
        created_at: t0(),
    };
    let stored = store
        .put_attachment(meta.clone(), bytes.clone())
        .await
        .unwrap();
    assert_eq!(stored.id.len(), 64);
    assert_eq!(stored.size, bytes.len() as u64);
    let again = store
        .put_attachment(
            Attachment {
                uploaded_by: "someone else".into(),
                ..meta
            },
            bytes.clone(),
        )
        .await
        .unwrap();
    assert_eq!(again, stored);
    let (m, b) = store.attachment(&stored.id).await.unwrap().unwrap();
    assert_eq!((m, b), (stored.clone(), bytes.clone()));
    h.assert_attachment_kept(&stored.id, &bytes).await;
    assert_eq!(store.attachment("../gridloop.db").await.unwrap(), None);
    assert_eq!(store.attachment(&"0".repeat(64)).await.unwrap(), None);
}

pub async fn a_failing_job_does_not_undo_its_batch(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = Arc::new(World::new());
    let now = t0();
    // Many concurrent jobs share batches; every other one fails in its closure.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (store, w) = (store.clone(), w.clone());
        tasks.push(tokio::spawn(async move {
            let c = create(&*store, &w, "并发", GRID_A1, &Actor::Resident, now).await;
            let fail = i % 2 == 0;
            let r = store
                .update_case(
                    c.id,
                    None,
                    Box::new(move |c| {
                        if fail {
                            Err(DomainError::InvalidState("no".into()))
                        } else {
                            let w = World::new();
                            gridloop_domain::case::decide(
                                c,
                                &Action::Comment { text: "ok".into() },
                                &dispatcher(),
                                &Resolved::default(),
                                &w.ctx(now),
                            )
                        }
                    }),
                )
                .await;
            (c.id, fail, r.is_ok())
        }));
    }
    for t in tasks {
        let (id, fail, ok) = t.await.unwrap();
        assert_eq!(ok, !fail);
        let events = store.events(id).await.unwrap();
        assert_eq!(events.len(), if fail { 1 } else { 2 });
    }
    let report = store.verify_chain().await.unwrap();
    assert_eq!((report.checked, report.first_break), (60, None));
}

/// A period with partial months at both ends and whole months between reads the same as
/// the sum of its days, whichever write added the counters (a created case, an import).
pub async fn periods_across_months_sum_their_days(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let first = NaiveDate::from_ymd_opt(2024, 12, 10).unwrap();
    let last = NaiveDate::from_ymd_opt(2025, 4, 20).unwrap();
    // Counters on every day of the range, differing from day to day, split between a
    // created case (GRID_A1) and an imported one (GRID_A2), overlapping on some days.
    let mut a1 = Vec::new();
    let mut a2 = Vec::new();
    let mut day = first;
    let mut i = 0i64;
    while day <= last {
        let c = Counters {
            received: 1 + i % 4,
            closed: i % 3,
            closed_on_time: i % 2,
            rework: i % 5 / 4,
            rated: i % 7,
            satisfied: i % 6 / 2,
        };
        if i % 2 == 0 || i % 5 == 0 {
            a1.push((day, c));
        }
        if i % 2 == 1 || i % 5 == 0 {
            a2.push((day, c));
        }
        day = day.succ_opt().unwrap();
        i += 1;
    }
    let mut d = w.report("跨月统计", GRID_A1, &Actor::Resident, now);
    d.measures.counters = a1.clone();
    store
        .create_case(CreateCase {
            decision: d,
            number_day: local_day(&w, now),
            idempotency: None,
        })
        .await
        .unwrap();
    let d = w.report("跨月导入", GRID_A2, &Actor::Resident, now);
    let mut case = d.case.clone();
    case.number = format_number(local_day(&w, now), 50);
    store
        .import_cases(vec![ImportCase {
            case,
            events: d.events,
            measures: MeasureDelta {
                counters: a2.clone(),
                gauges: d.measures.gauges,
            },
        }])
        .await
        .unwrap();

    let sum = |rows: &[&[(NaiveDate, Counters)]], from: NaiveDate, to: NaiveDate| {
        let mut total = Counters::default();
        for (day, c) in rows.iter().flat_map(|r| r.iter()) {
            if from <= *day && *day <= to {
                total.add(c);
            }
        }
        total
    };
    let codes: Vec<String> = [CITY, COMMUNITY_A, GRID_A1, GRID_A2, GRID_B1]
        .map(String::from)
        .to_vec();
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    for (from, to) in [
        ("2024-12-15", "2025-03-10"),
        ("2024-12-01", "2025-03-31"),
        ("2024-12-31", "2025-04-01"),
        ("2025-01-31", "2025-02-01"),
        ("2025-02-01", "2025-02-28"),
        ("2025-03-03", "2025-03-17"),
        ("2024-11-01", "2025-12-31"),
        ("2025-04-21", "2025-06-30"),
    ] {
        let (from, to) = (d(from), d(to));
        let got = store.counters(&codes, from, to).await.unwrap();
        assert_eq!(got.len(), codes.len());
        let both = sum(&[&a1, &a2], from, to);
        assert_eq!(got[CITY], both, "{from}..={to}");
        assert_eq!(got[COMMUNITY_A], both, "{from}..={to}");
        assert_eq!(got[GRID_A1], sum(&[&a1], from, to), "{from}..={to}");
        assert_eq!(got[GRID_A2], sum(&[&a2], from, to), "{from}..={to}");
        assert!(got[GRID_B1].is_zero(), "{from}..={to}");
    }

    // The period equals the sum of its single days, as the store reads them.
    let (from, to) = (d("2024-12-20"), d("2025-03-05"));
    let mut days = Counters::default();
    let mut day = from;
    while day <= to {
        days.add(&store.counters(&[CITY.into()], day, day).await.unwrap()[CITY]);
        day = day.succ_opt().unwrap();
    }
    assert_eq!(
        store.counters(&[CITY.into()], from, to).await.unwrap()[CITY],
        days
    );
}
