//! The writer task and its group commit.
//!
//! Appends to the hash chain are serialized across all processes on the `chain_head` row,
//! and a durable commit waits for the server to flush its log: one append per commit would
//! bound the write rate by the commit latency. So every creation and update of one
//! [`PgStore`](crate::PgStore) is a job for a single task, which takes every job queued at
//! that moment (up to [`MAX_BATCH`]) into one transaction on a connection of its own:
//!
//! 1. it locks the case rows of all the updates at once, in the order of their ids, then
//!    the chain head (the global lock order), and reads what the jobs need (the cases, their
//!    last event numbers, the next id, the day counters, the idempotency keys), all in one
//!    round trip ([`Batch::start`]);
//! 2. each job decides in memory from that (kept up to date by the jobs before it); one
//!    that fails there (version conflict, refused decision, idempotency mismatch) has sent
//!    nothing; one with writes sends them behind its own `SAVEPOINT`, in one round trip, so
//!    that if they fail, they are rolled back alone;
//! 3. the new chain head and day counters are written once (with the last job's writes),
//!    the batch commits once, and only then is every job answered.
//!
//! Under load, batches grow by themselves, and throughput with them; when idle, a job
//! commits alone without waiting for company. A batch that loses a race outside its jobs
//! (serialization failure, deadlock) runs again with the jobs that can run again: creations,
//! and updates whose decision has not run (a decision runs at most once, as before).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use deadpool_postgres::{Object, Pool, Transaction};
use gridloop_domain::case::Case;
use gridloop_store::{CaseUpdate, CreateCase, Created, Result, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::cases::{self, Batch, Pipeline};
use crate::db::{Error, R, RETRIES, is_retryable};

/// The most jobs in one transaction. Each job that writes is a subtransaction, and a
/// server process lists at most 64 of them in shared memory (`PGPROC_MAX_CACHED_SUBXIDS`):
/// more would make other sessions' snapshots consult `pg_subtrans` while the batch is open.
/// 64 jobs per commit is plenty next to one.
const MAX_BATCH: usize = 64;

/// A write waiting for its batch, and its answer once the batch is known.
enum Job {
    Create {
        req: Box<CreateCase>,
        reply: oneshot::Sender<Result<Created>>,
        result: Option<R<Created>>,
    },
    Update {
        id: i64,
        expected_version: Option<i64>,
        decide: Option<CaseUpdate>,
        reply: oneshot::Sender<Result<Case>>,
        result: Option<R<Case>>,
    },
}

impl Job {
    /// The case row the job must lock before the chain head.
    fn case_id(&self) -> Option<i64> {
        match self {
            Job::Create { .. } => None,
            Job::Update { id, .. } => Some(*id),
        }
    }

    /// Whether the job may run (again) in another transaction: its decision is unused.
    fn rerunnable(&self) -> bool {
        match self {
            Job::Create { .. } => true,
            Job::Update { decide, .. } => decide.is_some(),
        }
    }

    fn forget_result(&mut self) {
        match self {
            Job::Create { result, .. } => *result = None,
            Job::Update { result, .. } => *result = None,
        }
    }

    fn not_found(&mut self) {
        if let Job::Update { result, .. } = self {
            *result = Some(Err(StoreError::NotFound.into()));
        }
    }

    /// Runs the job: decides from what the batch knows and pushes its writes onto `p`. The
    /// answer goes into the job; an error means nothing of the job may be kept.
    async fn run<'t>(
        &mut self,
        tx: &'t Transaction<'_>,
        batch: &mut Batch,
        p: &mut Pipeline<'t>,
    ) -> R<()> {
        match self {
            Job::Create { req, result, .. } => {
                *result = Some(Ok(cases::create_case(tx, batch, p, req).await?));
            }
            Job::Update {
                id,
                expected_version,
                decide,
                result,
                ..
            } => {
                let case = cases::update_case(tx, batch, p, *id, *expected_version, decide).await?;
                *result = Some(Ok(case));
            }
        }
        Ok(())
    }

    /// Records the job's failure as its answer.
    fn fail(&mut self, e: Error) {
        match self {
            Job::Create { result, .. } => *result = Some(Err(e)),
            Job::Update { result, .. } => *result = Some(Err(e)),
        }
    }

    /// Re-reads what a creation's writes found changed (an idempotency key another
    /// writer inserted), before the creation runs again.
    async fn reload(&mut self, tx: &Transaction<'_>, batch: &mut Batch) -> R<()> {
        if let Job::Create { req, .. } = self
            && let Some(k) = &req.idempotency
        {
            batch.reload_key(tx, &k.scope, &k.key).await?;
        }
        Ok(())
    }

    /// Sends the answer: the job's own error if it failed, else `batch_error` if the batch
    /// did not commit, else its result.
    fn answer(self, batch_error: Option<&str>) {
        // The caller may have gone away (a cancelled request); the write stands regardless.
        match self {
            Job::Create { reply, result, .. } => {
                let _ = reply.send(settle(result, batch_error));
            }
            Job::Update { reply, result, .. } => {
                let _ = reply.send(settle(result, batch_error));
            }
        }
    }
}

