//! `gridloop bench load`: drives a gridloop server over HTTP on loopback with the requests
//! that matter at province scale, one operation at a time at each concurrency, each phase
//! bounded in time and in count, and prints throughput and latency percentiles per
//! operation, then the server's peak RSS.
//!
//! With `--data DIR` the driver starts `gridloop serve` on that folder itself (port 0) and
//! reads the child's `VmHWM`; with `--url` it drives a running server (`--pid` for its RSS).

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{Datelike, Duration as Days, NaiveDate, Utc};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::province::{self, PASSWORD, ROOT};

#[derive(Args)]
pub struct LoadArgs {
    /// A running server, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long, conflicts_with = "data")]
    url: Option<String>,
    /// A seeded data folder: the driver serves it itself and measures the server's RSS.
    #[arg(long, env = "GRIDLOOP_DATA")]
    data: Option<PathBuf>,
    /// The server's process id, for its peak RSS when driving `--url`.
    #[arg(long)]
    pid: Option<u32>,
    /// Concurrent clients, one phase each per operation.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    clients: Vec<usize>,
    /// Operations to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "intake,queue,detail,stats,overdue,track"
    )]
    ops: Vec<Op>,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// At most this many requests per phase.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Streets of the seeded province (`bench seed --streets`); by default asked of the
    /// server (the province's children).
    #[arg(long)]
    streets: Option<usize>,
    /// Years of seeded history, for the periods of stats requests.
    #[arg(long, default_value_t = 3)]
    years: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Op {
    /// POST /api/v1/cases with an Idempotency-Key, routed by location.
    Intake,
    /// A street dispatcher's queue: reported and accepted cases by deadline, one page.
    Queue,
    /// GET /api/v1/cases/{id} of a random case, with its timeline.
    Detail,
    /// GET /api/v1/stats of a random org and period.
    Stats,
    /// A street dispatcher's overdue cases by deadline, one page.
    Overdue,
    /// A resident tracking a case by number and phone.
    Track,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Intake => "intake",
            Op::Queue => "queue",
            Op::Detail => "detail",
            Op::Stats => "stats",
            Op::Overdue => "overdue",
            Op::Track => "track",
        }
    }
}

/// Street dispatchers logged in for the queue and overdue lists.
const STREET_SESSIONS: usize = 16;

struct Target {
    base: String,
    http: reqwest::Client,
    /// The province's dispatcher (sees everything).
    root: String,
    /// `(street code, token)` of some street dispatchers.
    streets: Vec<(String, String)>,
    max_id: i64,
    /// `(number, last 4 digits)` of cases created by this run, for tracking.
    tracked: std::sync::Mutex<Vec<(String, String)>>,
    streets_total: usize,
    first_day: NaiveDate,
    today: NaiveDate,
    serial: AtomicU64,
    run_id: u64,
}

pub async fn run(args: LoadArgs) -> Result<ExitCode, String> {
    let mut child = None;
    let (base, pid) = match (&args.url, &args.data) {
        (Some(url), _) => (loopback(url)?, args.pid),
        (None, Some(data)) => {
            let (c, addr) = spawn_server(data).await?;
            let pid = c.id();
            child = Some(c);
            (format!("http://{addr}"), pid)
        }
        (None, None) => return Err("give --url of a running server or --data to serve".into()),
    };
    let result = drive(&args, &base, pid).await;
    let rss = pid.and_then(|p| status_kb(p, "VmHWM:"));
    let now_rss = pid.and_then(|p| status_kb(p, "VmRSS:"));
    if let Some(mut c) = child {
        let _ = c.kill().await;
    }
    let failed = result?;
    match rss {
        Some(kb) => println!(
            "server peak RSS (VmHWM): {:.0} MB; at the end (VmRSS): {:.0} MB",
            kb as f64 / 1024.0,
            now_rss.unwrap_or(0) as f64 / 1024.0
        ),
        None => println!("server peak RSS: unknown (give --pid or --data)"),
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Only loopback targets: the driver is a benchmark, not a load generator for others' hosts.
fn loopback(url: &str) -> Result<String, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let host = u.host_str().unwrap_or("");
    let ok = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !ok || u.scheme() != "http" {
        return Err(format!("{url}: only http:// on loopback is allowed"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

async fn spawn_server(data: &std::path::Path) -> Result<(tokio::process::Child, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout from the server")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let wait = tokio::time::timeout(Duration::from_secs(300), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("gridloop is serving at http://") {
                return Some(rest.trim_end_matches('/').to_string());
            }
        }
        None
    })
    .await;
    match wait {
        Ok(Some(addr)) => {
            // Keep draining the child's output so that it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok((child, addr))
        }
        _ => {
            let _ = child.kill().await;
            Err("the server did not start".into())
        }
    }
}

/// A memory figure of a process (`VmHWM:` the peak resident set, `VmRSS:` the current one),
/// from /proc (Linux).
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time a process has used so far (user and system), from /proc (Linux). The kernel
/// reports it in USER_HZ ticks, which are hundredths of a second on every architecture
/// Linux runs on.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which may hold spaces, in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The one-minute load average: how busy the machine was (the driver shares it).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

async fn login(http: &reqwest::Client, base: &str, username: &str) -> Result<String, String> {
    let r = http
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("login as {username}: {}", r.status()));
    }
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("login as {username}: no token"))
}

