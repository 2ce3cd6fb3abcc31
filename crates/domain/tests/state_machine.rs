//! Property tests: no sequence of actions by any role, interleaved with sweeps and feedback
//! at arbitrary times, reaches an invalid state, skips an event, or unbalances the rollups.

use chrono::{DateTime, Duration, TimeZone, Utc};
use gridloop_domain::calendar::{Calendar, CalendarYear};
use gridloop_domain::case::*;
use gridloop_domain::measures::{Counters, GaugeKey};
use gridloop_domain::org::{Level, OrgRef};
use gridloop_domain::policy::Policy;
use gridloop_domain::role::{Actor, Role, UserActor};
use proptest::prelude::*;

const STREET: &str = "/330782/330782003/";
const COMMUNITY: &str = "/330782/330782003/330782003001/";
const GRID: &str = "/330782/330782003/330782003001/33078200300101/";
const DEPT: &str = "/330782/330782003/330782003D01/";

fn cal() -> Calendar {
    let mut c = Calendar::default();
    c.load_year(&CalendarYear::parse(include_str!("../../../calendars/2026.json")).unwrap());
    c
}

fn org(path: &str) -> OrgRef {
    OrgRef::new(gridloop_domain::org::last_code(path), path)
}

fn user(role: Role, path: &str) -> Actor {
    Actor::User(UserActor {
        username: format!("{}@{path}", role.as_str()),
        role,
        org: org(path),
    })
}

#[derive(Debug, Clone)]
enum Step {
    Act(Role, &'static str, Action),
    Sweep,
    Feedback(Rating),
    Wait(i64),
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0..5usize, 0..3usize).prop_map(|(m, d)| Action::Accept {
            handling_mode: HandlingMode::ALL[m],
            difficulty: Difficulty::ALL[d],
            category: None
        }),
        Just(Action::Reject {
            reason: "不属于受理范围".into()
        }),
        prop_oneof![Just(GRID), Just(COMMUNITY), Just(DEPT)].prop_map(|p| Action::Dispatch {
            org: gridloop_domain::org::last_code(p).into(),
            note: None
        }),
        Just(Action::Claim {}),
        Just(Action::Return {
            reason: "非本网格事项".into()
        }),
        (0..4u32).prop_map(|days| Action::RequestExtension {
            days,
            reason: "需协调".into()
        }),
        any::<bool>().prop_map(|approved| Action::DecideExtension {
            approved,
            note: None
        }),
        Just(Action::Reply {
            result: "已处理".into(),
            attachments: vec![]
        }),
        any::<bool>().prop_map(|passed| Action::Verify { passed, note: None }),
        Just(Action::Close {
            note: "已解释".into()
        }),
        Just(Action::Escalate {
            reason: "无法解决".into()
        }),
        Just(Action::Supervise {
            note: "请加快".into()
        }),
        Just(Action::Merge { into: 999 }),
        Just(Action::Comment {
            text: "备注".into()
        }),
    ]
}

fn arb_step() -> impl Strategy<Value = Step> {
    let roles = prop_oneof![
        Just(Role::Admin),
        Just(Role::Leader),
        Just(Role::Dispatcher),
        Just(Role::Handler),
        Just(Role::Inspector),
        Just(Role::Volunteer)
    ];
    let places = prop_oneof![Just(STREET), Just(COMMUNITY), Just(GRID), Just(DEPT)];
    prop_oneof![
        6 => (roles, places, arb_action()).prop_map(|(r, p, a)| Step::Act(r, p, a)),
        1 => Just(Step::Sweep),
        1 => (0..3usize).prop_map(|i| Step::Feedback(Rating::ALL[i])),
        2 => (1..200_000i64).prop_map(Step::Wait),
    ]
}

fn resolved_for(action: &Action) -> Resolved {
    let mut r = Resolved::default();
    if let Action::Dispatch { org: code, .. } = action {
        let path = [GRID, COMMUNITY, DEPT]
            .into_iter()
            .find(|p| p.contains(code.as_str()))
            .unwrap();
        let level = if path == GRID {
            Level::Grid
        } else if path == DEPT {
            Level::Department
        } else {
            Level::Community
        };
        r.target = Some((org(path), level));
    }
    if let Action::Merge { into } = action {
        r.merge_into = Some(MergeTarget {
            id: *into,
            number: "20260101-000001".into(),
            status: Status::Accepted,
        });
    }
    r
}

/// Which status changes the state machine may make at all.
fn allowed_edge(from: Status, to: Status) -> bool {
    use Status::*;
    from == to
        || matches!(
            (from, to),
            (Reported, Accepted | Rejected | Merged)
                | (Accepted, Dispatched | Closed | Merged)
                | (Dispatched, InProgress | Accepted | Dispatched | Closed)
                | (InProgress, Replied | Accepted | Dispatched | Closed)
                | (Replied, Closed | InProgress)
                | (Closed, Dispatched | Accepted)
        )
}

