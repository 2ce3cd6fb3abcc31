//! The writer thread and its group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync, which is slow
//! next to the work of any one job. So a single thread owns the read-write connection and
//! takes every job queued at the moment (up to [`MAX_BATCH`]) into one transaction: each job
//! runs inside its own SAVEPOINT (unless it is alone, when the transaction is its own), so
//! a job that fails rolls back only itself, then one COMMIT
//! (one fsync) makes the whole batch durable and only after that is every job answered. Under
//! load, batches grow by themselves, and throughput with them; when idle, a job commits alone
//! without waiting for company.
//!
//! Checkpoints (copying the WAL into the database file and syncing it) run on a thread of
//! their own with its own connection, never inside a commit: SQLite's automatic checkpoint
//! would stall the writer, and every caller waiting on it, for tens of megabytes of random
//! page writes every few seconds under load.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gridloop_store::{Result, StoreError};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::sql::Db;

/// The most jobs in one transaction. Bounds the latency one batch adds to its last job and
/// the work lost to a failed commit.
const MAX_BATCH: usize = 256;

/// A unit of work for the writer: a closure and the channel its caller waits on.
trait Job: Send {
    /// Runs on the writer's connection inside the job's savepoint (or, alone in its batch,
    /// its own transaction); the reply is sent once
    /// the outcome of the whole batch is known.
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Reply>;
    /// Answers without running (the batch could not even start).
    fn fail(self: Box<Self>, msg: &str);
}

struct Task<T, F> {
    f: F,
    tx: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Task<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Reply> {
        let Task { f, tx } = *self;
        // A panicking job (a caller's decision closure, say) must not take the writer
        // thread, and with it every later write, down.
        let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(StoreError::Backend("a write job panicked".into())));
        Box::new(Pending { result, tx })
    }

    fn fail(self: Box<Self>, msg: &str) {
        let _ = self.tx.send(Err(StoreError::Backend(msg.to_string())));
    }
}

/// A job's result waiting for its batch to commit.
trait Reply: Send {
    fn succeeded(&self) -> bool;
    /// Sends the result, or `commit_error` instead when the batch did not commit.
    fn send(self: Box<Self>, commit_error: Option<&str>);
}

struct Pending<T> {
    result: Result<T>,
    tx: oneshot::Sender<Result<T>>,
}

impl<T: Send> Reply for Pending<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn send(self: Box<Self>, commit_error: Option<&str>) {
        let result = match commit_error {
            Some(e) if self.result.is_ok() => Err(StoreError::Backend(e.to_string())),
            _ => self.result,
        };
        // The caller may have gone away (a cancelled request); the write stands regardless.
        let _ = self.tx.send(result);
    }
}

/// The handle to the writer thread. Dropping it lets the thread finish the queued jobs and
/// waits for it, so that the connection is closed when the store is gone.
pub(crate) struct Writer {
    jobs: Option<Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    checkpointer: Option<Checkpointer>,
}

/// How often the checkpointer copies what the WAL holds into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The thread that checkpoints the WAL while the writer goes on committing.
struct Checkpointer {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Takes checkpoints over from `writer` (whose automatic ones it turns off), for a
    /// database in a file; an in-memory database keeps SQLite's own.
    fn start(writer: &Connection) -> Result<Option<Checkpointer>> {
        let Some(path) = writer.path().filter(|p| !p.is_empty()).map(str::to_string) else {
            return Ok(None);
        };
        let conn = Connection::open(&path).db()?;
        conn.busy_timeout(Duration::from_secs(5)).db()?;
        conn.execute_batch("PRAGMA synchronous = FULL").db()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("gridloop-sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    // PASSIVE never waits for the writer or readers: it copies what it can.
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done {
                        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpointer: {e}")))?;
        writer.execute_batch("PRAGMA wal_autocheckpoint = 0").db()?;
        Ok(Some(Checkpointer { stop, thread }))
    }
}

impl Writer {
    pub fn start(conn: Connection) -> Result<Writer> {
        let checkpointer = Checkpointer::start(&conn)?;
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("gridloop-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            jobs: Some(tx),
            thread: Some(thread),
            checkpointer,
        })
    }

    /// Runs `f` in the next write transaction and returns its result once that transaction
    /// has committed (or the error, with nothing of `f` written).
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Task { f, tx });
        let stopped = || StoreError::Backend("the database writer has stopped".into());
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The checkpointer first: the writer's connection, closing last, checkpoints the rest.
        if let Some(c) = self.checkpointer.take() {
            let _ = c.stop.send(());
            let _ = c.thread.join();
        }
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: Connection, rx: Receiver<Box<dyn Job>>) {
    let mut queue = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv() {
                Ok(job) => queue.push_back(job),
                Err(_) => break, // every sender is gone: the store was dropped
            }
        }
        while queue.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => queue.push_back(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, &mut queue);
        bound_wal(&conn, WAL_RESTART, WAL_LIMIT);
    }
    tracing::debug!("database writer stopped");
}

