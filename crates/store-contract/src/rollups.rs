//! Counters of many orgs over any period: what the stats of an org with many children
//! (a province's thousand streets) ask for at once.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use gridloop_domain::case::{Resolved, format_number};
use gridloop_domain::measures::{Counters, MeasureDelta};
use gridloop_domain::org::{Level, Org, path_codes};
use gridloop_domain::role::Actor;
use gridloop_store::{CreateCase, ImportCase};

use crate::Harness;
use crate::fixtures::*;

/// A small deterministic generator (xorshift), so that a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Counters of forty orgs over periods within and across months and years equal the sum of
/// the days written, whatever order the days were written in: cases imported in several
/// batches, later days before earlier ones, several days per case, negative counters (a
/// reopened case gives its closure back), and a created case; also after a reopen.
pub async fn counters_of_many_orgs_sum_their_days(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    // 36 more grids under community B, beside the tree's.
    let community_b = tree().into_iter().find(|o| o.code == COMMUNITY_B).unwrap();
    let grids: Vec<Org> = (10..46)
        .map(|i| {
            let code = format!("{COMMUNITY_B}{i:02}");
            Org {
                path: Org::child_path(Some(&community_b), &code, Level::Grid).unwrap(),
                code,
                name: format!("B{i}网格"),
                level: Level::Grid,
                parent: Some(COMMUNITY_B.into()),
                boundary: None,
            }
        })
        .collect();
    store.put_orgs(grids.clone()).await.unwrap();
    let mut areas: Vec<(String, String)> = grids
        .iter()
        .map(|g| (g.code.clone(), g.path.clone()))
        .collect();
    for code in [GRID_A1, GRID_A2, GRID_B1] {
        areas.push((code.to_string(), path_of(code)));
    }

    let w = World::new();
    let now = t0();
    let first = NaiveDate::from_ymd_opt(2023, 11, 25).unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // What was written, per org and day, as the store should sum it.
    let mut written: BTreeMap<String, BTreeMap<NaiveDate, Counters>> = BTreeMap::new();
    let mut record = |path: &str, counters: &[(NaiveDate, Counters)]| {
        for org in path_codes(path) {
            let days = written.entry(org.to_string()).or_default();
            for (day, c) in counters {
                days.entry(*day).or_default().add(c);
            }
        }
    };
    let mut seq = 0u64;
    for batch in 0..8 {
        let mut imports = Vec::new();
        for _ in 0..12 {
            let (code, path) = areas[rng.below(areas.len() as u64) as usize].clone();
            // Days anywhere in the 15 months, so later batches write earlier days too.
            let mut counters = Vec::new();
            for _ in 0..=rng.below(3) {
                let day = first + Days::new(rng.below(460));
                let sign = if rng.below(6) == 0 { -1 } else { 1 };
                counters.push((
                    day,
                    Counters {
                        received: 1,
                        closed: sign * rng.below(3) as i64,
                        closed_on_time: sign * rng.below(2) as i64,
                        rework: rng.below(2) as i64,
                        rated: rng.below(3) as i64,
                        satisfied: rng.below(2) as i64,
                    },
                ));
            }
            let d = w.report("多组织统计", GRID_A1, &Actor::Resident, now);
            let mut case = d.case.clone();
            seq += 1;
            // Numbered on another day than the created case, whose number follows its day's.
            let number_day = local_day(&w, now) - Days::new(1);
            case.number = format_number(number_day, seq);
            case.area_org = code;
            case.area_path = path.clone();
            record(&path, &counters);
            imports.push(ImportCase {
                case,
                events: d.events,
                measures: MeasureDelta {
                    counters,
                    gauges: d.measures.gauges,
                },
            });
        }
        store.import_cases(imports).await.unwrap();
        if batch == 3 {
            // A created case with days on both sides of a year's end, among the imports.
            let days = [
                NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
                NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
                NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            ];
            let counters: Vec<(NaiveDate, Counters)> = days
                .iter()
                .map(|day| {
                    (
                        *day,
                        Counters {
                            received: 2,
                            closed: 1,
                            ..Counters::default()
                        },
                    )
                })
                .collect();
            let mut d = w.report("跨年新建", GRID_B1, &Actor::Resident, now);
            d.measures.counters = counters.clone();
            record(&path_of(GRID_B1), &counters);
            store
                .create_case(CreateCase {
                    decision: d,
                    number_day: local_day(&w, now),
                    idempotency: None,
                })
                .await
                .unwrap();
        }
    }

    let mut codes: Vec<String> = written.keys().cloned().collect();
    codes.push("339999".into()); // an org without counters
    let expect = |code: &str, from: NaiveDate, to: NaiveDate| {
        let mut total = Counters::default();
        if let Some(days) = written.get(code) {
            for (_, c) in days.range(from..=to) {
                total.add(c);
            }
        }
        total
    };
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    let mut periods: Vec<(NaiveDate, NaiveDate)> = [
        ("2023-12-15", "2024-01-10"),
        ("2023-12-31", "2024-01-01"),
        ("2024-01-01", "2024-12-31"),
        ("2024-12-31", "2025-01-01"),
        ("2024-12-01", "2025-01-31"),
        ("2024-02-29", "2024-02-29"),
        ("2024-03-17", "2025-03-16"),
        ("2023-01-01", "2026-12-31"),
        ("2023-11-01", "2023-11-24"),
        ("2025-03-01", "2025-12-31"),
    ]
    .iter()
    .map(|(a, b)| (d(a), d(b)))
    .collect();
    for _ in 0..30 {
        let from = first + Days::new(rng.below(470)) - Days::new(5);
        periods.push((from, from + Days::new(rng.below(400))));
    }
    let check = |got: &std::collections::HashMap<String, Counters>, from, to| {
        assert_eq!(got.len(), codes.len(), "{from}..={to}");
        for code in &codes {
            assert_eq!(got[code], expect(code, from, to), "{code} {from}..={to}");
        }
    };
    for (from, to) in &periods {
        check(
            &store.counters(&codes, *from, *to).await.unwrap(),
            *from,
            *to,
        );
    }
    // The tree's orgs got counters on both sides of a year's end.
    assert!(!expect(CITY, d("2024-12-31"), d("2025-01-01")).is_zero());

    // The same after a reopen.
    drop(store);
    let store = h.open().await;
    for (from, to) in periods.iter().take(12) {
        check(
            &store.counters(&codes, *from, *to).await.unwrap(),
            *from,
            *to,
        );
    }
}

