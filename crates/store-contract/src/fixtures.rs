//! Fixtures of the contract: a small org tree and helpers that drive cases through the
//! domain like the HTTP layer does.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use gridloop_domain::calendar::Calendar;
use gridloop_domain::case::{
    Action, Case, Channel, Ctx, Decision, Difficulty, HandlingMode, NewCase, Reporter, Resolved,
    decide, new_case,
};
use gridloop_domain::org::{Level, Org, OrgRef};
use gridloop_domain::policy::Policy;
use gridloop_domain::role::{Actor, Role, UserActor};
use gridloop_store::{CreateCase, IdempotencyKey, Store};

use crate::Harness;

pub const CITY: &str = "330782";
pub const STREET: &str = "330782001";
pub const COMMUNITY_A: &str = "330782001001";
pub const GRID_A1: &str = "33078200100101";
pub const GRID_A2: &str = "33078200100102";
pub const COMMUNITY_B: &str = "330782001002";
pub const GRID_B1: &str = "33078200100201";

/// city → street → two communities → grids.
pub fn tree() -> Vec<Org> {
    let mut out: Vec<Org> = Vec::new();
    let mut add = |code: &str, name: &str, level: Level, parent: Option<&str>| {
        let p = parent.map(|p| out.iter().find(|o| o.code == p).unwrap().clone());
        let path = Org::child_path(p.as_ref(), code, level).unwrap();
        out.push(Org {
            code: code.into(),
            name: name.into(),
            level,
            parent: parent.map(str::to_string),
            path,
            boundary: None,
        });
    };
    add(CITY, "义乌市", Level::City, None);
    add(STREET, "稠城街道", Level::Street, Some(CITY));
    add(COMMUNITY_A, "A社区", Level::Community, Some(STREET));
    add(GRID_A1, "A1网格", Level::Grid, Some(COMMUNITY_A));
    add(GRID_A2, "A2网格", Level::Grid, Some(COMMUNITY_A));
    add(COMMUNITY_B, "B社区", Level::Community, Some(STREET));
    add(GRID_B1, "B1网格", Level::Grid, Some(COMMUNITY_B));
    out
}

pub fn path_of(code: &str) -> String {
    tree().into_iter().find(|o| o.code == code).unwrap().path
}

pub fn org_ref(code: &str) -> OrgRef {
    OrgRef::new(code, path_of(code))
}

pub fn user(username: &str, role: Role, org: &str) -> Actor {
    Actor::User(UserActor {
        username: username.into(),
        role,
        org: org_ref(org),
    })
}

pub fn dispatcher() -> Actor {
    user("centre", Role::Dispatcher, STREET)
}

pub struct World {
    pub calendar: Calendar,
    pub policy: Policy,
}

impl Default for World {
    fn default() -> World {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        World {
            calendar: Calendar::default(),
            policy: Policy::default(),
        }
    }

    pub fn ctx(&self, now: DateTime<Utc>) -> Ctx<'_> {
        Ctx {
            now,
            calendar: &self.calendar,
            policy: &self.policy,
        }
    }

    pub fn report(&self, title: &str, area: &str, actor: &Actor, now: DateTime<Utc>) -> Decision {
        let input = NewCase {
            channel: Some(if actor.user().is_some() {
                Channel::GridPatrol
            } else {
                Channel::ResidentWeb
            }),
            title: title.into(),
            description: format!("{title}，请尽快处理"),
            reporter: Reporter {
                name: Some("张三".into()),
                phone: Some("13800000000".into()),
            },
            ..NewCase::default()
        };
        new_case(input, actor, &org_ref(area), &self.ctx(now)).unwrap()
    }
}

pub fn local_day(w: &World, now: DateTime<Utc>) -> NaiveDate {
    w.calendar.local_date(now)
}

/// Reports a case and stores it.
pub async fn create(
    store: &dyn Store,
    w: &World,
    title: &str,
    area: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Case {
    let decision = w.report(title, area, actor, now);
    store
        .create_case(CreateCase {
            decision,
            number_day: local_day(w, now),
            idempotency: None,
        })
        .await
        .unwrap()
        .case
}

pub fn key(scope: &str, key: &str, fingerprint: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey {
        scope: scope.into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
    })
}

/// Runs `action` by `actor` on the stored case through the store's update.
pub async fn act(
    store: &dyn Store,
    id: i64,
    action: Action,
    actor: Actor,
    resolved: Resolved,
    now: DateTime<Utc>,
) -> Result<Case, gridloop_store::StoreError> {
    store
        .update_case(
            id,
            None,
            Box::new(move |c| {
                let w = World::new();
                decide(c, &action, &actor, &resolved, &w.ctx(now))
            }),
        )
        .await
}

pub fn accept() -> Action {
    Action::Accept {
        handling_mode: HandlingMode::Immediate,
        difficulty: Difficulty::Simple,
        category: None,
    }
}

pub fn dispatch_to(code: &str) -> (Action, Resolved) {
    (
        Action::Dispatch {
            org: code.into(),
            note: None,
        },
        Resolved {
            target: Some((org_ref(code), Level::Grid)),
            merge_into: None,
        },
    )
}

/// A store on `h` with the org tree in it.
pub async fn open_with_tree(h: &dyn Harness) -> Arc<dyn Store> {
    let store = h.open().await;
    store.put_orgs(tree()).await.unwrap();
    store
}

/// A fixed instant on a working day (Tue 2026-03-10 10:00 Beijing time).
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-10T10:00:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

/// Creates `cases` cases (each with an idempotency key) from `tasks` concurrent tasks, task
/// `t` writing through `stores[t % stores.len()]` (several stores on one database act as
/// several processes), then checks that the chain and the city's gauge hold every one.
/// Returns the seconds the creations took.
pub async fn create_concurrently(stores: &[Arc<dyn Store>], cases: usize, tasks: usize) -> f64 {
    let w = Arc::new(World::new());
    let grids = [GRID_A1, GRID_A2, GRID_B1];
    let started = std::time::Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let (store, w) = (stores[t % stores.len()].clone(), w.clone());
        handles.push(tokio::spawn(async move {
            for i in (t..cases).step_by(tasks) {
                let now = t0();
                let decision = w.report(&format!("事件 {i}"), grids[i % 3], &Actor::Resident, now);
                store
                    .create_case(CreateCase {
                        decision,
                        number_day: local_day(&w, now),
                        idempotency: key("public", &format!("k{i}"), "fp"),
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();

    let report = stores[0].verify_chain().await.unwrap();
    assert_eq!(report.checked, cases as u64);
    assert_eq!(report.first_break, None);
    let g = stores[0].gauges(&[CITY.to_string()]).await.unwrap();
    assert_eq!(g[CITY]["reported"], cases as i64);
    secs
}
