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
        for id in due {
            let cal = state.calendar();
            let policy = state.policy.clone();
            let r = state
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
                .await;
            match r {
                Ok(_) => changed += 1,
                Err(StoreError::Domain(_)) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        if batch < BATCH as usize {
            break;
        }
    }
    Ok(changed)
}
