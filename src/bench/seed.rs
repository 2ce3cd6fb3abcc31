//! `gridloop bench seed`: a province and N cases over years, played through the domain by
//! the demo's simulation and written through the store's bulk path (`Store::import_cases`),
//! so that the database holds what the live server would have written: rows, the hash
//! chain, the rollups.
//!
//! Days are generated in parallel on worker threads (one per core) while the store's writer
//! writes the previous days, in day order, so that ids follow time as they do in life.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use clap::Args;
use gridloop_domain::calendar::{Calendar, CalendarYear};
use gridloop_domain::case::{Status, format_number};
use gridloop_domain::policy::Policy;
use gridloop_store::{ImportCase, NewUser, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::province::{self, PASSWORD, Province, ROOT, ROOT_USERS};
use crate::demo;

#[derive(Args)]
pub struct SeedArgs {
    /// How many cases.
    #[arg(long)]
    cases: u64,
    /// The data folder (created; must not hold a province yet).
    #[arg(long, env = "GRIDLOOP_DATA")]
    data: PathBuf,
    /// postgres://… to seed PostgreSQL instead of the embedded store.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Also write 450,000 micro-grids with boundaries (units under the grids).
    #[arg(long)]
    micro_grids: bool,
    /// Streets in the province (85 grids each): 1,000 make Zhejiang's 85,000 grids.
    #[arg(long, default_value_t = 1000)]
    streets: usize,
    /// Years of history before now.
    #[arg(long, default_value_t = 3)]
    years: u32,
    /// Share of the cases of the last 180 days (but the last week's) left open where they
    /// stand, on top of the recent backlog: a large open set for the overdue sweep.
    #[arg(long, default_value_t = 0.0)]
    open_share: f64,
    /// The present of the history (RFC 3339); default now.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
    /// Random seed: the same seed and arguments give the same province and cases.
    #[arg(long, default_value_t = 20_220_000)]
    seed: u64,
    /// Generator threads (default: the cores but one, which the store's writer keeps busy).
    #[arg(long)]
    threads: Option<usize>,
    /// Cases per `import_cases` call (one write job each).
    #[arg(long, default_value_t = IMPORT_BATCH)]
    batch: usize,
    /// Keep every index while importing, as a live server writes (for comparison); by
    /// default the store builds the indexes it can once at the end.
    #[arg(long)]
    keep_indexes: bool,
}

/// Cases per `import_cases` call by default: one write job (transaction) each. Pages that
/// every case touches (rollups, the chain head, index interiors) are written to the WAL
/// once a transaction: 16,000 take ~20% less of the writer's CPU than 4,000 (32,000 no
/// less than 16,000), for ~0.6 GB more memory (three batches are in flight).
const IMPORT_BATCH: usize = 16_000;
/// Generated days waiting to be put in order, per generator thread.
const QUEUE_PER_THREAD: usize = 2;
/// Full batches waiting for the importer, beside the one it is writing.
const BATCHES_QUEUED: usize = 1;
/// Users created concurrently, so that the store's group commit takes many at once.
const USER_BATCH: usize = 512;

pub async fn run(args: SeedArgs) -> Result<std::process::ExitCode, String> {
    let started = Instant::now();
    if !(0.0..=1.0).contains(&args.open_share) {
        return Err("--open-share must be between 0 and 1".into());
    }
    if args.streets == 0 || args.years == 0 || args.batch == 0 {
        return Err("--streets, --years and --batch must be at least 1".into());
    }
    let store = crate::open_store(&args.data, args.database_url.as_deref()).await?;
    if store.org(ROOT).await.map_err(|e| e.to_string())?.is_some() {
        return Err(format!(
            "{} already holds a province: seed into an empty data folder",
            args.data.display()
        ));
    }
    let now = args.now.unwrap_or_else(Utc::now);
    let cal = Arc::new(calendar(store.as_ref()).await?);
    let policy = Arc::new(Policy::default());

    let mut province = province::build(args.streets, args.seed).map_err(|e| e.to_string())?;
    let orgs = write_orgs(store.as_ref(), &mut province, args.micro_grids).await?;
    let users = write_users(store.clone(), &province, now).await?;
    eprintln!(
        "bench seed: {orgs} orgs ({} grids{}), {users} users (password {PASSWORD}) in {:.1} s",
        province.grids(),
        if args.micro_grids {
            ", with micro-grids"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );

    let cases_started = Instant::now();
    let days = day_counts(&cal, now, args.years, args.cases);
    // The store is empty of cases (checked above): it may build its indexes once at the end.
    if !args.keep_indexes {
        store.begin_bulk_import().await.map_err(|e| e.to_string())?;
    }
    let written = write_cases(
        store.clone(),
        Arc::new(province),
        cal,
        policy,
        now,
        &args,
        days,
    )
    .await?;
    let indexing = Instant::now();
    store.end_bulk_import().await.map_err(|e| e.to_string())?;
    eprintln!(
        "bench seed: indexes built in {:.1} s",
        indexing.elapsed().as_secs_f64()
    );
    let secs = cases_started.elapsed().as_secs_f64();
    // Closing the store finishes its writes and checkpoints the WAL into the file.
    drop(store);
    let bytes = db_bytes(&args.data);
    println!(
        "seeded {} cases ({} open) in {:.1} s: {:.0} cases/s; total {:.1} s",
        written.cases,
        written.open,
        secs,
        written.cases as f64 / secs.max(1e-9),
        started.elapsed().as_secs_f64()
    );
    if let Some(bytes) = bytes {
        println!(
            "database {:.1} MB: {:.0} bytes per case",
            bytes as f64 / 1e6,
            bytes as f64 / written.cases.max(1) as f64
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The calendars the server would use (stored ones, else the shipped years).
async fn calendar(store: &dyn Store) -> Result<Calendar, String> {
    let mut years = store.calendar_years().await.map_err(|e| e.to_string())?;
    if years.is_empty() {
        for text in gridloop_http::SHIPPED_CALENDARS {
            let y = CalendarYear::parse(text).map_err(|e| e.to_string())?;
            store
                .put_calendar_year(&y)
                .await
                .map_err(|e| e.to_string())?;
            years.push(y);
        }
    }
    let mut cal = Calendar::default();
    for y in &years {
        cal.load_year(y);
    }
    Ok(cal)
}

/// Writes the tree, parents first; boundaries are dropped from memory once written.
async fn write_orgs(store: &dyn Store, p: &mut Province, micro: bool) -> Result<usize, String> {
    let e = |e: gridloop_store::StoreError| e.to_string();
    store.put_orgs(vec![p.root.clone()]).await.map_err(e)?;
    store.put_setting("intake_org", ROOT).await.map_err(e)?;
    let mut n = 1;
    for chunk in p.streets.chunks_mut(20) {
        let mut orgs = Vec::new();
        for w in chunk.iter_mut() {
            orgs.append(&mut w.orgs);
            if micro {
                orgs.extend(province::micro_grids(w).map_err(|e| e.to_string())?);
            }
            for c in &mut w.communities {
                for g in &mut c.grids {
                    g.org.boundary = None;
                }
            }
        }
        n += orgs.len();
        store.put_orgs(orgs).await.map_err(e)?;
    }
    Ok(n)
}

/// Root users and every street's staff, all with [`PASSWORD`] (hashed once).
async fn write_users(
    store: Arc<dyn Store>,
    p: &Province,
    now: DateTime<Utc>,
) -> Result<usize, String> {
    let hash = gridloop_http::auth::hash_password(PASSWORD);
    let created_at = now - Duration::days(365 * 4);
    let mut all: Vec<NewUser> = ROOT_USERS
        .iter()
        .map(|(name, role)| NewUser {
            username: (*name).into(),
            display_name: (*name).into(),
            role: *role,
            org: ROOT.into(),
            password_hash: hash.clone(),
            created_at,
        })
        .collect();
    all.extend(p.users().map(|u| NewUser {
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role: u.role,
        org: u.org.clone(),
        password_hash: hash.clone(),
        created_at,
    }));
    let n = all.len();
    let mut rest = all.into_iter();
    loop {
        let mut set = tokio::task::JoinSet::new();
        for u in rest.by_ref().take(USER_BATCH) {
            let store = store.clone();
            set.spawn(async move { store.create_user(u).await });
        }
        if set.is_empty() {
            break;
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        }
    }
    Ok(n)
}

/// How many cases each local day gets, oldest day first: weekends and holidays half as
/// many as working days, summing exactly to `total`.
fn day_counts(cal: &Calendar, now: DateTime<Utc>, years: u32, total: u64) -> Vec<(NaiveDate, u64)> {
    let today = cal.local_date(now);
    let first = today - Duration::days(i64::from(years) * 365 - 1);
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= today).collect();
    let weight = |d: &NaiveDate| if cal.is_working_day(*d) { 1.0 } else { 0.55 };
    let sum: f64 = days.iter().map(weight).sum();
    let mut acc = 0.0;
    let mut given = 0u64;
    days.iter()
        .map(|d| {
            acc += weight(d);
            let upto = ((acc / sum) * total as f64).round() as u64;
            let n = upto.min(total) - given;
            given += n;
            (*d, n)
        })
        .collect()
}

struct Written {
    cases: u64,
    open: u64,
}

impl Written {
    fn add(&mut self, other: &Written) {
        self.cases += other.cases;
        self.open += other.open;
    }
}

/// What every generator thread shares.
struct Generator {
    province: Arc<Province>,
    cal: Arc<Calendar>,
    policy: Arc<Policy>,
    now: DateTime<Utc>,
    open_share: f64,
    seed: u64,
}

impl Generator {
    /// One day's cases, played and numbered.
    fn day(&self, day: NaiveDate, count: u64) -> Result<Vec<ImportCase>, String> {
        let Generator {
            province: p,
            cal,
            policy,
            now,
            open_share,
            seed,
        } = self;
        let (now, open_share, seed) = (*now, *open_share, *seed);
        let mut rng =
            StdRng::seed_from_u64(seed ^ (u64::from(day.num_days_from_ce().unsigned_abs()) << 20));
        let mut plans = Vec::with_capacity(count as usize);
        for _ in 0..count {
            // The present day is only partly over: a few draws may fall after `now`.
            for _ in 0..50 {
                let street = rng.random_range(0..p.streets.len());
                let w = &p.streets[street];
                let community = demo::weighted(&mut rng, &w.communities, |c| c.spec.weight);
                let grid = rng.random_range(0..w.communities[community].grids.len());
                if let Some(plan) = demo::plan_on(community, grid, day, &mut rng, cal, now) {
                    plans.push((street, plan));
                    break;
                }
            }
        }
        plans.sort_by_key(|(_, p)| p.at);
        let mut out = Vec::with_capacity(plans.len());
        for (seq, (street, mut plan)) in plans.into_iter().enumerate() {
            let age = now - plan.at;
            plan.stall = demo::stall(age, &mut rng);
            if plan.stall.is_none()
                && open_share > 0.0
                && age >= Duration::days(7)
                && age < Duration::days(180)
                && rng.random_bool(open_share)
            {
                use Status::*;
                plan.stall = Some(*demo::pick(
                    &mut rng,
                    &[
                        Reported, Accepted, Dispatched, InProgress, InProgress, Replied,
                    ],
                ));
            }
            let mut sim = demo::simulate(&p.streets[street], &plan, &mut rng, cal, policy, now)
                .map_err(|e| format!("playing a case of {day} failed: {e}"))?;
            sim.case.number = format_number(day, seq as u64 + 1);
            out.push(ImportCase {
                case: sim.case,
                events: sim.events,
                measures: sim.measures,
            });
        }
        Ok(out)
    }
}

async fn write_cases(
    store: Arc<dyn Store>,
    province: Arc<Province>,
    cal: Arc<Calendar>,
    policy: Arc<Policy>,
    now: DateTime<Utc>,
    args: &SeedArgs,
    days: Vec<(NaiveDate, u64)>,
) -> Result<Written, String> {
    let threads = args
        .threads
        // Generating takes about a third of the writer's time: one core less leaves the
        // writer (and the import's encoding before it) a core of its own.
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() - 1))
        .max(1);
    let days = Arc::new(days);
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, Result<Vec<ImportCase>, String>)>(
        threads * QUEUE_PER_THREAD,
    );
    let generator = Arc::new(Generator {
        province,
        cal,
        policy,
        now,
        open_share: args.open_share,
        seed: args.seed,
    });
    let mut workers = Vec::new();
    for _ in 0..threads {
        let (days, next, tx, g) = (days.clone(), next.clone(), tx.clone(), generator.clone());
        workers.push(std::thread::spawn(move || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(day, count)) = days.get(i) else {
                    break;
                };
                let r = g.day(day, count);
                if tx.blocking_send((i, r)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    // The importer writes batches one after the other (in order: ids follow time) while
    // this task goes on collecting days, so that generating never waits for a write.
    let total: u64 = days.iter().map(|d| d.1).sum();
    let (batches, mut to_import) = tokio::sync::mpsc::channel::<Vec<ImportCase>>(BATCHES_QUEUED);
    // The embedded store runs its write jobs one at a time in the order they were queued, so
    // a second call may be made before the first is over: its job waits behind the first,
    // while the store encodes its cases. One call at a time left the encoder idle while the
    // writer finished each job (its rollups, its commit) and the writer idle while the encoder
    // began the next. A store with writers of its own (PostgreSQL) gets one call at a time.
    let overlap = args.database_url.is_none();
    let importer = tokio::spawn(async move {
        let mut written = Written { cases: 0, open: 0 };
        let started = Instant::now();
        let mut shown = Instant::now();
        // The call in flight, and its cases for the count once it is over.
        let mut in_flight: Option<(Importing<'_>, Written)> = None;
        while let Some(batch) = to_import.recv().await {
            let counted = Written {
                cases: batch.len() as u64,
                open: batch.iter().filter(|c| c.case.status.is_open()).count() as u64,
            };
            let mut next = store.import_cases(batch);
            // Polled once now, so that its write job is queued behind the one in flight:
            // ids follow time.
            let started_now = if overlap {
                std::future::poll_fn(|cx| std::task::Poll::Ready(next.as_mut().poll(cx))).await
            } else {
                std::task::Poll::Pending
            };
            if let Some((prev, n)) = in_flight.take() {
                prev.await.map_err(|e| e.to_string())?;
                written.add(&n);
            }
            match started_now {
                std::task::Poll::Ready(done) => {
                    done.map_err(|e| e.to_string())?;
                    written.add(&counted);
                }
                std::task::Poll::Pending if overlap => in_flight = Some((next, counted)),
                std::task::Poll::Pending => {
                    next.await.map_err(|e| e.to_string())?;
                    written.add(&counted);
                }
            }
            if shown.elapsed() >= StdDuration::from_secs(5) {
                shown = Instant::now();
                let secs = started.elapsed().as_secs_f64();
                let rate = written.cases as f64 / secs.max(1e-9);
                eprintln!(
                    "bench seed: {}/{} cases, {:.0} cases/s, {:.0} s to go",
                    written.cases,
                    total,
                    rate,
                    (total - written.cases.min(total)) as f64 / rate.max(1.0)
                );
            }
        }
        if let Some((prev, n)) = in_flight {
            prev.await.map_err(|e| e.to_string())?;
            written.add(&n);
        }
        Ok::<_, String>(written)
    });

    let mut ready: BTreeMap<usize, Vec<ImportCase>> = BTreeMap::new();
    let mut want = 0;
    let batch_size = args.batch;
    let mut pending: Vec<ImportCase> = Vec::with_capacity(batch_size);
    let mut collected = Ok(());
    'days: while let Some((i, r)) = rx.recv().await {
        match r {
            Ok(cases) => ready.insert(i, cases),
            Err(e) => {
                collected = Err(e);
                break;
            }
        };
        // Days are written in order: ids follow time.
        while let Some(cases) = ready.remove(&want) {
            want += 1;
            for case in cases {
                pending.push(case);
                if pending.len() == batch_size {
                    let batch = std::mem::replace(&mut pending, Vec::with_capacity(batch_size));
                    if batches.send(batch).await.is_err() {
                        // The importer failed: its error is reported below.
                        break 'days;
                    }
                }
            }
        }
    }
    if collected.is_ok() && !pending.is_empty() {
        let _ = batches.send(pending).await;
    }
    drop(batches);
    // Unblocks generators waiting on a full queue after a failure.
    drop(rx);
    let written = importer
        .await
        .map_err(|e| format!("the importer failed: {e}"))??;
    collected?;
    for w in workers {
        w.join().map_err(|_| "a generator thread panicked")?;
    }
    if want != days.len() {
        return Err(format!("only {want} of {} days were generated", days.len()));
    }
    Ok(written)
}

/// A call of `Store::import_cases` under way.
type Importing<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = gridloop_store::Result<()>> + Send + 'a>>;

/// The SQLite files' size (database and WAL); `None` for other stores.
fn db_bytes(data: &Path) -> Option<u64> {
    let db = data.join("gridloop.db");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
    let main = size(&db)?;
    Some(main + size(&data.join("gridloop.db-wal")).unwrap_or(0))
}