/// The counters and gauges of a province's worth of orgs (which a store may keep between
/// reads) follow every write: each read after a case is created, then accepted, shows it,
/// for every period read before.
pub async fn reads_of_many_orgs_follow_every_write(h: &dyn Harness) {
    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let day = local_day(&w, now);
    let month = (day - Days::new(30), day);
    let mut codes: Vec<String> = tree().into_iter().map(|o| o.code).collect();
    // Orgs without rollups, so that the read is as large as a province root's.
    codes.extend((0..1000).map(|i| format!("39{i:04}")));
    let read = async |from: NaiveDate, to: NaiveDate| {
        let gauges = store.gauges(&codes).await.unwrap();
        // One gauge read alone is that gauge of all of them, zero where missing.
        for key in ["reported", "accepted", "overdue"] {
            let one = store.gauge(&codes, key).await.unwrap();
            assert_eq!(one.len(), codes.len());
            for code in &codes {
                let n = gauges[code].get(key).copied().unwrap_or(0);
                assert_eq!(one[code], n, "{code} {key}");
            }
        }
        (store.counters(&codes, from, to).await.unwrap(), gauges)
    };

    for _ in 0..2 {
        for (from, to) in [(day, day), month] {
            let (c, g) = read(from, to).await;
            assert_eq!(c.len(), codes.len());
            assert!(c.values().all(Counters::is_zero));
            assert!(g.values().all(|g| g.is_empty()));
        }
    }

    let case = create(&*store, &w, "噪音扰民", GRID_A1, &Actor::Resident, now).await;
    for (from, to) in [(day, day), month] {
        let (c, g) = read(from, to).await;
        assert!(c.values().all(Counters::is_zero));
        assert_eq!(g[CITY].get("reported"), Some(&1));
        assert_eq!(g[GRID_A1].get("reported"), Some(&1));
        assert!(g[GRID_B1].is_empty());
    }

    act(
        &*store,
        case.id,
        accept(),
        dispatcher(),
        Resolved::default(),
        now,
    )
    .await
    .unwrap();
    for (from, to) in [(day, day), month] {
        let (c, g) = read(from, to).await;
        assert_eq!(c[CITY].received, 1, "{from}..={to}");
        assert_eq!(c[GRID_A1].received, 1);
        assert_eq!(c[GRID_B1].received, 0);
        assert_eq!(g[CITY].get("reported"), None);
        assert_eq!(g[CITY].get("accepted"), Some(&1));
    }
}

