//! The hot domain code at province scale: 135 deadlines on the holiday calendar, the case
//! loop's transitions, and jieba segmentation of a typical report (duplicate detection).
//!
//! `cargo bench -p gridloop-domain --bench domain`

use std::hint::black_box;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use gridloop_domain::calendar::{Calendar, CalendarYear};
use gridloop_domain::case::{
    Action, Ctx, Difficulty, HandlingMode, Location, NewCase, Reporter, Resolved, decide, new_case,
};
use gridloop_domain::org::{Level, OrgRef};
use gridloop_domain::policy::Policy;
use gridloop_domain::role::{Actor, Role, UserActor};

fn calendar() -> Calendar {
    let mut c = Calendar::default();
    for text in [
        include_str!("../../../calendars/2025.json"),
        include_str!("../../../calendars/2026.json"),
    ] {
        c.load_year(&CalendarYear::parse(text).expect("shipped calendars parse"));
    }
    c
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-09-28T09:30:00+08:00")
        .expect("valid time")
        .with_timezone(&Utc)
}

fn user(name: &str, role: Role, code: &str, path: &str) -> Actor {
    Actor::User(UserActor {
        username: name.into(),
        role,
        org: OrgRef::new(code, path),
    })
}

/// Deadlines from instants spread over a year, across the national-day holiday and its
/// make-up working days.
fn deadlines(c: &mut Criterion) {
    let cal = calendar();
    let policy = Policy::default();
    let froms: Vec<DateTime<Utc>> = (0..1024)
        .map(|i| start() + Duration::minutes(i * 517))
        .collect();
    let mut i = 0;
    c.bench_function("deadline: 135 rule on the holiday calendar", |b| {
        b.iter(|| {
            i = (i + 1) % froms.len();
            let d = [
                Difficulty::Simple,
                Difficulty::Difficult,
                Difficulty::UnsolvableNow,
            ][i % 3];
            black_box(policy.deadline(&cal, black_box(froms[i]), d))
        })
    });
}

/// A report through the whole loop: new, accept, dispatch, claim, reply, verify (closed).
fn transitions(c: &mut Criterion) {
    let cal = calendar();
    let policy = Policy::default();
    let grid = OrgRef::new("33000100101", "/330000/330001/330001001/33000100101/");
    let centre = user(
        "s0001-dispatcher",
        Role::Dispatcher,
        "330001",
        "/330000/330001/",
    );
    let handler = user("s0001-grid1", Role::Handler, &grid.code, &grid.path);
    let target = Resolved {
        target: Some((grid.clone(), Level::Grid)),
        merge_into: None,
    };
    let none = Resolved::default();
    let t0 = start();
    let ctx = |minutes: i64| Ctx {
        now: t0 + Duration::minutes(minutes),
        calendar: &cal,
        policy: &policy,
    };
    let input = NewCase {
        channel: Some(gridloop_domain::case::Channel::Hotline),
        title: "锦都花园3幢楼道堆放杂物".into(),
        description: "市民来电反映：3幢2单元楼道里堆满纸箱和旧家具，还有电动车在楼道充电。".into(),
        category: Some("safety_hazard".into()),
        location: Some(Location {
            lat: 29.28,
            lng: 120.05,
        }),
        reporter: Reporter {
            name: Some("李女士".into()),
            phone: Some("13912345678".into()),
        },
        ..NewCase::default()
    };
    c.bench_function("transitions: report to close (6 decisions)", |b| {
        b.iter(|| {
            let mut case = new_case(input.clone(), &centre, &grid, &ctx(0))
                .expect("reports")
                .case;
            let steps: [(Action, &Actor, &Resolved); 5] = [
                (
                    Action::Accept {
                        handling_mode: HandlingMode::Immediate,
                        difficulty: Difficulty::Simple,
                        category: None,
                    },
                    &centre,
                    &none,
                ),
                (
                    Action::Dispatch {
                        org: grid.code.clone(),
                        note: None,
                    },
                    &centre,
                    &target,
                ),
                (Action::Claim {}, &handler, &none),
                (
                    Action::Reply {
                        result: "已清理楼道杂物，电动车已移至集中充电点。".into(),
                        attachments: vec![],
                    },
                    &handler,
                    &none,
                ),
                (
                    Action::Verify {
                        passed: true,
                        note: None,
                    },
                    &centre,
                    &none,
                ),
            ];
            for (k, (action, actor, resolved)) in steps.iter().enumerate() {
                case = decide(&case, action, actor, resolved, &ctx(10 * (k as i64 + 1)))
                    .expect("allowed")
                    .case;
            }
            black_box(case)
        })
    });
}

/// Words of a typical report, as duplicate detection takes them, and the similarity of two.
fn segmentation(c: &mut Criterion) {
    let a = "市民来电反映：锦都花园3幢2单元楼道里堆满纸箱和旧家具，还有住户把电动车推进楼道充电，\
             存在严重消防隐患，物业说过几次也没有清理，希望社区和网格员尽快上门处理。";
    let b = "网格员巡查发现：锦都花园3幢楼道堆放大量杂物，有电动车在楼道内充电，已提醒住户，需物业清理。";
    // The dictionary loads once per process; keep it out of the measurement.
    black_box(gridloop_domain::duplicates::words(a));
    c.bench_function("segmentation: jieba words of a report", |bench| {
        bench.iter(|| black_box(gridloop_domain::duplicates::words(black_box(a))))
    });
    c.bench_function("segmentation: similarity of two reports", |bench| {
        bench.iter(|| black_box(gridloop_domain::duplicates::similarity(a, b)))
    });
}

criterion_group!(benches, deadlines, transitions, segmentation);
criterion_main!(benches);