fn check_invariants(c: &Case) {
    assert_eq!(
        c.closed_at.is_some(),
        c.status == Status::Closed,
        "closed_at iff closed: {c:?}"
    );
    assert!(
        !c.overdue || c.status.may_be_overdue(),
        "only accepted open cases are overdue (lists rely on it): {c:?}"
    );
    assert_eq!(c.merged_into.is_some(), c.status == Status::Merged);
    if c.accepted_at.is_some() {
        assert!(c.deadline.is_some() && c.difficulty.is_some() && c.handling_mode.is_some());
    }
    if matches!(
        c.status,
        Status::Dispatched | Status::InProgress | Status::Replied
    ) {
        assert!(c.accepted_at.is_some(), "work starts only after acceptance");
    }
    assert!(
        c.org_path.starts_with("/330782/"),
        "the responsible org stays in the tree"
    );
    assert!(
        c.due_at.is_none() || c.status.is_open(),
        "closed cases are never due"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_breaks_the_loop(steps in proptest::collection::vec(arb_step(), 1..40)) {
        let cal = cal();
        let policy = Policy::default();
        let mut now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 9, 28, 1, 0, 0).unwrap();
        let reporter = user(Role::Volunteer, GRID);
        let ctx = Ctx { now, calendar: &cal, policy: &policy };
        let input = NewCase { channel: Some(Channel::Volunteer), title: "护栏破损".into(), ..Default::default() };
        let d = new_case(input, &reporter, &org(GRID), &ctx).unwrap();
        let mut case = d.case;
        case.id = 1;
        let mut events = d.events.len();
        let mut gauges = std::collections::HashMap::<GaugeKey, i64>::new();
        let mut counters = Counters::default();
        let mut apply = |m: &gridloop_domain::measures::MeasureDelta| {
            for (k, n) in &m.gauges { *gauges.entry(*k).or_default() += n; }
            for (_, c) in &m.counters { counters.add(c); }
        };
        apply(&d.measures);

        for step in steps {
            let ctx = Ctx { now, calendar: &cal, policy: &policy };
            let result = match step {
                Step::Wait(mins) => { now += Duration::minutes(mins); continue; }
                Step::Sweep => {
                    if case.due_at.is_some_and(|t| t <= now) {
                        gridloop_domain::sweep::sweep(&case, &ctx).ok_or(gridloop_domain::DomainError::InvalidState("nothing".into()))
                    } else { continue }
                }
                Step::Feedback(r) => feedback(&case, r, None, &Actor::Resident, &ctx),
                Step::Act(role, place, action) => {
                    decide(&case, &action, &user(role, place), &resolved_for(&action), &ctx)
                }
            };
            if let Ok(d) = result {
                prop_assert!(allowed_edge(case.status, d.case.status), "{:?} -> {:?}", case.status, d.case.status);
                prop_assert!(d.case.version >= case.version);
                if d.case.version > case.version || d.case.status != case.status {
                    prop_assert!(!d.events.is_empty(), "a change without an event");
                }
                prop_assert!(d.events.iter().all(|e| e.at == gridloop_domain::to_millis(now)));
                events += d.events.len();
                apply(&d.measures);
                case = d.case;
                check_invariants(&case);
            }
        }
        prop_assert!(events >= 1);
        // The gauges describe exactly the current case.
        for s in Status::ALL {
            let want = i64::from(case.status == *s);
            prop_assert_eq!(gauges.get(&GaugeKey::Status(*s)).copied().unwrap_or(0), want, "gauge {:?}", s);
        }
        let overdue_now = i64::from(case.overdue && case.status.is_open());
        prop_assert_eq!(gauges.get(&GaugeKey::Overdue).copied().unwrap_or(0), overdue_now);
        // Counters: received at most once; closed nets to whether it is closed now.
        prop_assert_eq!(counters.received, i64::from(case.accepted_at.is_some()));
        prop_assert_eq!(counters.closed, i64::from(case.status == Status::Closed));
        prop_assert!(counters.closed_on_time <= counters.closed && counters.closed_on_time >= 0);
        prop_assert!(counters.satisfied <= counters.rated);
    }
}