/// The gauges of every org of the tree equal its subtree's cases by status, and those open
/// and overdue, through reports, acceptances, rejections, dispatches and the overdue sweep,
/// however a store keeps them (rollup rows, or counted from the cases when read); one gauge
/// read alone too.
pub async fn gauges_count_the_cases_of_their_subtree(h: &dyn Harness) {
    use gridloop_domain::case::Action;
    use gridloop_domain::error::DomainError;
    use std::collections::HashMap;

    let store = open_with_tree(h).await;
    let w = World::new();
    let now = t0();
    let later = now + chrono::Duration::days(40);
    let areas = [STREET, COMMUNITY_A, GRID_A1, GRID_A2, COMMUNITY_B, GRID_B1];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = Vec::new();
    for _ in 0..40 {
        let area = areas[rng.below(areas.len() as u64) as usize];
        let c = create(&*store, &w, "路灯不亮", area, &Actor::Resident, now).await;
        let step = rng.below(5);
        let c = match step {
            0 => c,
            1 => {
                let reject = Action::Reject {
                    reason: "重复上报".into(),
                };
                act(
                    &*store,
                    c.id,
                    reject,
                    dispatcher(),
                    Resolved::default(),
                    now,
                )
                .await
                .unwrap()
            }
            _ => {
                let c = act(
                    &*store,
                    c.id,
                    accept(),
                    dispatcher(),
                    Resolved::default(),
                    now,
                )
                .await
                .unwrap();
                match step {
                    2 => c,
                    3 => store
                        .update_case(
                            c.id,
                            None,
                            Box::new(move |case| {
                                let w = World::new();
                                gridloop_domain::sweep::sweep(case, &w.ctx(later))
                                    .ok_or_else(|| DomainError::InvalidState("nothing due".into()))
                            }),
                        )
                        .await
                        .unwrap(),
                    _ => {
                        let (dispatch, resolved) = dispatch_to(GRID_A1);
                        act(&*store, c.id, dispatch, dispatcher(), resolved, now)
                            .await
                            .unwrap()
                    }
                }
            }
        };
        cases.push(c);
    }
    assert!(
        cases.iter().any(|c| c.overdue),
        "the sweep made some overdue"
    );
    let codes: Vec<String> = tree().into_iter().map(|o| o.code).collect();
    let gauges = store.gauges(&codes).await.unwrap();
    for org in tree() {
        let mut want: HashMap<String, i64> = HashMap::new();
        for c in cases.iter().filter(|c| c.area_path.starts_with(&org.path)) {
            *want.entry(c.status.as_str().to_string()).or_default() += 1;
            if c.overdue && c.status.is_open() {
                *want.entry("overdue".to_string()).or_default() += 1;
            }
        }
        assert_eq!(gauges[&org.code], want, "{}", org.code);
        for key in [
            "reported",
            "accepted",
            "dispatched",
            "rejected",
            "overdue",
            "closed",
        ] {
            let one = store.gauge(&codes, key).await.unwrap();
            let n = want.get(key).copied().unwrap_or(0);
            assert_eq!(one[&org.code], n, "{} {key}", org.code);
        }
    }
}
