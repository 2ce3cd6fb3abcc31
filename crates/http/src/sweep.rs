//! The overdue sweep: at start-up and every minute, take the cases whose `due_at` has come
//! (an indexed range, never a scan of the open set) and let the domain decide what is due.

use std::time::Duration;

use gridloop_domain::DomainError;
use gridloop_domain::case::Ctx;
use gridloop_store::StoreError;

use crate::AppState;

pub const INTERVAL: Duration = Duration::from_secs(60);
const BATCH: u32 = 500;

pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        match pass(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(cases = n, "overdue sweep"),
            Err(e) => tracing::warn!(error = %e, "overdue sweep failed; will retry"),
        }
    }
}

/// Updates in flight at once during a pass: the store commits the updates queued at one
/// moment together, so a pass costs a few commits instead of one per due case.
const CONCURRENCY: usize = 64;

/// One pass; returns how many cases changed. Does nothing while another process sweeps the
/// same database: each case's update is safe anyway (versions), but two sweepers would only
/// race each other for the same cases.
pub async fn pass(state: &AppState) -> Result<usize, StoreError> {
    let Some(_lock) = state.store.try_sweep_lock().await? else {
        return Ok(0);
    };
    let mut changed = 0;
    // Bounded so that a case the domain keeps declining cannot hold a pass forever.
    for _ in 0..1000 {
        let now = state.clock.now();
        let due = state.store.due_cases(now, BATCH).await?;
        let batch = due.len();
        let mut running = tokio::task::JoinSet::new();
        let mut first_error = None;
        for id in due {
            if running.len() >= CONCURRENCY {
                tally(running.join_next().await, &mut changed, &mut first_error);
            }
            running.spawn(sweep_case(state.clone(), id, now));
        }
        while let Some(done) = running.join_next().await {
            tally(Some(done), &mut changed, &mut first_error);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if batch < BATCH as usize {
            break;
        }
    }
    Ok(changed)
}

/// Lets the domain decide what is due on one case, inside the store's write transaction.
async fn sweep_case(
    state: AppState,
    id: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let cal = state.calendar();
    let policy = state.policy.clone();
    state
        .store
        .update_case(
            id,
            None,
            Box::new(move |case| {
                let ctx = Ctx {
                    now,
                    calendar: &cal,
                    policy: &policy,
                };
                gridloop_domain::sweep::sweep(case, &ctx)
                    .ok_or_else(|| DomainError::InvalidState("nothing due".into()))
            }),
        )
        .await
        .map(|_| ())
}

/// Counts a finished update; a case with nothing due (or gone) is no error, anything else
/// ends the pass once the updates in flight are done.
fn tally(
    done: Option<Result<Result<(), StoreError>, tokio::task::JoinError>>,
    changed: &mut usize,
    first_error: &mut Option<StoreError>,
) {
    match done {
        Some(Ok(Ok(()))) => *changed += 1,
        Some(Ok(Err(StoreError::Domain(_) | StoreError::NotFound))) | None => {}
        Some(Ok(Err(e))) => {
            first_error.get_or_insert(e);
        }
        Some(Err(e)) => {
            first_error.get_or_insert(StoreError::Backend(format!("a sweep task failed: {e}")));
        }
    }
}
