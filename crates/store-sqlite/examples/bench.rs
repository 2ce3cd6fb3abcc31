//! Load and query benchmark of the SQLite store.
//!
//! ```text
//! cargo run --release -p gridloop-store-sqlite --example bench -- [imported cases] [data dir]
//! ```
//!
//! Measures durable concurrent case creation (group commit), bulk import, case lists of
//! users at every level of a 1,000-grid city, and a full chain verification.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use gridloop_domain::calendar::Calendar;
use gridloop_domain::case::{
    Action, Channel, Ctx, Difficulty, HandlingMode, NewCase, Reporter, Resolved, Status, decide,
    new_case,
};
use gridloop_domain::measures::MeasureDelta;
use gridloop_domain::org::{Level, Org, OrgRef};
use gridloop_domain::policy::Policy;
use gridloop_domain::role::{Actor, Role, UserActor};
use gridloop_store::{CaseFilter, CaseSort, CreateCase, ImportCase, Store, Visibility};
use gridloop_store_sqlite::SqliteStore;

const STREETS: usize = 10;
const COMMUNITIES: usize = 10;
const GRIDS: usize = 10;

fn tree() -> (Vec<Org>, Vec<Org>) {
    let mut orgs = Vec::new();
    let mut grids = Vec::new();
    let city = Org {
        code: "330782".into(),
        name: "city".into(),
        level: Level::City,
        parent: None,
        path: "/330782/".into(),
        boundary: None,
    };
    orgs.push(city.clone());
    for s in 0..STREETS {
        let street = child(&city, format!("330782{s:03}"), Level::Street);
        orgs.push(street.clone());
        for c in 0..COMMUNITIES {
            let community = child(&street, format!("{}{c:03}", street.code), Level::Community);
            orgs.push(community.clone());
            for g in 0..GRIDS {
                let grid = child(&community, format!("{}{g:02}", community.code), Level::Grid);
                orgs.push(grid.clone());
                grids.push(grid);
            }
        }
    }
    (orgs, grids)
}

fn child(parent: &Org, code: String, level: Level) -> Org {
    Org {
        path: Org::child_path(Some(parent), &code, level).unwrap(),
        code,
        name: "org".into(),
        level,
        parent: Some(parent.code.clone()),
        boundary: None,
    }
}

struct World {
    cal: Calendar,
    policy: Policy,
    centre: Actor,
}