/// The WAL size past which the writer has the log start over from its beginning: SQLite's
/// `journal_size_limit` (`schema::open_writer`), to which the file is cut back when it does,
/// so that the file is overwritten in place rather than grown again. Each start-over costs
/// the writer a stall (the last frames copied, the database file synced): at 64 MB it came
/// every second under steady intake at 10M cases and showed as the p99 at 16 clients.
const WAL_RESTART: u64 = 256 << 20;
/// The WAL size past which the writer empties it whatever it costs, waiting for readers.
const WAL_LIMIT: u64 = 1 << 30;

/// Keeps the WAL from growing without bound behind a writer that never pauses.
///
/// The checkpointer's passive checkpoints copy what is committed, but the log only starts
/// over from its beginning when a write begins just after a checkpoint has caught up, and a
/// writer that never pauses (a bulk import's jobs back to back, or intake at full load)
/// leaves no such moment: the WAL grew by everything written (18 GB after 2.4M seeded
/// cases; ~150 MB a second under intake, every new block of it zeroed by the file system
/// and the log read back at ever larger offsets). So past `restart` bytes the writer, between
/// batches, copies what the checkpointer has not yet (the last few commits) itself; its
/// next write then starts the log over unless a reader still reads frames of it. Past
/// `limit` (readers in the way every time) it waits for them and empties the log.
fn bound_wal(conn: &Connection, restart: u64, limit: u64) {
    let Some(db) = conn.path().filter(|p| !p.is_empty()) else {
        return;
    };
    let wal = std::fs::metadata(format!("{db}-wal")).map_or(0, |m| m.len());
    if wal <= restart {
        return;
    }
    let started = std::time::Instant::now();
    let mode = if wal > limit { "TRUNCATE" } else { "PASSIVE" };
    match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) if wal > limit => tracing::info!(
            wal_bytes = wal,
            ms = started.elapsed().as_millis() as u64,
            "checkpointed and emptied a large WAL"
        ),
        Ok(0) => {}
        // Readers on an older snapshot, or the checkpointer at work: tried again after
        // the next batch.
        Ok(_) => tracing::debug!(wal_bytes = wal, mode, "WAL checkpoint blocked"),
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
    }
}

/// A batch of several jobs that takes longer than this is logged with where its time went.
const SLOW_BATCH: Duration = Duration::from_secs(1);

