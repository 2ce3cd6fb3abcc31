//! The channel records (night visits, hotline calls), the case columns the
//! channel lists filter on, and the events of a period.

use chrono::{DateTime, Duration, Utc};
use gridloop_domain::case::{Case, Decision, Location, Resolved};
use gridloop_domain::measures::MeasureDelta;
use gridloop_domain::role::Actor;
use gridloop_store::{
    BBox, CaseFilter, CreateCase, HotlineCall, ImportCase, NightVisit, Store, StoreError,
};

use crate::fixtures::*;
use crate::{Columns, Harness};

/// A report with the channel fields set.
fn report(
    w: &World,
    title: &str,
    now: DateTime<Utc>,
    at: Option<(f64, f64)>,
    source_key: Option<&str>,
    visit_id: Option<i64>,
) -> Decision {
    let mut d = w.report(title, GRID_A1, &Actor::Resident, now);
    d.case.location = at.map(|(lat, lng)| Location { lat, lng });
    d.case.source_key = source_key.map(str::to_string);
    d.case.visit_id = visit_id;
    d
}

async fn store_report(store: &dyn Store, w: &World, d: Decision, now: DateTime<Utc>) -> Case {
    store
        .create_case(CreateCase {
            decision: d,
            number_day: local_day(w, now),
            idempotency: None,
        })
        .await
        .unwrap()
        .case
}

async fn ids(store: &dyn Store, f: CaseFilter) -> Vec<i64> {
    let page = store
        .list_cases(CaseFilter { limit: 200, ..f })
        .await
        .unwrap();
    page.items.iter().map(|c| c.id).collect()
}

