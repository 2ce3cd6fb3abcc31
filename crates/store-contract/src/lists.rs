//! Every list, paged with several sizes, against the obvious filter-and-sort: a matrix of
//! every filter, alone and combined, with every sort, over 300 cases.
//!
//! The parts are public so that a store can run the same matrix past its own knobs (the
//! SQLite store runs it with the walk budget at its minimum in its unit tests).

use chrono::{DateTime, Utc};
use gridloop_domain::calendar::Calendar;
use gridloop_domain::case::{Action, Case, Ctx, Difficulty, HandlingMode, NewCase, Resolved};
use gridloop_domain::case::{Location, Reporter, Status, decide, new_case};
use gridloop_domain::org::{Level, OrgRef};
use gridloop_domain::policy::Policy;
use gridloop_domain::role::{Actor, Role, UserActor};
use gridloop_store::{BBox, CaseFilter, CaseSort, CreateCase, Store, Visibility};

use crate::Harness;

/// The matrix's first instant; case `i` of [`populate`] is reported `(i * 37) % 300`
/// minutes after it.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_773_100_000, 0).unwrap()
}

fn at(minutes: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(minutes)
}

fn lat_of(k: i64) -> f64 {
    29.3 + k as f64 * 0.001
}

fn lng_of(k: i64) -> f64 {
    120.07 + k as f64 * 0.001
}

/// Org paths of the matrix (no org rows are needed): two grids of one street, and another.
const A: &str = "/1/2/3/";
const B: &str = "/1/2/4/";
const C: &str = "/1/5/";

