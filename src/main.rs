//! The `gridloop` binary: commands of CONTRACT.md over the library crates.

mod bench;
mod demo;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use gridloop_domain::org::{Level, Org};
use gridloop_domain::policy::Policy;
use gridloop_domain::role::Role;
use gridloop_http::{AppState, Clock, auth};
use gridloop_store::{NewUser, Store};
use gridloop_store_postgres::PgStore;
use gridloop_store_sqlite::SqliteStore;

#[derive(Parser)]
#[command(
    name = "gridloop",
    version,
    about = "基层治理事件闭环 — every request gets an answer (件件有回应)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create (or reuse) a demo city and serve it.
    Demo(ServeArgs),
    /// Serve real data.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the org tree.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Check the tamper-evident event log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage API keys for Open311 clients and camera platforms.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Province-scale benchmarks: seed, load, sweep (docs/performance.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Create or update the database schema, then exit (servers also do this at start).
    Migrate {
        #[command(flatten)]
        data: DataArg,
    },
    /// Copy a whole deployment into an empty store, e.g. from the embedded store to
    /// PostgreSQL; the copy's event chain is verified afterwards. Stop the servers first.
    Copy {
        /// The source: `sqlite:DIR` (a data folder) or `postgres://…`.
        #[arg(long)]
        from: String,
        /// The target, likewise; it must be empty.
        #[arg(long)]
        to: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, env = "GRIDLOOP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data folder (default ./gridloop-data, or ./gridloop-demo for `demo`).
    #[arg(long, env = "GRIDLOOP_DATA")]
    data: Option<PathBuf>,
    /// postgres://… to use PostgreSQL instead of the embedded store.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Start the server's clock at this instant (RFC 3339), for drills and tests.
    #[arg(long, env = "GRIDLOOP_NOW")]
    now: Option<DateTime<Utc>>,
}