fn settle<T>(result: Option<R<T>>, batch_error: Option<&str>) -> Result<T> {
    match (result, batch_error) {
        (Some(Err(e)), _) => Err(e.into()),
        (_, Some(msg)) => Err(StoreError::Backend(msg.to_string())),
        (Some(Ok(v)), None) => Ok(v),
        (None, None) => Err(StoreError::Backend("the write was not run".into())),
    }
}

/// The handle to the writer task. Dropping it (with the store) lets the task finish the
/// queued jobs and end, closing its connection.
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task on the current runtime, writing through `pool` (a pool of one
    /// connection, opened again when it breaks).
    pub fn start(pool: Pool) -> Writer {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, rx));
        Writer { jobs }
    }

    /// Creates a case (or replays it) in the next batch; answers once it has committed.
    pub async fn create(&self, req: CreateCase) -> Result<Created> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Create {
            req: Box::new(req),
            reply,
            result: None,
        })?;
        rx.await.map_err(|_| stopped())?
    }

    /// Updates a case in the next batch; answers once it has committed.
    pub async fn update(
        &self,
        id: i64,
        expected_version: Option<i64>,
        decide: CaseUpdate,
    ) -> Result<Case> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Update {
            id,
            expected_version,
            decide: Some(decide),
            reply,
            result: None,
        })?;
        rx.await.map_err(|_| stopped())?
    }

    fn send(&self, job: Job) -> Result<()> {
        self.jobs.send(job).map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the database writer stopped before answering".into())
}

async fn run(pool: Pool, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch = std::mem::replace(&mut jobs, Vec::with_capacity(MAX_BATCH));
        // A panic fails the batch's jobs (their callers see the writer gone, and the
        // transaction rolls back as it is dropped), not every later write.
        if CatchUnwind(Box::pin(run_batch(pool.clone(), batch)))
            .await
            .is_err()
        {
            tracing::error!("a write batch panicked");
        }
    }
    tracing::debug!("database writer stopped");
}

/// A future whose panic becomes an `Err` (without another task, which would cost a
/// wake-up per batch).
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Runs the jobs in one transaction, again while it loses races, and answers them.
async fn run_batch(pool: Pool, mut jobs: Vec<Job>) {
    let mut attempt = 0;
    loop {
        let outcome: R<()> = async {
            let mut client = pool.get().await?;
            try_batch(&mut client, &mut jobs).await
        }
        .await;
        match outcome {
            Ok(()) => {
                tracing::trace!(jobs = jobs.len(), "committed a batch");
                for job in jobs {
                    job.answer(None);
                }
                return;
            }
            Err(e) if is_retryable(&e) && attempt < RETRIES => {
                attempt += 1;
                let msg = e.to_string();
                let (again, spent): (Vec<Job>, Vec<Job>) =
                    jobs.into_iter().partition(Job::rerunnable);
                for job in spent {
                    job.answer(Some(&msg));
                }
                if again.is_empty() {
                    return;
                }
                jobs = again;
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(error = %msg, jobs = jobs.len(), "a write batch failed");
                for job in jobs {
                    job.answer(Some(&msg));
                }
                return;
            }
        }
    }
}