/// Stores the matrix's 300 cases (some accepted, some dispatched, reported out of id
/// order) and returns them all, as the store lists them.
pub async fn populate(store: &dyn Store) -> Vec<Case> {
    let (cal, policy) = (Calendar::default(), Policy::default());
    let t0 = t0();
    let ctx = |i: i64| Ctx {
        now: t0 + chrono::Duration::minutes(i),
        calendar: &cal,
        policy: &policy,
    };
    let (a, b, c) = (A, B, C);
    let user = |name: &str, path: &str| {
        Actor::User(UserActor {
            username: name.into(),
            role: Role::Dispatcher,
            org: OrgRef::new(gridloop_domain::org::last_code(path), path),
        })
    };
    for i in 0..300_i64 {
        let area = match i % 30 {
            0 => b,
            1..=3 => c,
            _ => a,
        };
        let actor = if i % 11 == 0 {
            user("u", c)
        } else {
            Actor::Resident
        };
        let input = NewCase {
            channel: Some(gridloop_domain::case::Channel::Hotline),
            title: if i % 9 == 0 {
                "50%_x".into()
            } else {
                format!("case {i}")
            },
            reporter: Reporter {
                name: None,
                phone: Some(format!("1380000{:04}", i % 4)),
            },
            category: [None, Some("greening"), Some("road_traffic"), Some("other")]
                [(i % 4) as usize]
                .map(str::to_string),
            location: (i % 5 != 0).then(|| Location {
                lat: lat_of(i % 10),
                lng: lng_of(i % 7),
            }),
            source_key: (i % 2 == 0).then(|| format!("cam-{}", i % 6)),
            visit_id: (i % 3 == 0).then_some(i % 5),
            ..NewCase::default()
        };
        let area_ref = OrgRef::new(gridloop_domain::org::last_code(area), area);
        // Reported out of id order, so that periods are not ranges of ids.
        let born = (i * 37) % 300;
        let decision = new_case(input, &actor, &area_ref, &ctx(born)).unwrap();
        let day = cal.local_date(ctx(born).now);
        let created = store
            .create_case(CreateCase {
                decision,
                number_day: day,
                idempotency: None,
            })
            .await
            .unwrap();
        if i % 4 == 1 {
            let centre = user("centre", "/1/");
            let later = 600 - i;
            let accept = Action::Accept {
                handling_mode: HandlingMode::Immediate,
                difficulty: Difficulty::Simple,
                category: None,
            };
            let accepted = store
                .update_case(
                    created.case.id,
                    None,
                    Box::new(move |case| {
                        let (cal, policy) = (Calendar::default(), Policy::default());
                        let ctx = Ctx {
                            now: t0 + chrono::Duration::minutes(later),
                            calendar: &cal,
                            policy: &policy,
                        };
                        decide(case, &accept, &centre, &Resolved::default(), &ctx)
                    }),
                )
                .await
                .unwrap();
            if i % 8 == 1 {
                let centre = user("centre", "/1/");
                let to = Action::Dispatch {
                    org: "4".into(),
                    note: None,
                };
                store
                    .update_case(
                        accepted.id,
                        None,
                        Box::new(move |case| {
                            let (cal, policy) = (Calendar::default(), Policy::default());
                            let ctx = Ctx {
                                now: t0 + chrono::Duration::minutes(later + 1),
                                calendar: &cal,
                                policy: &policy,
                            };
                            let resolved = Resolved {
                                target: Some((OrgRef::new("4", b), Level::Grid)),
                                merge_into: None,
                            };
                            decide(case, &to, &centre, &resolved, &ctx)
                        }),
                    )
                    .await
                    .unwrap();
            }
        }
    }
    let all = store
        .list_cases(CaseFilter {
            limit: 200,
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    let mut all_cases = all.items;
    let rest = store
        .list_cases(CaseFilter {
            limit: 200,
            cursor: all.next_cursor,
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    all_cases.extend(rest.items);
    assert_eq!(all_cases.len(), 300);

    all_cases
}

/// The filters of the matrix; each is run with every sort.
pub fn filters() -> Vec<CaseFilter> {
    let (a, b, c) = (A, B, C);
    let vis = |path: &str, username: &str| {
        Some(Visibility {
            path: path.into(),
            username: username.into(),
        })
    };
    let open = vec![Status::Reported, Status::Accepted, Status::Dispatched];
    let filters = [
        CaseFilter::default(),
        CaseFilter {
            visible_to: vis(b, "x"),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(c, "u"),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis("/1/2/", "u"),
            statuses: open.clone(),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(b, "x"),
            statuses: open.clone(),
            ..CaseFilter::default()
        },
        CaseFilter {
            statuses: vec![Status::Dispatched],
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis("/1/", "x"),
            statuses: vec![Status::Reported, Status::Closed],
            ..CaseFilter::default()
        },
        CaseFilter {
            org_path: Some(b.into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis("/1/", "x"),
            area_path: Some(c.into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(c, "x"),
            q: Some("50%_".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            q: Some("case 1".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            reporter_phone: Some("13800000001".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(a, "x"),
            overdue: Some(false),
            ..CaseFilter::default()
        },
        CaseFilter {
            ids: vec![5, 3, 250, 5, 999, 42, 120, 121, 7],
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(b, "x"),
            ids: (1..=300).step_by(3).collect(),
            statuses: open.clone(),
            category: Some("greening".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            categories: vec!["greening".into(), "other".into()],
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(c, "x"),
            categories: vec!["road_traffic".into(), "other".into()],
            category: Some("other".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            created_from: Some(at(100)),
            created_to: Some(at(130)),
            ..CaseFilter::default()
        },
        CaseFilter {
            created_to: Some(at(20)),
            statuses: open.clone(),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(a, "u"),
            created_from: Some(at(250)),
            categories: vec!["greening".into()],
            ..CaseFilter::default()
        },
        CaseFilter {
            source_key: Some("cam-2".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(a, "x"),
            source_key: Some("cam-4".into()),
            statuses: open.clone(),
            created_from: Some(at(50)),
            ..CaseFilter::default()
        },
        CaseFilter {
            visit_id: Some(3),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis(c, "u"),
            visit_id: Some(0),
            reporter_phone: Some("13800000000".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            within: Some(BBox {
                min_lat: lat_of(2),
                max_lat: lat_of(4),
                min_lng: lng_of(1),
                max_lng: lng_of(1),
            }),
            ..CaseFilter::default()
        },
        CaseFilter {
            visible_to: vis("/1/2/", "x"),
            within: Some(BBox::around(lat_of(5), lng_of(5), 150.0)),
            statuses: open.clone(),
            ..CaseFilter::default()
        },
        CaseFilter {
            within: Some(BBox::around(lat_of(1), lng_of(1), 50.0)),
            created_from: Some(at(10)),
            created_to: Some(at(290)),
            categories: vec!["greening".into(), "road_traffic".into()],
            ..CaseFilter::default()
        },
    ];
    filters.to_vec()
}

/// Every filter of the matrix, with every sort, paged with limits 3 and 200, against
/// [`expected`].
pub async fn pages_match_a_plain_filter_and_sort(h: &dyn Harness) {
    let store = h.open().await;
    let all = populate(&*store).await;
    for f in filters() {
        for sort in [CaseSort::Newest, CaseSort::Deadline, CaseSort::Updated] {
            let f = CaseFilter { sort, ..f.clone() };
            let want = expected(&all, &f);
            for limit in [3, 200] {
                let got = paged(&*store, &f, limit).await;
                assert_eq!(got, want, "limit {limit}, {f:?}");
            }
        }
    }
}

/// Pages through `f` with `limit` and returns the ids, checking page sizes.
pub async fn paged(store: &dyn Store, f: &CaseFilter, limit: u32) -> Vec<i64> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let page = store
            .list_cases(CaseFilter {
                limit,
                cursor,
                ..f.clone()
            })
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize);
        out.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(c) => {
                assert_eq!(page.items.len(), limit as usize);
                cursor = Some(c);
            }
            None => return out,
        }
    }
    panic!("pagination does not end");
}

/// The list a filter must produce, computed the obvious way.
pub fn expected(all: &[Case], f: &CaseFilter) -> Vec<i64> {
    let under = |p: &str, path: &str| path.starts_with(p);
    let mut hits: Vec<&Case> = all
        .iter()
        .filter(|c| {
            f.visible_to.as_ref().is_none_or(|v| {
                under(&v.path, &c.org_path)
                    || under(&v.path, &c.area_path)
                    || c.created_by.as_deref() == Some(v.username.as_str())
            }) && (f.statuses.is_empty() || f.statuses.contains(&c.status))
                && f.org_path.as_deref().is_none_or(|p| under(p, &c.org_path))
                && f.area_path
                    .as_deref()
                    .is_none_or(|p| under(p, &c.area_path))
                && f.overdue.is_none_or(|o| c.overdue == o)
                && f.reporter_phone
                    .as_ref()
                    .is_none_or(|p| c.reporter.phone.as_ref() == Some(p))
                && f.q.as_deref().is_none_or(|q| {
                    c.number.contains(q) || c.title.contains(q) || c.description.contains(q)
                })
                && f.channel.is_none_or(|ch| c.channel == ch)
                && f.category
                    .as_ref()
                    .is_none_or(|k| c.category.as_ref() == Some(k))
                && (f.ids.is_empty() || f.ids.contains(&c.id))
                && (f.categories.is_empty()
                    || c.category
                        .as_ref()
                        .is_some_and(|k| f.categories.contains(k)))
                && f.created_from.is_none_or(|t| c.created_at >= t)
                && f.created_to.is_none_or(|t| c.created_at < t)
                && f.source_key
                    .as_ref()
                    .is_none_or(|k| c.source_key.as_ref() == Some(k))
                && f.visit_id.is_none_or(|v| c.visit_id == Some(v))
                && f.within.is_none_or(|b| {
                    c.location.is_some_and(|l| {
                        (b.min_lat..=b.max_lat).contains(&l.lat)
                            && (b.min_lng..=b.max_lng).contains(&l.lng)
                    })
                })
        })
        .collect();
    match f.sort {
        CaseSort::Newest => hits.sort_by_key(|c| std::cmp::Reverse(c.id)),
        CaseSort::Deadline => {
            hits.sort_by_key(|c| (c.deadline.map_or(i64::MAX, |d| d.timestamp_millis()), c.id))
        }
        CaseSort::Updated => {
            hits.sort_by_key(|c| std::cmp::Reverse((c.updated_at.timestamp_millis(), c.id)))
        }
    }
    hits.into_iter().map(|c| c.id).collect()
}