pub async fn case_columns_follow_the_document_on_every_write(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();

    let d = report(
        &w,
        "烟雾",
        now,
        Some((29.3, 120.07)),
        Some("cam-7:smoke"),
        Some(4),
    );
    let case = store_report(&*store, &w, d, now).await;
    let want: Columns = (
        Some(29.3),
        Some(120.07),
        Some("cam-7:smoke".into()),
        Some(4),
    );
    assert_eq!(h.columns(case.id).await, want);
    let plain = create(&*store, &w, "井盖", GRID_A1, &Actor::Resident, now).await;
    assert_eq!(h.columns(plain.id).await, (None, None, None, None));

    // An update rewrites them from the new document (and clears what it dropped).
    let moved = store
        .update_case(
            case.id,
            None,
            Box::new(|c| {
                let mut after = c.clone();
                after.version += 1;
                after.location = Some(Location {
                    lat: 29.31,
                    lng: 120.08,
                });
                after.source_key = None;
                after.visit_id = Some(5);
                Ok(Decision {
                    case: after,
                    events: vec![],
                    measures: MeasureDelta::default(),
                })
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        h.columns(moved.id).await,
        (Some(29.31), Some(120.08), None, Some(5))
    );

    // And so does a bulk import.
    let mut historic = report(&w, "旧事", now, Some((29.2, 120.1)), Some("k"), None).case;
    historic.number = "DEMO-1".into();
    store
        .import_cases(vec![ImportCase {
            case: historic,
            events: vec![],
            measures: MeasureDelta::default(),
        }])
        .await
        .unwrap();
    let imported = store.case_by_number("DEMO-1").await.unwrap().unwrap();
    assert_eq!(
        h.columns(imported.id).await,
        (Some(29.2), Some(120.1), Some("k".into()), None)
    );

    // The lists see the columns.
    let f = |f: CaseFilter| f;
    assert_eq!(
        ids(
            &*store,
            f(CaseFilter {
                visit_id: Some(5),
                ..CaseFilter::default()
            })
        )
        .await,
        vec![case.id]
    );
    assert_eq!(
        ids(
            &*store,
            f(CaseFilter {
                source_key: Some("k".into()),
                ..CaseFilter::default()
            })
        )
        .await,
        vec![imported.id]
    );
    let near = BBox::around(29.31, 120.08, 100.0);
    assert_eq!(
        ids(
            &*store,
            f(CaseFilter {
                within: Some(near),
                ..CaseFilter::default()
            })
        )
        .await,
        vec![case.id]
    );
    let everywhere = BBox {
        min_lat: -90.0,
        min_lng: -180.0,
        max_lat: 90.0,
        max_lng: 180.0,
    };
    assert_eq!(
        ids(
            &*store,
            f(CaseFilter {
                within: Some(everywhere),
                ..CaseFilter::default()
            })
        )
        .await,
        vec![imported.id, case.id]
    );
}

pub async fn lists_combine_the_channel_filters(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let mut cases = Vec::new();
    for i in 0..12_i64 {
        let now = t0() + Duration::hours(i);
        let at = (i % 2 == 0).then_some((29.3 + i as f64 * 1e-4, 120.07));
        let key = (i % 3 == 0).then_some("cam-1:fire");
        let mut d = report(&w, &format!("事件{i}"), now, at, key, Some(i % 4));
        d.case.category = Some(if i % 2 == 0 { "greening" } else { "other" }.into());
        cases.push(store_report(&*store, &w, d, now).await);
    }
    let id = |i: usize| cases[i].id;

    let f = CaseFilter {
        ids: vec![id(0), id(3), id(6), id(7)],
        categories: vec!["greening".into(), "road_traffic".into()],
        ..CaseFilter::default()
    };
    assert_eq!(ids(&*store, f).await, vec![id(6), id(0)]);

    // The old single category still applies beside the list.
    let f = CaseFilter {
        categories: vec!["greening".into(), "other".into()],
        category: Some("other".into()),
        created_from: Some(t0() + Duration::hours(3)),
        created_to: Some(t0() + Duration::hours(7)),
        ..CaseFilter::default()
    };
    assert_eq!(ids(&*store, f).await, vec![id(5), id(3)]);

    let f = CaseFilter {
        source_key: Some("cam-1:fire".into()),
        created_from: Some(t0() + Duration::hours(1)),
        ..CaseFilter::default()
    };
    assert_eq!(ids(&*store, f).await, vec![id(9), id(6), id(3)]);

    let f = CaseFilter {
        visit_id: Some(2),
        within: Some(BBox::around(29.3, 120.07, 200.0)),
        visible_to: Some(gridloop_store::Visibility {
            path: path_of(COMMUNITY_A),
            username: "x".into(),
        }),
        ..CaseFilter::default()
    };
    assert_eq!(ids(&*store, f).await, vec![id(10), id(6), id(2)]);

    // Somebody else's subtree sees none of them, whatever the other filters.
    let f = CaseFilter {
        ids: vec![id(1), id(2)],
        visible_to: Some(gridloop_store::Visibility {
            path: path_of(COMMUNITY_B),
            username: "x".into(),
        }),
        ..CaseFilter::default()
    };
    assert!(ids(&*store, f).await.is_empty());
}

pub async fn events_between_keeps_chain_order_and_bounds(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let a = create(&*store, &w, "一", GRID_A1, &Actor::Resident, t0()).await;
    let b = create(
        &*store,
        &w,
        "二",
        GRID_A2,
        &Actor::Resident,
        t0() + Duration::hours(1),
    )
    .await;
    // An event stamped earlier than one before it in the chain: still in chain order.
    act(
        &*store,
        a.id,
        accept(),
        dispatcher(),
        Resolved::default(),
        t0() + Duration::minutes(30),
    )
    .await
    .unwrap();
    act(
        &*store,
        b.id,
        accept(),
        dispatcher(),
        Resolved::default(),
        t0() + Duration::hours(2),
    )
    .await
    .unwrap();

    let all = store
        .events_between(t0(), t0() + Duration::hours(3), 100)
        .await
        .unwrap();
    let got: Vec<(i64, i64)> = all.iter().map(|e| (e.id, e.case_id)).collect();
    assert_eq!(got, vec![(1, a.id), (2, b.id), (3, a.id), (4, b.id)]);

    // `to` is exclusive, `from` inclusive.
    let mid = store
        .events_between(t0() + Duration::minutes(30), t0() + Duration::hours(2), 100)
        .await
        .unwrap();
    assert_eq!(mid.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2, 3]);
    let limited = store
        .events_between(t0(), t0() + Duration::hours(3), 2)
        .await
        .unwrap();
    assert_eq!(limited, all[..2]);
    let none = store
        .events_between(t0() + Duration::hours(3), t0() + Duration::hours(4), 10)
        .await
        .unwrap();
    assert!(none.is_empty());
}

fn visit(org: &str, n: i64) -> NightVisit {
    NightVisit {
        id: 0,
        org: org.into(),
        org_path: path_of(org),
        group_name: "第一夜访组".into(),
        leader: "王五".into(),
        visited_at: t0() + Duration::days(n),
        place: format!("{n}号楼"),
        households: 12,
        people_met: 30,
        notes: "反映路灯不亮".into(),
        created_by: "wang".into(),
        created_at: t0() + Duration::days(n) + Duration::hours(2),
    }
}

pub async fn night_visits_list_a_subtree_newest_first(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let orgs = [GRID_A1, COMMUNITY_A, GRID_B1, GRID_A2, COMMUNITY_B, GRID_A1];
    let mut stored = Vec::new();
    for (n, org) in orgs.iter().enumerate() {
        let mut v = visit(org, n as i64);
        v.id = 99; // the store assigns ids, whatever the caller says
        let s = store.create_night_visit(v.clone()).await.unwrap();
        assert_eq!(s, NightVisit { id: s.id, ..v });
        stored.push(s);
    }
    let ids: Vec<i64> = stored.iter().map(|v| v.id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(store.night_visit(3).await.unwrap(), Some(stored[2].clone()));
    assert_eq!(store.night_visit(42).await.unwrap(), None);

    let list = |path: String, before: Option<i64>, limit: u32| {
        let store = &store;
        async move {
            store
                .night_visits(&path, before, limit)
                .await
                .unwrap()
                .iter()
                .map(|v| v.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(path_of(COMMUNITY_A), None, 50).await, vec![6, 4, 2, 1]);
    assert_eq!(list(path_of(COMMUNITY_A), Some(6), 2).await, vec![4, 2]);
    assert_eq!(list(path_of(COMMUNITY_A), Some(2), 2).await, vec![1]);
    assert_eq!(list(path_of(GRID_A1), None, 50).await, vec![6, 1]);
    assert_eq!(list(path_of(COMMUNITY_B), None, 50).await, vec![5, 3]);
    assert_eq!(list(path_of(CITY), None, 50).await, vec![6, 5, 4, 3, 2, 1]);
    // Limits are clamped to 1..=200.
    assert_eq!(list(path_of(CITY), None, 0).await, vec![6]);

    // They survive a reopen.
    drop(store);
    let store = h.open().await;
    assert_eq!(store.night_visit(6).await.unwrap(), Some(stored[5].clone()));
}

pub async fn night_visit_pages_are_capped(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    for n in 0..205 {
        store.create_night_visit(visit(GRID_B1, n)).await.unwrap();
    }
    let page = store
        .night_visits(&path_of(CITY), None, 1000)
        .await
        .unwrap();
    assert_eq!(page.len(), 200);
    assert_eq!((page[0].id, page[199].id), (205, 6));
}

pub async fn hotline_calls_by_number_newest_first(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let case = create(&*store, &w, "噪音", GRID_A1, &Actor::Resident, t0()).await;
    let call = |phone: &str, n: i64, case_id: Option<i64>| HotlineCall {
        id: 0,
        phone: phone.into(),
        operator: "op1".into(),
        org_path: path_of(STREET),
        at: t0() + Duration::minutes(n),
        summary: format!("第{n}次来电"),
        case_id,
    };
    let first = store
        .record_call(call("13800000001", 1, Some(case.id)))
        .await
        .unwrap();
    assert_eq!(
        first,
        HotlineCall {
            id: 1,
            ..call("13800000001", 1, Some(case.id))
        }
    );
    store
        .record_call(call("13900000002", 2, None))
        .await
        .unwrap();
    let third = store
        .record_call(call("13800000001", 3, None))
        .await
        .unwrap();

    let calls = store.calls_from("13800000001", 10).await.unwrap();
    assert_eq!(calls, vec![third.clone(), first]);
    assert_eq!(
        store.calls_from("13800000001", 1).await.unwrap(),
        vec![third]
    );
    assert!(store.calls_from("10000", 10).await.unwrap().is_empty());

    // A call about a case that does not exist is refused and leaves nothing behind.
    let bad = store.record_call(call("13800000001", 4, Some(999))).await;
    assert!(matches!(bad, Err(StoreError::NotFound)));
    assert_eq!(store.calls_from("13800000001", 10).await.unwrap().len(), 2);
}