impl World {
    fn ctx(&self, now: DateTime<Utc>) -> Ctx<'_> {
        Ctx {
            now,
            calendar: &self.cal,
            policy: &self.policy,
        }
    }

    fn report(&self, i: usize, grid: &Org, now: DateTime<Utc>) -> gridloop_domain::case::Decision {
        let input = NewCase {
            channel: Some(Channel::ResidentWeb),
            title: format!("事件 {i} 井盖缺失"),
            description: "小区门口的井盖缺失，夜间行人容易跌倒，请尽快处理。".into(),
            reporter: Reporter {
                name: Some("张三".into()),
                phone: Some(format!("138{:08}", i % 50_000)),
            },
            ..NewCase::default()
        };
        new_case(input, &Actor::Resident, &grid.as_ref(), &self.ctx(now)).unwrap()
    }

    /// A historic case: reported, accepted, dispatched and (mostly) closed.
    fn historic(&self, i: usize, grid: &Org, now: DateTime<Utc>) -> ImportCase {
        let d = self.report(i, grid, now);
        let mut case = d.case;
        let mut events = d.events;
        let mut measures = MeasureDelta::default();
        measures.extend(d.measures);
        let mut step = |action: Action, resolved: Resolved, at: DateTime<Utc>| {
            let d = decide(&case, &action, &self.centre, &resolved, &self.ctx(at)).unwrap();
            case = d.case;
            events.extend(d.events);
            measures.extend(d.measures);
        };
        if !i.is_multiple_of(20) {
            step(
                Action::Accept {
                    handling_mode: HandlingMode::Immediate,
                    difficulty: Difficulty::Simple,
                    category: None,
                },
                Resolved::default(),
                now + Duration::minutes(10),
            );
            step(
                Action::Dispatch {
                    org: grid.code.clone(),
                    note: None,
                },
                Resolved {
                    target: Some((grid.as_ref(), Level::Grid)),
                    merge_into: None,
                },
                now + Duration::minutes(20),
            );
            if i % 10 != 1 {
                step(
                    Action::Close {
                        note: "已处理".into(),
                    },
                    Resolved::default(),
                    now + Duration::hours(5),
                );
            }
        }
        case.number = format!(
            "{}-{:06}",
            (now - Duration::days(3000)).format("%Y%m%d"),
            i + 1
        );
        ImportCase {
            case,
            events,
            measures,
        }
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let imported: usize = args.next().map_or(200_000, |a| a.parse().unwrap());
    let dir = args.next().map_or_else(
        || std::env::temp_dir().join(format!("gridloop-bench-{}", std::process::id())),
        PathBuf::from,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(SqliteStore::open(&dir).unwrap());
    let (orgs, grids) = tree();
    store.put_orgs(orgs.clone()).await.unwrap();
    let street = orgs
        .iter()
        .find(|o| o.level == Level::Street)
        .unwrap()
        .clone();
    let w = Arc::new(World {
        cal: Calendar::default(),
        policy: Policy::default(),
        centre: Actor::User(UserActor {
            username: "centre".into(),
            role: Role::Dispatcher,
            org: OrgRef::new(&orgs[0].code, &orgs[0].path),
        }),
    });
    let grids = Arc::new(grids);
    let t0 = Utc::now() - Duration::days(400);

    // --- bulk import ----------------------------------------------------------------------
    // Building the historic cases through the domain costs more than storing them; only the
    // store's part is timed.
    let mut store_secs = 0.0;
    let batch = 5_000;
    for start in (0..imported).step_by(batch) {
        let cases: Vec<ImportCase> = (start..(start + batch).min(imported))
            .map(|i| {
                let at = t0 + Duration::seconds((i as i64 * 86_400 * 365) / imported.max(1) as i64);
                w.historic(i, &grids[(i * 7919) % grids.len()], at)
            })
            .collect();
        let started = Instant::now();
        store.import_cases(cases).await.unwrap();
        store_secs += started.elapsed().as_secs_f64();
    }
    println!(
        "import: {imported} cases in {store_secs:.1} s of store time ({:.0} cases/s)",
        imported as f64 / store_secs
    );

    // --- concurrent durable creation -----------------------------------------------------
    for (tasks, n) in [(1usize, 500usize), (64, 20_000), (512, 20_000)] {
        let started = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let (store, w, grids) = (store.clone(), w.clone(), grids.clone());
            handles.push(tokio::spawn(async move {
                for i in (t..n).step_by(tasks) {
                    let now = Utc::now();
                    let decision = w.report(i, &grids[i % grids.len()], now);
                    store
                        .create_case(CreateCase {
                            decision,
                            number_day: w.cal.local_date(now),
                            idempotency: None,
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
        println!(
            "create: {n} cases from {tasks} tasks in {secs:.2} s ({:.0} cases/s)",
            n as f64 / secs
        );
    }

    // --- lists ----------------------------------------------------------------------------
    let grid = grids[17].clone();
    let vis = |o: &Org| {
        Some(Visibility {
            path: o.path.clone(),
            username: "nobody".into(),
        })
    };
    let open = vec![
        Status::Reported,
        Status::Accepted,
        Status::Dispatched,
        Status::InProgress,
        Status::Replied,
    ];
    let lists: Vec<(&str, CaseFilter)> = vec![
        (
            "city, newest",
            CaseFilter {
                visible_to: vis(&orgs[0]),
                ..Default::default()
            },
        ),
        (
            "street, newest",
            CaseFilter {
                visible_to: vis(&street),
                ..Default::default()
            },
        ),
        (
            "grid, newest",
            CaseFilter {
                visible_to: vis(&grid),
                ..Default::default()
            },
        ),
        (
            "street, open, by deadline",
            CaseFilter {
                visible_to: vis(&street),
                statuses: open.clone(),
                sort: CaseSort::Deadline,
                ..Default::default()
            },
        ),
        (
            "grid, open, by deadline",
            CaseFilter {
                visible_to: vis(&grid),
                statuses: open.clone(),
                sort: CaseSort::Deadline,
                ..Default::default()
            },
        ),
        (
            "city, reported",
            CaseFilter {
                visible_to: vis(&orgs[0]),
                statuses: vec![Status::Reported],
                ..Default::default()
            },
        ),
        (
            "street, by update",
            CaseFilter {
                visible_to: vis(&street),
                sort: CaseSort::Updated,
                ..Default::default()
            },
        ),
        (
            "street, q",
            CaseFilter {
                visible_to: vis(&street),
                q: Some("事件 4242 ".into()),
                ..Default::default()
            },
        ),
        (
            "phone",
            CaseFilter {
                reporter_phone: Some("13800004242".into()),
                ..Default::default()
            },
        ),
    ];
    for (name, f) in lists {
        let mut cursor = None;
        let mut times = Vec::new();
        let mut items = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let page = store
                .list_cases(CaseFilter {
                    limit: 50,
                    cursor: cursor.clone(),
                    ..f.clone()
                })
                .await
                .unwrap();
            times.push(ms(started.elapsed()));
            items += page.items.len();
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        let shown: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
        println!(
            "list {name:<28} {items:>4} items, page ms: {}",
            shown.join(" ")
        );
    }

    let started = Instant::now();
    let due = store
        .due_cases(Utc::now() + Duration::days(30), 500)
        .await
        .unwrap();
    println!("due: {} ids in {:.1} ms", due.len(), ms(started.elapsed()));

    let codes: Vec<String> = orgs.iter().take(20).map(|o| o.code.clone()).collect();
    let started = Instant::now();
    let today = w.cal.local_date(Utc::now());
    store
        .counters(&codes, today - chrono::Days::new(365), today)
        .await
        .unwrap();
    println!(
        "counters: 20 orgs, one year in {:.1} ms",
        ms(started.elapsed())
    );

    let started = Instant::now();
    let report = store.verify_chain().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "verify: {} events in {secs:.1} s ({:.0}/s), break: {:?}",
        report.checked,
        report.checked as f64 / secs,
        report.first_break
    );
    drop(store);
    let size = std::fs::metadata(dir.join("gridloop.db")).map_or(0, |m| m.len());
    println!("database: {:.0} MB", size as f64 / 1e6);
    let _ = std::fs::remove_dir_all(&dir);
}