/// One attempt at the batch: `Err` when the transaction as a whole failed (nothing of it
/// is committed); the jobs' own outcomes are in the jobs.
///
/// A job that fails while it decides (version conflict, refusal, mismatch) has sent
/// nothing. A job with writes sends them behind `SAVEPOINT job` (releasing the one before),
/// in one round trip; if they fail, `ROLLBACK TO SAVEPOINT job` undoes them alone.
async fn try_batch(client: &mut Object, jobs: &mut [Job]) -> R<()> {
    for job in jobs.iter_mut() {
        job.forget_result();
    }
    let tx = client.transaction().await?;

    let mut ids: Vec<i64> = jobs.iter().filter_map(Job::case_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let creates: Vec<&CreateCase> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Create { req, .. } => Some(&**req),
            Job::Update { .. } => None,
        })
        .collect();
    let mut batch = Batch::start(&tx, &ids, &creates).await?;

    let (mut savepoint_open, mut finished, count) = (false, false, jobs.len());
    for (i, job) in jobs.iter_mut().enumerate() {
        // A case missing when the batch locked its rows is missing for the job: locking it
        // later, after the chain head, would break the lock order.
        if job.case_id().is_some_and(|id| !batch.has_case(id)) {
            job.not_found();
            continue;
        }
        let mut tries = 0;
        loop {
            let cp = batch.checkpoint();
            let mut p = Pipeline::default();
            if let Err(e) = job.run(&tx, &mut batch, &mut p).await {
                batch.rollback(cp);
                if is_retryable(&e) && job.rerunnable() && tries < RETRIES {
                    tries += 1;
                    continue;
                }
                job.fail(e);
                break;
            }
            if p.is_empty() {
                break; // answered without writing (a replay)
            }
            // The last job carries the batch's closing writes along with its own.
            let last = i + 1 == count;
            if last {
                batch.finish(&tx, &mut p).await?;
            }
            let opened = send_now(tx.batch_execute(if savepoint_open {
                "RELEASE SAVEPOINT job; SAVEPOINT job"
            } else {
                "SAVEPOINT job"
            }));
            let wrote = p.run().await;
            opened.wait().await?;
            savepoint_open = true;
            if let Err(e) = wrote {
                tx.batch_execute("ROLLBACK TO SAVEPOINT job").await?;
                batch.rollback(cp);
                if is_retryable(&e) && job.rerunnable() && tries < RETRIES {
                    tracing::debug!(error = %e, "a write job runs again");
                    job.reload(&tx, &mut batch).await?;
                    tries += 1;
                    continue;
                }
                job.fail(e);
            } else {
                finished = last;
            }
            break;
        }
    }

    if !finished {
        let mut p = Pipeline::default();
        batch.finish(&tx, &mut p).await?;
        p.run().await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A request already sent to the server, its answer awaited later.
struct Sent<F: Future> {
    fut: Pin<Box<F>>,
    out: Option<F::Output>,
}

/// Polls `fut` once, which sends a tokio-postgres request (they are sent on their first
/// poll), so that the statements sent after it run after it.
fn send_now<F: Future>(fut: F) -> Sent<F> {
    let mut fut = Box::pin(fut);
    let out = match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    };
    Sent { fut, out }
}

impl<F: Future> Sent<F> {
    async fn wait(mut self) -> F::Output {
        match self.out.take() {
            Some(v) => v,
            None => self.fut.await,
        }
    }
}