/// Runs up to [`MAX_BATCH`] jobs from the front of `queue` in one transaction.
fn run_batch(conn: &Connection, queue: &mut VecDeque<Box<dyn Job>>) {
    let started = Instant::now();
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        // Another process holds the write lock past the busy timeout, or the disk is gone:
        // fail what is queued now rather than spin on it.
        let msg = format!("cannot start a write transaction: {e}");
        tracing::error!("{msg}");
        for job in queue.drain(..) {
            job.fail(&msg);
        }
        return;
    }
    let mut done: Vec<Box<dyn Reply>> = Vec::new();
    let mut taken = 0;
    // New cases' search terms wait for the end of the batch: written between the jobs'
    // savepoints, each case's would become a segment of the index of its own.
    let terms = crate::search::DeferredTerms::start();
    // A job alone in its batch needs no savepoint: the transaction is its own, and rolling
    // it back undoes the job. A savepoint copies every page a job first changes (a bulk
    // import's ~8% of the writer's time).
    let alone = queue.len() == 1;
    while taken < MAX_BATCH {
        let Some(job) = queue.pop_front() else { break };
        taken += 1;
        let held = terms.mark();
        if !alone && let Err(e) = exec(conn, "SAVEPOINT job") {
            let msg = format!("cannot open a savepoint: {e}");
            job.fail(&msg);
            abort(conn, done, &msg);
            return;
        }
        let reply = job.run(conn);
        if reply.succeeded() {
            if !alone && let Err(e) = exec(conn, "RELEASE job") {
                done.push(reply);
                abort(conn, done, &format!("cannot release a savepoint: {e}"));
                return;
            }
            done.push(reply);
        } else if alone {
            // Undo the job with its transaction; its error is its answer.
            if !conn.is_autocommit()
                && let Err(e) = exec(conn, "ROLLBACK")
            {
                tracing::error!(error = %e, "cannot roll back a failed write job");
            }
            reply.send(None);
            return;
        } else {
            // Undo just this job; its error is its answer, whatever happens to the batch.
            let undone = exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"));
            terms.forget_since(held);
            reply.send(None);
            if let Err(e) = undone {
                abort(conn, done, &format!("cannot roll back a savepoint: {e}"));
                return;
            }
        }
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back on its own (I/O error, disk full,
            // out of memory): the earlier jobs of the batch are undone too.
            abort(
                conn,
                done,
                "the write transaction was rolled back by the database",
            );
            return;
        }
    }
    let jobs_done = started.elapsed();
    if let Err(e) = terms.write(conn) {
        abort(
            conn,
            done,
            &format!("cannot index the new cases for search: {e}"),
        );
        return;
    }
    let terms_written = started.elapsed();
    match exec(conn, "COMMIT") {
        Ok(()) => {
            let all = started.elapsed();
            // Every job of the batch waited this long: worth knowing where the time went
            // when it is long (seconds behind every caller), not on every batch. A bulk
            // import's jobs take about a second each by design (16,000 cases apiece).
            if all >= SLOW_BATCH && done.len() > 1 && !crate::bulk::active(conn).unwrap_or(false) {
                tracing::warn!(
                    jobs = done.len(),
                    jobs_ms = jobs_done.as_millis() as u64,
                    search_terms_ms = (terms_written - jobs_done).as_millis() as u64,
                    commit_ms = (all - terms_written).as_millis() as u64,
                    "a slow write batch"
                );
            }
            tracing::trace!(jobs = done.len(), "committed a batch");
            for r in done {
                r.send(None);
            }
        }
        Err(e) => abort(conn, done, &format!("commit failed: {e}")),
    }
}