/// The province's streets, from its stats (one row per child).
async fn count_streets(http: &reqwest::Client, base: &str, token: &str) -> Result<usize, String> {
    let r = http
        .get(format!("{base}/api/v1/stats?org={ROOT}"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let v: Value = ok(r).await?.json().await.map_err(|e| e.to_string())?;
    Ok(v["by_child"].as_array().map_or(0, Vec::len))
}

async fn drive(args: &LoadArgs, base: &str, pid: Option<u32>) -> Result<bool, String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let root = login(&http, base, "dispatcher").await?;
    let mut rng = StdRng::from_os_rng();
    let mut streets = Vec::new();
    let street_count = match args.streets {
        Some(n) => n,
        None => count_streets(&http, base, &root).await?,
    };
    if street_count == 0 {
        return Err("the province has no streets: seed it with `gridloop bench seed`".into());
    }
    for _ in 0..STREET_SESSIONS.min(street_count) {
        let n = rng.random_range(1..=street_count);
        let token = login(&http, base, &format!("s{n:04}-dispatcher")).await?;
        streets.push((format!("33{n:04}"), token));
    }
    let newest: Value = http
        .get(format!("{base}/api/v1/cases?limit=1"))
        .bearer_auth(&root)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let max_id = newest["items"][0]["id"].as_i64().unwrap_or(1);
    let today = Utc::now().date_naive();
    let t = Arc::new(Target {
        base: base.to_string(),
        http,
        root,
        streets,
        max_id,
        tracked: std::sync::Mutex::new(Vec::new()),
        streets_total: street_count,
        first_day: today - Days::days(i64::from(args.years) * 365 - 1),
        today,
        serial: AtomicU64::new(0),
        run_id: rng.random(),
    });
    // Cases to track exist before the tracking phase, whatever ran before it.
    for _ in 0..20 {
        let mut rng = StdRng::from_os_rng();
        request(&t, Op::Intake, &mut rng).await?;
    }
    // Server CPU per request is the figure that holds on a shared machine, where latencies
    // and throughput depend on what else runs; the load average says how shared it was.
    println!(
        "{:<8} {:>7} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>11} {:>5}",
        "op",
        "clients",
        "requests",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "cpu ms/req",
        "load"
    );
    let mut failed = false;
    for &clients in &args.clients {
        for &op in &args.ops {
            let cpu_before = pid.and_then(cpu_secs);
            let r = phase(t.clone(), op, clients, args.seconds, args.requests).await;
            let cpu = match (cpu_before, pid.and_then(cpu_secs)) {
                (Some(a), Some(b)) if !r.latencies.is_empty() => {
                    format!("{:.3}", (b - a) * 1000.0 / r.latencies.len() as f64)
                }
                _ => "-".into(),
            };
            println!(
                "{:<8} {:>7} {:>9} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>11} {:>5}",
                op.name(),
                clients,
                r.latencies.len(),
                r.latencies.len() as f64 / r.secs.max(1e-9),
                r.pct(0.50),
                r.pct(0.90),
                r.pct(0.99),
                r.pct(1.0),
                r.errors,
                cpu,
                load_average()
            );
            if let Some(e) = &r.first_error {
                eprintln!("  first error of {}: {e}", op.name());
                failed = true;
            }
        }
    }
    Ok(failed)
}

struct PhaseResult {
    /// Microseconds, sorted.
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
}

impl PhaseResult {
    fn pct(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1] as f64 / 1000.0
    }
}