#[derive(Args)]
struct DataArg {
    #[arg(long, env = "GRIDLOOP_DATA", default_value = "./gridloop-data")]
    data: PathBuf,
    /// postgres://… to use PostgreSQL instead of the embedded store.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

impl DataArg {
    async fn open(&self) -> Res<Arc<dyn Store>> {
        open_store(&self.data, self.database_url.as_deref()).await
    }
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        username: String,
        /// admin, leader, dispatcher, handler, inspector or volunteer.
        #[arg(long)]
        role: String,
        /// The org code the user belongs to.
        #[arg(long)]
        org: String,
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Add one org (the first one is the root, usually a city).
    Add {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        /// city, street, community, grid, unit or department.
        #[arg(long)]
        level: String,
        #[arg(long)]
        parent: Option<String>,
    },
    /// Import orgs with boundaries from a GeoJSON FeatureCollection (properties: code, name,
    /// level, parent; geometry: Polygon, MultiPolygon or null; optional `crs` gcj02/bd09).
    /// All or nothing: every bad feature is reported with its index, and exit 1. A running
    /// server routes to new boundaries after a restart (or import through the API instead).
    Import {
        /// The GeoJSON file.
        file: PathBuf,
        #[command(flatten)]
        data: DataArg,
        /// Check the file and print what would change, without writing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Exit 0 when the event chain is intact, 1 when tampered (naming the first bad event).
    Verify {
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create a key and print it once.
    Add {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        name: String,
    },
}

/// glibc's malloc raises its mmap threshold each time a large buffer is freed, after which
/// buffers up to that size (request bodies, page reads, list responses) come from its arenas
/// and stay resident when freed: a server's RSS then drifts ~150 MB above what it uses.
/// A fixed threshold of 128 KiB keeps large buffers on mmap, returned to the system on free
/// (peak RSS under the province load 341–430 MB → 205–258 MB, docs/performance.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_returnable() {
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread runs.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_returnable() {}

/// The process's allocator: glibc's malloc (set as above), or mimalloc once a command that
/// allocates at a high rate asks for it ([`Allocator::use_mimalloc`]).
///
/// Seeding allocates and frees a few million small objects a second across its generator,
/// encoder and writer threads; glibc's malloc and free were about a third of its CPU, and
/// mimalloc takes 344 -> 214 µs of CPU per seeded case (1M cases). But mimalloc keeps what
/// is freed for reuse: a server under the province load peaked at 411 MB with it against
/// 227 MB with glibc. So the server stays on glibc, and only `bench seed` switches.
///
/// What was allocated before the switch is still glibc's: a block is freed (or grown) by
/// the allocator whose heap holds it, which mimalloc can tell of any address.
struct Allocator;

static MIMALLOC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Allocator {
    /// From now on new blocks come from mimalloc (for this process's life).
    fn use_mimalloc() {
        MIMALLOC.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    #[inline]
    fn mimalloc() -> bool {
        MIMALLOC.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `ptr` is a block of mimalloc's (never true before its first allocation).
    #[inline]
    fn is_mimallocs(ptr: *mut u8) -> bool {
        // SAFETY: looks `ptr` up in mimalloc's page map; any address may be asked.
        unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast()) }
    }
}

// SAFETY: each block goes back to the allocator that made it (see `Allocator`); both honour
// the layout's alignment.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if Allocator::mimalloc() {
            unsafe { libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        } else {
            unsafe { std::alloc::System.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if Allocator::mimalloc() {
            unsafe { libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        } else {
            unsafe { std::alloc::System.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if Allocator::mimalloc() && Allocator::is_mimallocs(ptr) {
            unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
        } else {
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if Allocator::mimalloc() && Allocator::is_mimallocs(ptr) {
            unsafe {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        } else {
            unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

fn main() -> ExitCode {
    keep_large_allocations_returnable();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Bench(bench::BenchCommand::Seed(_))) {
        Allocator::use_mimalloc();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

type Res<T> = Result<T, String>;

/// The store a deployment names: PostgreSQL for a `postgres://` URL, else SQLite in `data`.
async fn open_store(data: &Path, database_url: Option<&str>) -> Res<Arc<dyn Store>> {
    if let Some(url) = database_url {
        return open_url(url).await;
    }
    let store =
        SqliteStore::open(data).map_err(|e| format!("cannot open {}: {e}", data.display()))?;
    Ok(Arc::new(store))
}

/// A PostgreSQL store; its schema is migrated on connecting.
async fn open_url(url: &str) -> Res<Arc<dyn Store>> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "{}: the database URL must start with postgres:// or postgresql://",
            redact(url)
        ));
    }
    let store = PgStore::connect(url)
        .await
        .map_err(|e| format!("cannot open {}: {e}", redact(url)))?;
    Ok(Arc::new(store))
}

/// A database URL fit for messages: without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A store named on the command line of `copy`: `sqlite:DIR` or `postgres://…`.
async fn open_spec(spec: &str) -> Res<Arc<dyn Store>> {
    if spec.contains("://") {
        return open_url(spec).await;
    }
    match spec.strip_prefix("sqlite:") {
        Some(dir) if !dir.is_empty() => open_store(Path::new(dir), None).await,
        _ => Err(format!(
            "{spec}: name a store as sqlite:DIR (a data folder) or postgres://…"
        )),
    }
}

/// `gridloop copy`: every record from one store into an empty other, then the chain check.
async fn copy(from: &str, to: &str) -> Res<ExitCode> {
    let source = open_spec(from).await?;
    let target = open_spec(to).await?;
    let err = |e: gridloop_store::StoreError| e.to_string();
    if !target
        .export_records(None, 1)
        .await
        .map_err(err)?
        .items
        .is_empty()
    {
        return Err(format!("{to} is not empty; copy only into a new store"));
    }
    let started = std::time::Instant::now();
    let (mut cursor, mut copied) = (None, 0u64);
    loop {
        let page = source.export_records(cursor, 2000).await.map_err(err)?;
        copied += page.items.len() as u64;
        target.import_records(page.items).await.map_err(err)?;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        eprint!("\rcopied {copied} records");
    }
    eprintln!(
        "\rcopied {copied} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (before, after) = (
        source.verify_chain().await.map_err(err)?,
        target.verify_chain().await.map_err(err)?,
    );
    match (&after.first_break, after.checked == before.checked) {
        (None, true) => {
            println!(
                "ok: {copied} records copied; the chain of {} events verifies",
                after.checked
            );
            Ok(ExitCode::SUCCESS)
        }
        (Some(b), _) => {
            println!(
                "the copy's chain breaks at event {}: {}",
                b.event_id, b.reason
            );
            Ok(ExitCode::from(1))
        }
        (None, false) => {
            println!(
                "the copy holds {} events, the source {}",
                after.checked, before.checked
            );
            Ok(ExitCode::from(1))
        }
    }
}

async fn run(cli: Cli) -> Res<ExitCode> {
    match cli.command {
        Command::Demo(args) => {
            let data = args
                .data
                .clone()
                .unwrap_or_else(|| PathBuf::from("./gridloop-demo"));
            let store = open_store(&data, args.database_url.as_deref()).await?;
            let clock = args.now.map(Clock::starting_at).unwrap_or_default();
            seed_demo(store.clone(), clock).await?;
            serve(store, clock, args.listen, true).await
        }
        Command::Serve(args) => {
            let data = args
                .data
                .clone()
                .unwrap_or_else(|| PathBuf::from("./gridloop-data"));
            let store = open_store(&data, args.database_url.as_deref()).await?;
            let clock = args.now.map(Clock::starting_at).unwrap_or_default();
            serve(store, clock, args.listen, false).await
        }
        Command::User(UserCommand::Add {
            data,
            username,
            role,
            org,
            display_name,
        }) => {
            let role = Role::parse(&role).ok_or_else(|| {
                format!("unknown role {role}: one of admin leader dispatcher handler inspector volunteer")
            })?;
            gridloop_http::routes::admin::validate_username(&username)
                .map_err(|e| e.to_string())?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(|e| e.to_string())?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            gridloop_http::routes::admin::validate_password(&password)
                .map_err(|e| e.to_string())?;
            let store = data.open().await?;
            let user = store
                .create_user(NewUser {
                    display_name: display_name.unwrap_or_else(|| username.clone()),
                    username,
                    role,
                    org: org.clone(),
                    password_hash: auth::hash_password(&password),
                    created_at: Utc::now(),
                })
                .await
                .map_err(|e| match e {
                    gridloop_store::StoreError::NotFound => format!("unknown org {org}"),
                    other => other.to_string(),
                })?;
            println!(
                "created user {} ({}) at {}",
                user.username,
                user.role.as_str(),
                user.org
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Org(OrgCommand::Add {
            data,
            code,
            name,
            level,
            parent,
        }) => {
            let level = Level::parse(&level).ok_or_else(|| {
                format!("unknown level {level}: city street community grid unit department")
            })?;
            let store = data.open().await?;
            let parent_org = match &parent {
                Some(p) => Some(
                    store
                        .org(p)
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or(format!("unknown org {p}"))?,
                ),
                None => None,
            };
            let path =
                Org::child_path(parent_org.as_ref(), &code, level).map_err(|e| e.to_string())?;
            store
                .put_orgs(vec![Org {
                    code: code.clone(),
                    name,
                    level,
                    parent,
                    path,
                    boundary: None,
                }])
                .await
                .map_err(|e| e.to_string())?;
            println!("added org {code}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Org(OrgCommand::Import {
            file,
            data,
            dry_run,
        }) => import_orgs(&file, &data, dry_run).await,
        Command::Audit(AuditCommand::Verify { data }) => {
            if data.database_url.is_none() && !data.data.join("gridloop.db").exists() {
                return Err(format!("no gridloop data in {}", data.data.display()));
            }
            let store = data.open().await?;
            let report = store.verify_chain().await.map_err(|e| e.to_string())?;
            match report.first_break {
                None => {
                    println!("ok: {} events, the chain is intact", report.checked);
                    Ok(ExitCode::SUCCESS)
                }
                Some(b) => {
                    println!(
                        "TAMPERED: event {} (case {}): {}; {} events before it are intact",
                        b.event_id, b.case_id, b.reason, report.checked
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Apikey(ApikeyCommand::Add { data, name }) => {
            let store = data.open().await?;
            let (key, hash) = auth::new_token();
            store
                .create_api_key(&name, &hash, Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            println!("{key}");
            eprintln!("API key {name} created; it is shown only this once.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { data } => {
            data.open().await?;
            println!("the schema is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Copy { from, to } => copy(&from, &to).await,
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Openapi => {
            let doc = gridloop_http::routes::openapi();
            println!("{}", doc.to_pretty_json().map_err(|e| e.to_string())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `gridloop org import`: exit 0 imported, 1 when the file has problems (nothing written).
async fn import_orgs(file: &Path, data: &DataArg, dry_run: bool) -> Res<ExitCode> {
    use gridloop_http::routes::org_import::{ImportError, import_orgs};
    let text = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let doc: serde_json::Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: not JSON: {e}; nothing was imported", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    drop(text);
    let store = data.open().await?;
    match import_orgs(store.as_ref(), doc, None, dry_run).await {
        Ok(s) => {
            println!(
                "{} {} orgs from {} features: {} created, {} updated, {} with a boundary",
                if dry_run { "would import" } else { "imported" },
                s.created + s.updated,
                s.features,
                s.created,
                s.updated,
                s.with_boundary
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::Problems(problems)) => {
            for p in &problems {
                eprintln!("{}: {p}", file.display());
            }
            eprintln!(
                "{} problem{} in {}; nothing was imported",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                file.display()
            );
            Ok(ExitCode::from(1))
        }
        Err(ImportError::Store(e)) => Err(e.to_string()),
    }
}

async fn seed_demo(store: Arc<dyn Store>, clock: Clock) -> Res<()> {
    let started = std::time::Instant::now();
    let state = AppState::load(store.clone(), clock, Policy::default())
        .await
        .ok();
    let cal = state
        .as_ref()
        .map(|s| (*s.calendar()).clone())
        .unwrap_or_else(|| {
            let mut c = gridloop_domain::calendar::Calendar::default();
            for text in gridloop_http::SHIPPED_CALENDARS {
                if let Ok(y) = gridloop_domain::calendar::CalendarYear::parse(text) {
                    c.load_year(&y);
                }
            }
            c
        });
    let hash = auth::hash_password("demo");
    let summary = demo::seed(store.as_ref(), &cal, &Policy::default(), clock.now(), &hash)
        .await
        .map_err(|e| format!("seeding the demo city failed: {e}"))?;
    if summary.cases > 0 {
        eprintln!(
            "seeded the demo city in {:.1} s: {} orgs ({} grids, {} units, {} departments), {} tower groups, {} users, {} cases",
            started.elapsed().as_secs_f64(),
            summary.orgs,
            summary.grids,
            summary.units,
            summary.departments,
            summary.tower_groups,
            summary.users,
            summary.cases
        );
    }
    // The demo's Open311 key is the literal `demo` (CONTRACT.md).
    let _ = store
        .create_api_key("demo", &auth::token_hash("demo"), clock.now())
        .await;
    Ok(())
}

async fn serve(
    store: Arc<dyn Store>,
    clock: Clock,
    listen: SocketAddr,
    demo: bool,
) -> Res<ExitCode> {
    let state = AppState::load(store, clock, Policy::default()).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("gridloop is serving at http://{addr}/");
    if demo {
        println!("demo logins (password `demo`):");
        for (user, role, org, name) in demo::DEMO_USERS {
            println!("  {user:<12} {role:<10} {org:<16} {name}");
        }
        println!("Open311 API key: demo");
    }
    gridloop_http::serve(state, listener)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