/// Rolls the batch back and answers its jobs with the error.
fn abort(conn: &Connection, done: Vec<Box<dyn Reply>>, msg: &str) {
    tracing::error!("write batch failed: {msg}");
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK");
    }
    for r in done {
        r.send(Some(msg));
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql).db()?.execute([]).db()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch's search terms go in at its end, but never those of a job rolled back.
    /// A job alone in its batch runs without a savepoint: what it wrote commits with it, or
    /// goes entirely when it fails, terms included.
    #[test]
    fn a_job_alone_commits_or_rolls_back_whole() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let job = |key: &'static str, fails: bool| {
            let (tx, rx) = oneshot::channel::<Result<()>>();
            let f = move |c: &Connection| {
                c.execute("INSERT INTO settings (key, value) VALUES (?1, 'v')", [key])
                    .unwrap();
                let mut insert = c.prepare_cached(crate::search::INSERT).unwrap();
                crate::search::index(&mut insert, 1, crate::search::terms(&["路灯不亮"]))?;
                assert!(!c.is_autocommit(), "inside the batch's transaction");
                if fails {
                    return Err(StoreError::Backend("this job fails".into()));
                }
                Ok(())
            };
            (Box::new(Task { f, tx }) as Box<dyn Job>, rx)
        };
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        let (failing, mut failed) = job("a", true);
        run_batch(&conn, &mut VecDeque::from([failing]));
        assert!(failed.try_recv().unwrap().is_err());
        assert!(conn.is_autocommit(), "the transaction is over");
        assert_eq!(count("SELECT count(*) FROM settings WHERE key = 'a'"), 0);
        assert_eq!(count("SELECT count(*) FROM cases_search"), 0);
        let (ok, mut answered) = job("b", false);
        run_batch(&conn, &mut VecDeque::from([ok]));
        assert!(answered.try_recv().unwrap().is_ok());
        assert_eq!(count("SELECT count(*) FROM settings WHERE key = 'b'"), 1);
        assert_eq!(count("SELECT count(*) FROM cases_search"), 1);
    }

    #[test]
    fn a_batch_indexes_the_cases_of_its_jobs_that_succeed() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let job = |id: i64, fails: bool| {
            let (tx, rx) = oneshot::channel::<Result<()>>();
            let f = move |c: &Connection| {
                let mut insert = c.prepare_cached(crate::search::INSERT).unwrap();
                crate::search::index(&mut insert, id, crate::search::terms(&["路灯不亮"]))?;
                let held: i64 = c
                    .query_row("SELECT count(*) FROM cases_search", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(held, 0, "held back until the batch's end");
                if fails {
                    return Err(StoreError::Backend("this job fails".into()));
                }
                Ok(())
            };
            (Box::new(Task { f, tx }) as Box<dyn Job>, rx)
        };
        let (jobs, mut replies): (VecDeque<_>, Vec<_>) =
            [job(1, false), job(2, true), job(3, false)]
                .into_iter()
                .unzip();
        let mut queue = jobs;
        run_batch(&conn, &mut queue);
        let answers: Vec<bool> = replies
            .iter_mut()
            .map(|rx| rx.try_recv().unwrap().is_ok())
            .collect();
        assert_eq!(answers, [true, false, true]);
        let found: Vec<i64> = conn
            .prepare(
                "SELECT rowid FROM cases_search WHERE cases_search MATCH '\"路灯\"' ORDER BY rowid",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(found, [1, 3]);
        // Outside a batch, terms go in at once.
        let mut insert = conn.prepare(crate::search::INSERT).unwrap();
        crate::search::index(&mut insert, 4, "路灯".into()).unwrap();
        let all: i64 = conn
            .query_row("SELECT count(*) FROM cases_search", [], |r| r.get(0))
            .unwrap();
        assert_eq!(all, 3);
    }

    #[test]
    fn a_large_wal_starts_over_or_is_emptied_between_batches() {
        let dir = std::env::temp_dir().join(format!("gridloop-wal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("w.db");
        let conn = Connection::open(&db).unwrap();
        let fill = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                    INSERT INTO t SELECT randomblob(1000) FROM n;";
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             PRAGMA journal_size_limit = 65536;
             CREATE TABLE t (x BLOB); {fill}"
        ))
        .unwrap();
        let wal = || std::fs::metadata(dir.join("w.db-wal")).unwrap().len();
        assert!(wal() > 400_000);
        bound_wal(&conn, u64::MAX, u64::MAX);
        conn.execute_batch("INSERT INTO t VALUES (x'00')").unwrap();
        assert!(wal() > 400_000, "left alone under the limits");

        // Past the restart size: copied, and the next write starts the log over (and cuts
        // the file back to the journal size limit) instead of appending to it.
        bound_wal(&conn, 1000, u64::MAX);
        conn.execute_batch("INSERT INTO t VALUES (x'01')").unwrap();
        assert!(wal() <= 65536, "{} bytes", wal());

        // Past the hard limit: emptied at once.
        conn.execute_batch(fill).unwrap();
        assert!(wal() > 400_000);
        bound_wal(&conn, 1000, 1000);
        assert_eq!(wal(), 0);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1002);
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