async fn phase(t: Arc<Target>, op: Op, clients: usize, seconds: f64, max: u64) -> PhaseResult {
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let budget = Arc::new(AtomicU64::new(max));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (t, budget) = (t.clone(), budget.clone());
        set.spawn(async move {
            let mut rng = StdRng::from_os_rng();
            let mut lat = Vec::new();
            let (mut errors, mut first_error) = (0u64, None);
            while Instant::now() < until
                && budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                    .is_ok()
            {
                let t0 = Instant::now();
                match request(&t, op, &mut rng).await {
                    Ok(()) => lat.push(t0.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first_error)
        });
    }
    let mut r = PhaseResult {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
        secs: 0.0,
    };
    while let Some(Ok((lat, errors, first))) = set.join_next().await {
        r.latencies.extend(lat);
        r.errors += errors;
        if r.first_error.is_none() {
            r.first_error = first;
        }
    }
    r.secs = started.elapsed().as_secs_f64();
    r.latencies.sort_unstable();
    r
}

const REPORTS: &[(&str, &str, &str)] = &[
    (
        "小区门口路灯不亮",
        "市民来电反映：小区东门口有三盏路灯连续几晚不亮，晚上路过很黑，老人孩子出行不安全，希望尽快修复。",
        "public_facilities",
    ),
    (
        "沿街店铺占道经营",
        "市民来电反映：沿街几家水果店把货架摆到人行道上，行人只能走机动车道，早晚高峰很危险。",
        "street_order",
    ),
    (
        "楼道堆放杂物有消防隐患",
        "市民来电反映：3幢2单元楼道里堆满纸箱和旧家具，还有电动车在楼道充电，存在消防隐患。",
        "safety_hazard",
    ),
    (
        "夜间施工噪音扰民",
        "市民来电反映：附近工地晚上十一点以后还在施工，噪音很大，影响周边居民休息，希望管一管。",
        "construction",
    ),
];

/// One request of an operation; an error is any failure or non-2xx answer.
async fn request(t: &Target, op: Op, rng: &mut StdRng) -> Result<(), String> {
    let base = &t.base;
    let street = || &t.streets[rng_index(t.streets.len())];
    let req = match op {
        Op::Intake => {
            let (title, description, category) = *crate::demo::pick(rng, REPORTS);
            let (lat, lng) = province::random_location(t.streets_total, rng);
            let phone = format!("139{:08}", rng.random_range(0..100_000_000u32));
            let key = format!(
                "bench-{:x}-{}",
                t.run_id,
                t.serial.fetch_add(1, Ordering::Relaxed)
            );
            let body = json!({
                "channel": "hotline",
                "title": title,
                "description": description,
                "category": category,
                "location": {"lat": lat, "lng": lng},
                "reporter": {"name": "李女士", "phone": phone},
            });
            let r = t
                .http
                .post(format!("{base}/api/v1/cases"))
                .bearer_auth(&t.root)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let r = ok(r).await?;
            let v: Value = r.json().await.map_err(|e| e.to_string())?;
            if let Some(n) = v["number"].as_str() {
                let mut tracked = t.tracked.lock().unwrap_or_else(|p| p.into_inner());
                if tracked.len() < 10_000 {
                    tracked.push((n.to_string(), phone[phone.len() - 4..].to_string()));
                }
            }
            return Ok(());
        }
        Op::Queue => {
            let (code, token) = street();
            t.http
                .get(format!(
                    "{base}/api/v1/cases?status=reported,accepted&org={code}&sort=deadline&limit=50"
                ))
                .bearer_auth(token)
        }
        Op::Overdue => {
            let (code, token) = street();
            t.http
                .get(format!(
                    "{base}/api/v1/cases?overdue=true&area={code}&sort=deadline&limit=50"
                ))
                .bearer_auth(token)
        }
        Op::Detail => {
            let id = rng.random_range(1..=t.max_id);
            t.http
                .get(format!("{base}/api/v1/cases/{id}"))
                .bearer_auth(&t.root)
        }
        Op::Stats => {
            let org = random_org(rng, t.streets_total);
            let (from, to) = random_period(rng, t.first_day, t.today);
            t.http
                .get(format!("{base}/api/v1/stats?org={org}&from={from}&to={to}"))
                .bearer_auth(&t.root)
        }
        Op::Track => {
            let (number, last4) = {
                let tracked = t.tracked.lock().unwrap_or_else(|p| p.into_inner());
                tracked[rng.random_range(0..tracked.len())].clone()
            };
            t.http.get(format!(
                "{base}/api/v1/public/reports/{number}?phone_last4={last4}"
            ))
        }
    };
    let r = req.send().await.map_err(|e| e.to_string())?;
    // The body is read whole: the latency is the answer's, not its headers'.
    ok(r).await?.bytes().await.map_err(|e| e.to_string())?;
    Ok(())
}

fn rng_index(n: usize) -> usize {
    rand::rng().random_range(0..n)
}

async fn ok(r: reqwest::Response) -> Result<reqwest::Response, String> {
    if r.status().is_success() {
        return Ok(r);
    }
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    Err(format!(
        "{status}: {}",
        body.chars().take(300).collect::<String>()
    ))
}

/// The province (rarely), a street, a community or a grid.
fn random_org(rng: &mut StdRng, streets: usize) -> String {
    let street = format!("33{:04}", rng.random_range(1..=streets));
    let community = format!("{street}{:03}", rng.random_range(1..=15));
    match rng.random_range(0..20) {
        0 => ROOT.to_string(),
        1..=7 => street,
        8..=14 => community,
        _ => format!("{community}{:02}", rng.random_range(1..=5)),
    }
}

/// A month, a quarter or a year within the history.
fn random_period(rng: &mut StdRng, first: NaiveDate, today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let span = (today - first).num_days().max(1);
    let len = match rng.random_range(0..3) {
        0 => 30,
        1 => 91,
        _ => 365,
    }
    .min(span);
    let from = first + Days::days(rng.random_range(0..=span - len));
    let to = (from + Days::days(len - 1)).min(today);
    // Calendar months when the period is a month, as the dashboard asks.
    if len == 30 {
        let start = from.with_day(1).unwrap_or(from);
        return (start, (start + Days::days(30)).min(today));
    }
    (from, to)
}
