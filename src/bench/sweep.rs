//! `gridloop bench sweep`: times overdue sweep passes over a seeded store, the way the
//! server runs them (`gridloop_http::sweep::pass`), one simulated minute apart.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use gridloop_domain::policy::Policy;
use gridloop_http::{AppState, Clock};

#[derive(Args)]
pub struct SweepArgs {
    #[arg(long, env = "GRIDLOOP_DATA")]
    data: PathBuf,
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// The first pass's instant (RFC 3339); default now. Later passes follow a minute apart.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
    /// How many passes to time.
    #[arg(long, default_value_t = 10)]
    passes: u32,
}

pub async fn run(args: SweepArgs) -> Result<ExitCode, String> {
    let store = crate::open_store(&args.data, args.database_url.as_deref()).await?;
    let start = args.now.unwrap_or_else(Utc::now);
    let mut state = AppState::load(store, Clock::starting_at(start), Policy::default()).await?;
    let mut times = Vec::new();
    for k in 0..args.passes {
        state.clock = Clock::starting_at(start + Duration::minutes(i64::from(k)));
        let t = Instant::now();
        let changed = gridloop_http::sweep::pass(&state)
            .await
            .map_err(|e| e.to_string())?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "sweep pass {}: {changed} cases changed in {ms:.1} ms",
            k + 1
        );
        // The first pass catches up on everything that fell due since the seed's present.
        if k > 0 {
            times.push(ms);
        }
    }
    if !times.is_empty() {
        times.sort_by(f64::total_cmp);
        println!(
            "sweep: median {:.1} ms, max {:.1} ms per pass (after the first)",
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    Ok(ExitCode::SUCCESS)
}