#[test]
fn roles_and_assignment() {
    let cal = cal();
    let policy = Policy::default();
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap();
    let ctx = Ctx {
        now,
        calendar: &cal,
        policy: &policy,
    };
    let input = NewCase {
        channel: Some(Channel::Hotline),
        title: "路灯不亮".into(),
        ..Default::default()
    };
    let case = new_case(input, &user(Role::Dispatcher, STREET), &org(GRID), &ctx)
        .unwrap()
        .case;
    // A handler cannot accept; a volunteer cannot dispatch.
    let accept = Action::Accept {
        handling_mode: HandlingMode::Immediate,
        difficulty: Difficulty::Difficult,
        category: None,
    };
    assert!(matches!(
        decide(
            &case,
            &accept,
            &user(Role::Handler, GRID),
            &Resolved::default(),
            &ctx
        ),
        Err(gridloop_domain::DomainError::Forbidden(_))
    ));
    let case = decide(
        &case,
        &accept,
        &user(Role::Dispatcher, STREET),
        &Resolved::default(),
        &ctx,
    )
    .unwrap()
    .case;
    // Deadline: 3 working days, same clock time (Tue → Fri).
    assert_eq!(
        case.deadline,
        Some(Utc.with_ymd_and_hms(2026, 11, 27, 2, 0, 0).unwrap())
    );
    assert_eq!(
        case.org, "330782003",
        "the accepting centre is responsible until dispatch"
    );
    let dispatch = Action::Dispatch {
        org: "330782003D01".into(),
        note: None,
    };
    let case = decide(
        &case,
        &dispatch,
        &user(Role::Dispatcher, STREET),
        &resolved_for(&dispatch),
        &ctx,
    )
    .unwrap()
    .case;
    // The grid's handler may not claim a department's case.
    assert!(matches!(
        decide(
            &case,
            &Action::Claim {},
            &user(Role::Handler, GRID),
            &Resolved::default(),
            &ctx
        ),
        Err(gridloop_domain::DomainError::Forbidden(_))
    ));
    let case = decide(
        &case,
        &Action::Claim {},
        &user(Role::Handler, DEPT),
        &Resolved::default(),
        &ctx,
    )
    .unwrap()
    .case;
    assert_eq!(case.status, Status::InProgress);
    // Claiming twice is a state conflict.
    assert!(matches!(
        decide(
            &case,
            &Action::Claim {},
            &user(Role::Handler, DEPT),
            &Resolved::default(),
            &ctx
        ),
        Err(gridloop_domain::DomainError::InvalidState(_))
    ));
    // Return goes back to the centre.
    let ret = Action::Return {
        reason: "非本部门职责".into(),
    };
    let case = decide(
        &case,
        &ret,
        &user(Role::Handler, DEPT),
        &Resolved::default(),
        &ctx,
    )
    .unwrap()
    .case;
    assert_eq!(
        (case.status, case.org.as_str()),
        (Status::Accepted, "330782003")
    );
}

#[test]
fn sweep_supervises_then_escalates_up_the_tree() {
    let cal = cal();
    let policy = Policy::default();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap(); // Mon 10:00 +08
    let ctx = Ctx {
        now: t0,
        calendar: &cal,
        policy: &policy,
    };
    let input = NewCase {
        channel: Some(Channel::GridPatrol),
        title: "占道经营".into(),
        ..Default::default()
    };
    let case = new_case(input, &user(Role::Handler, GRID), &org(GRID), &ctx)
        .unwrap()
        .case;
    let accept = Action::Accept {
        handling_mode: HandlingMode::Joint,
        difficulty: Difficulty::Simple,
        category: None,
    };
    let case = decide(
        &case,
        &accept,
        &user(Role::Dispatcher, STREET),
        &Resolved::default(),
        &ctx,
    )
    .unwrap()
    .case;
    let dispatch = Action::Dispatch {
        org: "33078200300101".into(),
        note: None,
    };
    let case = decide(
        &case,
        &dispatch,
        &user(Role::Dispatcher, STREET),
        &resolved_for(&dispatch),
        &ctx,
    )
    .unwrap()
    .case;
    let case = decide(
        &case,
        &Action::Claim {},
        &user(Role::Handler, GRID),
        &Resolved::default(),
        &ctx,
    )
    .unwrap()
    .case;
    // Deadline Tue 10:00; the sweep at Tue 10:01 marks it overdue with a supervise event.
    assert_eq!(case.due_at, case.deadline);
    let t1 = case.deadline.unwrap() + Duration::minutes(1);
    let d = gridloop_domain::sweep::sweep(
        &case,
        &Ctx {
            now: t1,
            calendar: &cal,
            policy: &policy,
        },
    )
    .unwrap();
    assert!(d.case.overdue);
    assert_eq!(
        d.events
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["supervise"]
    );
    // One working day later still overdue: escalated from the grid to the community.
    let case = d.case;
    let t2 = case.due_at.unwrap();
    assert_eq!(t2, Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap());
    let d = gridloop_domain::sweep::sweep(
        &case,
        &Ctx {
            now: t2,
            calendar: &cal,
            policy: &policy,
        },
    )
    .unwrap();
    assert_eq!(d.case.org, "330782003001");
    assert_eq!(d.case.status, Status::Dispatched);
    assert_eq!(d.events.last().unwrap().action, "escalate");
}
