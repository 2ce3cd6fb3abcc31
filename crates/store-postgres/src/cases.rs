//! Cases: the writes (create, update, bulk import) with their events and rollups, the point
//! reads, and the hash chain.
//!
//! Every write that appends to the chain runs in a transaction that locks rows in one fixed
//! order: the case rows (`FOR NO KEY UPDATE`, updates only, in the order of their ids), then
//! the `chain_head` row (`FOR UPDATE`), then the day's case numbers, idempotency keys and
//! rollups. The chain head lock serializes appends across all server processes, so event
//! ids are gapless and each event links to the one before; a fixed order means no two
//! writers wait on each other in a cycle. Creations and updates run as jobs of a write
//! batch (module `writer`), which takes those locks for all of its jobs at once; bulk
//! imports take the chain head themselves.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::Poll;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use gridloop_domain::case::{Case, Decision, format_number};
use gridloop_domain::measures::{Counters, MeasureDelta};
use gridloop_domain::org::path_codes;
use gridloop_domain::timeline::{ChainBreak, ChainVerifier, Event, NewEvent, event_hash};
use gridloop_store::period::month;
use gridloop_store::{CaseUpdate, ChainReport, CreateCase, Created, ImportCase, StoreError};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row, Statement};

use crate::db::{Error, R, backend, get, ms, region_of};

// --- case rows --------------------------------------------------------------------------

/// The columns of a case row, derived from the case. Built once per write.
pub(crate) struct CaseRow<'a> {
    case: &'a Case,
    status: &'static str,
    channel: &'static str,
    deadline: Option<i64>,
    due_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    lat: Option<f64>,
    lng: Option<f64>,
    doc: String,
    region: String,
}

impl<'a> CaseRow<'a> {
    pub fn new(case: &'a Case) -> R<CaseRow<'a>> {
        let doc = serde_json::to_string(case)
            .map_err(|e| backend(format!("cannot encode case {}: {e}", case.id)))?;
        Ok(CaseRow {
            case,
            status: case.status.as_str(),
            channel: case.channel.as_str(),
            deadline: case.deadline.map(ms),
            due_at: case.due_at.map(ms),
            created_at: ms(case.created_at),
            updated_at: ms(case.updated_at),
            lat: case.location.map(|l| l.lat),
            lng: case.location.map(|l| l.lng),
            doc,
            region: region_of(&case.area_path),
        })
    }

    /// `$1..=$23` in the order of [`INSERT_CASE`] and [`UPDATE_CASE`].
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 23] {
        let c = self.case;
        [
            &c.id,
            &c.number,
            &self.status,
            &c.version,
            &self.channel,
            &c.category,
            &c.area_path,
            &c.org_path,
            &c.created_by,
            &c.reporter.phone,
            &c.title,
            &c.description,
            &self.deadline,
            &c.overdue,
            &self.due_at,
            &self.created_at,
            &self.updated_at,
            &self.lat,
            &self.lng,
            &c.source_key,
            &c.visit_id,
            &self.doc,
            &self.region,
        ]
    }
}

const INSERT_CASE: &str = "INSERT INTO cases (id, number, status, version, channel, category,
        area_path, org_path, created_by, reporter_phone, title, description, deadline, overdue,
        due_at, created_at, updated_at, lat, lng, source_key, visit_id, doc, region)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $21, $22, $23)";

// The id and number never change: they only find the row, so that both statements share
// one parameter list.
const UPDATE_CASE: &str = "UPDATE cases SET status = $3, version = $4, channel = $5,
        category = $6, area_path = $7, org_path = $8, created_by = $9, reporter_phone = $10,
        title = $11, description = $12, deadline = $13, overdue = $14, due_at = $15,
        created_at = $16, updated_at = $17, lat = $18, lng = $19, source_key = $20,
        visit_id = $21, doc = $22, region = $23
    WHERE id = $1 AND number = $2";

pub(crate) fn parse_doc(id: i64, doc: &str) -> R<Case> {
    serde_json::from_str(doc).map_err(|e| backend(format!("the stored case {id} is corrupt: {e}")))
}

/// Inserts a case row as it is (id and number included).
pub(crate) async fn insert_case(tx: &Transaction<'_>, case: &Case) -> R<()> {
    let stmt = tx.prepare_cached(INSERT_CASE).await?;
    write_case(tx, &stmt, case).await
}

/// Runs [`INSERT_CASE`] or [`UPDATE_CASE`] for the case. Sends the statement before its
/// first await, so that it keeps its place in a [`Pipeline`].
async fn write_case(tx: &Transaction<'_>, stmt: &Statement, case: &Case) -> R<()> {
    let row = CaseRow::new(case)?;
    match tx.execute(stmt, &row.params()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(StoreError::Duplicate(format!("case number {} already exists", case.number)).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// One statement of a [`Pipeline`].
type Step<'t> = Pin<Box<dyn Future<Output = R<()>> + Send + 't>>;

/// Statements sent to the server at once. The server runs them one after another in the
/// order pushed (a failure aborts the transaction, and so the rest), while the client waits
/// for all their answers together: one round trip instead of one each, which matters most
/// while the chain head is locked. Every statement must be prepared before it is pushed,
/// so that a step sends its statement on its first poll.
#[derive(Default)]
pub(crate) struct Pipeline<'t> {
    steps: Vec<Step<'t>>,
}

impl<'t> Pipeline<'t> {
    pub fn push(&mut self, step: impl Future<Output = R<()>> + Send + 't) {
        self.steps.push(Box::pin(step));
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the steps and reports the first failure. Each poll goes through the steps in
    /// order, so they are sent in order (a general-purpose join may poll in any order).
    pub async fn run(&mut self) -> R<()> {
        let mut steps: Vec<Option<Step<'t>>> = std::mem::take(&mut self.steps)
            .into_iter()
            .map(Some)
            .collect();
        // The first poll sends every statement. Answers come in order, so afterwards only
        // the earliest unfinished step can be ready: the others wait behind it.
        let (mut first, mut sent) = (0, false);
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for slot in steps.iter_mut().skip(first) {
                if let Some(step) = slot {
                    match step.as_mut().poll(cx) {
                        Poll::Ready(Ok(())) => *slot = None,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => pending = true,
                    }
                }
                if !pending {
                    first += 1;
                } else if sent {
                    break;
                }
            }
            sent = true;
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        })
        .await
    }
}

pub(crate) async fn load_case(c: &impl GenericClient, id: i64) -> R<Option<Case>> {
    let row = c
        .query_opt("SELECT doc FROM cases WHERE id = $1", &[&id])
        .await?;
    row.map(|r| parse_doc(id, &get::<String>(&r, 0)?))
        .transpose()
}

pub(crate) async fn case_by_number(c: &impl GenericClient, number: &str) -> R<Option<Case>> {
    let row = c
        .query_opt("SELECT id, doc FROM cases WHERE number = $1", &[&number])
        .await?;
    row.map(|r| parse_doc(get(&r, 0)?, &get::<String>(&r, 1)?))
        .transpose()
}

/// Ids of cases due at `now`, earliest first, from the partial index on `due_at`.
pub(crate) async fn due_cases(
    c: &impl GenericClient,
    now: DateTime<Utc>,
    limit: u32,
) -> R<Vec<i64>> {
    let rows = c
        .query(
            "SELECT id FROM cases WHERE due_at IS NOT NULL AND due_at <= $1
             ORDER BY due_at, id LIMIT $2",
            &[&ms(now), &i64::from(limit)],
        )
        .await?;
    rows.iter().map(|r| get(r, 0)).collect()
}

/// The next case id. Only ever called with the chain head locked, which every case insert
/// holds, so max + 1 cannot collide and ids have no gaps (as in the SQLite store).
pub(crate) async fn next_case_id(tx: &Transaction<'_>) -> R<i64> {
    let stmt = tx
        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM cases")
        .await?;
    get(&tx.query_one(&stmt, &[]).await?, 0)
}

/// The day and sequence of a number in the [`format_number`] format (`YYYYMMDD-NNNNNN`).
pub(crate) fn parse_number(number: &str) -> Option<(NaiveDate, i64)> {
    let (day, seq) = number.split_once('-')?;
    let day = NaiveDate::parse_from_str(day, "%Y%m%d").ok()?;
    let seq = seq.parse::<i64>().ok().filter(|s| *s > 0)?;
    Some((day, seq))
}

/// Raises the day's counter to at least `seq` (imports).
pub(crate) async fn bump_number(tx: &Transaction<'_>, day: &str, seq: i64) -> R<()> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO case_numbers (day, last_seq) VALUES ($1, $2)
             ON CONFLICT (day) DO UPDATE
             SET last_seq = greatest(case_numbers.last_seq, excluded.last_seq)",
        )
        .await?;
    tx.execute(&stmt, &[&day, &seq]).await?;
    Ok(())
}

// --- write batches ----------------------------------------------------------------------

/// Locks the case rows of a write batch in the order of their ids (so that batches of
/// different processes never wait on each other in a cycle), answering each case as it
/// now is.
const LOCK_CASES: &str =
    "SELECT id, doc FROM cases WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE";

pub(crate) const LOCK_HEAD: &str = "SELECT id, hash FROM chain_head WHERE singleton = 1 FOR UPDATE";

const INSERT_IDEMPOTENCY: &str = "INSERT INTO idempotency
        (scope, key, fingerprint, case_id, created_at, region)
    VALUES ($1, $2, $3, $4, $5, $6)";

/// What a write batch (module `writer`) knows once it holds its locks: read in one round
/// trip when it starts, then kept up to date in memory by its jobs, so that a job sends
/// only its writes. Everything here is guarded by the locks the batch holds: its case rows,
/// and the chain head, which every writer of cases, events, case numbers and idempotency
/// keys takes.
pub(crate) struct Batch {
    head: ChainHead,
    next_id: i64,
    /// The last sequence number of each day the batch's creations number in.
    numbers: HashMap<String, i64>,
    numbers_read: HashMap<String, i64>,
    /// Idempotency keys of the batch's creations: (scope, key) → (fingerprint, case id).
    keys: HashMap<(String, String), (String, i64)>,
    /// The batch's locked cases, as they are now, with their last event number.
    cases: HashMap<i64, (Case, i64)>,
    /// Cases created by this batch, for replays within it.
    created: HashMap<i64, Case>,
    /// How to undo what the jobs changed, newest last.
    log: Vec<Undo>,
}

enum Undo {
    NextId(i64),
    Number(String, i64),
    Key((String, String), Option<(String, i64)>),
    Case(i64, Box<(Case, i64)>),
    Created(i64),
}

/// The state of a batch before a job, to return to if the job fails.
pub(crate) struct Checkpoint {
    log: usize,
    head: ChainHead,
}

impl Batch {
    /// Takes the batch's locks — the case rows of `updates` (sorted, without duplicates),
    /// then the chain head — and reads what its jobs need, all in one round trip.
    pub async fn start(tx: &Transaction<'_>, updates: &[i64], creates: &[&CreateCase]) -> R<Batch> {
        let lock_cases = tx.prepare_cached(LOCK_CASES).await?;
        let lock_head = tx.prepare_cached(LOCK_HEAD).await?;
        let last_seqs = tx
            .prepare_cached(
                "SELECT case_id, max(seq) FROM events WHERE case_id = ANY($1) GROUP BY case_id",
            )
            .await?;
        let max_id = tx
            .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM cases")
            .await?;
        let numbers = tx
            .prepare_cached("SELECT day, last_seq FROM case_numbers WHERE day = ANY($1)")
            .await?;
        let keys = tx
            .prepare_cached(
                "SELECT scope, key, fingerprint, case_id FROM idempotency
                 WHERE (scope, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            )
            .await?;
        let mut days: Vec<String> = creates.iter().map(|c| c.number_day.to_string()).collect();
        days.sort_unstable();
        days.dedup();
        let (scopes, names): (Vec<String>, Vec<String>) = creates
            .iter()
            .filter_map(|c| c.idempotency.as_ref())
            .map(|k| (k.scope.clone(), k.key.clone()))
            .unzip();
        let none = || async { Ok::<_, tokio_postgres::Error>(Vec::new()) };
        // Sent together and run in this order: the locks first, so that every read after
        // them (each with a fresh snapshot) sees all that the writers before committed.
        let (locked, head, last_seqs, next_id, numbers, keys) = tokio::try_join!(
            biased;
            async {
                if updates.is_empty() {
                    none().await
                } else {
                    tx.query(&lock_cases, &[&updates]).await
                }
            },
            tx.query_opt(&lock_head, &[]),
            async {
                if updates.is_empty() {
                    none().await
                } else {
                    tx.query(&last_seqs, &[&updates]).await
                }
            },
            async {
                if creates.is_empty() {
                    Ok(None)
                } else {
                    tx.query_one(&max_id, &[]).await.map(Some)
                }
            },
            async {
                if days.is_empty() {
                    none().await
                } else {
                    tx.query(&numbers, &[&days]).await
                }
            },
            async {
                if scopes.is_empty() {
                    none().await
                } else {
                    tx.query(&keys, &[&scopes, &names]).await
                }
            },
        )?;

        let mut seqs = HashMap::new();
        for r in &last_seqs {
            seqs.insert(get::<i64>(r, 0)?, get::<i64>(r, 1)?);
        }
        let mut cases = HashMap::new();
        for r in &locked {
            let id: i64 = get(r, 0)?;
            let case = parse_doc(id, &get::<String>(r, 1)?)?;
            cases.insert(id, (case, seqs.get(&id).copied().unwrap_or(0)));
        }
        let mut numbers_read = HashMap::new();
        for r in &numbers {
            numbers_read.insert(get::<String>(r, 0)?, get::<i64>(r, 1)?);
        }
        let mut known = HashMap::new();
        for r in &keys {
            known.insert((get(r, 0)?, get(r, 1)?), (get(r, 2)?, get(r, 3)?));
        }
        Ok(Batch {
            head: ChainHead::from_row(head)?,
            next_id: next_id.map(|r| get(&r, 0)).transpose()?.unwrap_or(0),
            numbers: numbers_read.clone(),
            numbers_read,
            keys: known,
            cases,
            created: HashMap::new(),
            log: Vec::new(),
        })
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            log: self.log.len(),
            head: self.head.clone(),
        }
    }

    /// Undoes what the jobs since `cp` changed.
    pub fn rollback(&mut self, cp: Checkpoint) {
        while self.log.len() > cp.log {
            match self.log.pop() {
                Some(Undo::NextId(id)) => self.next_id = id,
                Some(Undo::Number(day, seq)) => {
                    self.numbers.insert(day, seq);
                }
                Some(Undo::Key(k, old)) => match old {
                    Some(v) => {
                        self.keys.insert(k, v);
                    }
                    None => {
                        self.keys.remove(&k);
                    }
                },
                Some(Undo::Case(id, old)) => {
                    self.cases.insert(id, *old);
                }
                Some(Undo::Created(id)) => {
                    self.created.remove(&id);
                }
                None => break,
            }
        }
        self.head = cp.head;
    }

    /// Whether the batch locked the case (it existed when the batch started).
    pub fn has_case(&self, id: i64) -> bool {
        self.cases.contains_key(&id)
    }

    /// Reads an idempotency key again (another writer inserted it after all).
    pub async fn reload_key(&mut self, tx: &Transaction<'_>, scope: &str, key: &str) -> R<()> {
        let row = tx
            .query_opt(
                "SELECT fingerprint, case_id FROM idempotency WHERE scope = $1 AND key = $2",
                &[&scope, &key],
            )
            .await?;
        let k = (scope.to_string(), key.to_string());
        match row {
            Some(r) => self.keys.insert(k, (get(&r, 0)?, get(&r, 1)?)),
            None => self.keys.remove(&k),
        };
        Ok(())
    }

    /// The batch's closing writes: the new end of the chain and the day counters.
    pub async fn finish<'t>(&self, tx: &'t Transaction<'_>, p: &mut Pipeline<'t>) -> R<()> {
        self.head.save(tx, p).await?;
        let (days, seqs): (Vec<String>, Vec<i64>) = self
            .numbers
            .iter()
            .filter(|(day, seq)| self.numbers_read.get(*day) != Some(*seq))
            .map(|(day, seq)| (day.clone(), *seq))
            .unzip();
        if !days.is_empty() {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO case_numbers (day, last_seq)
                     SELECT * FROM unnest($1::text[], $2::bigint[])
                     ON CONFLICT (day) DO UPDATE
                     SET last_seq = greatest(case_numbers.last_seq, excluded.last_seq)",
                )
                .await?;
            p.push(async move {
                tx.execute(&stmt, &[&days, &seqs]).await?;
                Ok(())
            });
        }
        Ok(())
    }
}

/// Creates a case, or replays the case created earlier with the same idempotency key: a
/// job of a write batch, which pushes its writes onto `p` (none for a replay).
pub(crate) async fn create_case<'t>(
    tx: &'t Transaction<'_>,
    b: &mut Batch,
    p: &mut Pipeline<'t>,
    req: &CreateCase,
) -> R<Created> {
    if let Some(k) = &req.idempotency
        && let Some((fingerprint, case_id)) = b.keys.get(&(k.scope.clone(), k.key.clone()))
    {
        if *fingerprint != k.fingerprint {
            return Err(StoreError::IdempotencyMismatch.into());
        }
        let case_id = *case_id;
        let case = match b.created.get(&case_id) {
            Some(case) => case.clone(),
            None => load_case(&**tx, case_id).await?.ok_or_else(|| {
                backend(format!("idempotency key refers to missing case {case_id}"))
            })?,
        };
        return Ok(Created {
            case,
            replayed: true,
        });
    }

    let Decision {
        mut case,
        events,
        measures,
    } = req.decision.clone();
    case.id = b.next_id;
    b.log.push(Undo::NextId(b.next_id));
    b.next_id += 1;
    let day = req.number_day.to_string();
    let last = b.numbers.get(&day).copied().unwrap_or(0);
    let seq = u64::try_from(last + 1)
        .map_err(|_| backend(format!("case number counter of {day} is {last}")))?;
    b.log.push(Undo::Number(day.clone(), last));
    b.numbers.insert(day, last + 1);
    case.number = format_number(req.number_day, seq);
    let region = region_of(&case.area_path);

    let insert = tx.prepare_cached(INSERT_CASE).await?;
    let mut rollups = RollupDelta::default();
    rollups.add(&case.area_path, &measures);
    let rollups = rollups.prepare(tx).await?;
    let row = case.clone();
    p.push(async move { write_case(tx, &insert, &row).await });
    b.head.append(tx, p, case.id, &region, 0, &events).await?;
    rollups.push(tx, p);
    if let Some(k) = req.idempotency.clone() {
        let stmt = tx.prepare_cached(INSERT_IDEMPOTENCY).await?;
        let slot = (k.scope.clone(), k.key.clone());
        let old = b
            .keys
            .insert(slot.clone(), (k.fingerprint.clone(), case.id));
        b.log.push(Undo::Key(slot, old));
        let (id, at) = (case.id, ms(case.created_at));
        p.push(async move {
            let inserted = tx
                .execute(
                    &stmt,
                    &[&k.scope, &k.key, &k.fingerprint, &id, &at, &region],
                )
                .await;
            match inserted {
                Ok(_) => Ok(()),
                // Written by another writer after all (one that does not take the chain
                // head): running the job again replays it or refuses the mismatch.
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(Error::Retry),
                Err(e) => Err(e.into()),
            }
        });
    }
    b.created.insert(case.id, case.clone());
    b.log.push(Undo::Created(case.id));
    Ok(Created {
        case,
        replayed: false,
    })
}

/// Runs the decision on a case the batch has locked and pushes its writes onto `p`: a job
/// of a write batch. `decide` is taken out of its slot only once the version is checked,
/// so that a job that failed before can be run again with it.
pub(crate) async fn update_case<'t>(
    tx: &'t Transaction<'_>,
    b: &mut Batch,
    p: &mut Pipeline<'t>,
    id: i64,
    expected_version: Option<i64>,
    decide: &mut Option<CaseUpdate>,
) -> R<Case> {
    let (before, last_seq) = b.cases.get(&id).cloned().ok_or(StoreError::NotFound)?;
    if let Some(expected) = expected_version
        && expected != before.version
    {
        return Err(StoreError::VersionConflict {
            expected,
            current: before.version,
        }
        .into());
    }
    let f = decide
        .take()
        .ok_or_else(|| backend("the decision was already used"))?;
    // A panicking decision fails alone, like a refused one.
    let decided = catch_unwind(AssertUnwindSafe(|| f(&before)))
        .map_err(|_| backend("the decision panicked"))?;
    let Decision {
        mut case,
        events,
        measures,
    } = decided.map_err(StoreError::Domain)?;
    // The row's identity is the store's, whatever the closure returned.
    case.id = id;
    case.number.clone_from(&before.number);

    let update = tx.prepare_cached(UPDATE_CASE).await?;
    let mut rollups = RollupDelta::default();
    rollups.add(&case.area_path, &measures);
    let rollups = rollups.prepare(tx).await?;
    // A reveal leaves the case as it was: only its event is written.
    if case != before {
        let row = case.clone();
        p.push(async move { write_case(tx, &update, &row).await });
    }
    b.head
        .append(tx, p, id, &region_of(&case.area_path), last_seq, &events)
        .await?;
    rollups.push(tx, p);
    let last = last_seq + i64::try_from(events.len()).unwrap_or(i64::MAX);
    b.log.push(Undo::Case(id, Box::new((before, last_seq))));
    b.cases.insert(id, (case.clone(), last));
    Ok(case)
}

/// Writes finished historic cases: fresh ids, their own numbers, events on the chain in
/// order, measures summed and written once per row (with `COPY`, module `bulk`).
pub(crate) async fn import_cases(tx: &Transaction<'_>, cases: &[ImportCase]) -> R<()> {
    crate::bulk::import_cases(tx, cases).await
}

// --- the chain --------------------------------------------------------------------------

pub(crate) const EVENT_COLUMNS: &str =
    "id, case_id, seq, action, actor, at, details, prev_hash, hash";

const INSERT_EVENT: &str = "INSERT INTO events
        (id, case_id, seq, action, actor, at, details, prev_hash, hash, region)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// The end of the chain while a transaction appends to it, with its row locked.
#[derive(Clone)]
pub(crate) struct ChainHead {
    pub(crate) id: i64,
    pub(crate) hash: String,
    pub(crate) dirty: bool,
}

impl ChainHead {
    /// Locks the head row until the transaction ends. Every writer takes it after any case
    /// row lock and before anything else.
    pub async fn lock(tx: &Transaction<'_>) -> R<ChainHead> {
        let stmt = tx.prepare_cached(LOCK_HEAD).await?;
        ChainHead::from_row(tx.query_opt(&stmt, &[]).await?)
    }

    /// The head from the row of [`LOCK_HEAD`].
    pub fn from_row(row: Option<Row>) -> R<ChainHead> {
        let row = row.ok_or_else(|| backend("the chain head row is missing"))?;
        Ok(ChainHead {
            id: get(&row, 0)?,
            hash: get(&row, 1)?,
            dirty: false,
        })
    }

    /// Appends a case's new events in order after its last event number `last_seq` (0 for
    /// a new case): their places and hashes now, their rows with the pipeline.
    pub async fn append<'t>(
        &mut self,
        tx: &'t Transaction<'_>,
        p: &mut Pipeline<'t>,
        case_id: i64,
        region: &str,
        last_seq: i64,
        events: &[NewEvent],
    ) -> R<()> {
        if events.is_empty() {
            return Ok(());
        }
        let insert = tx.prepare_cached(INSERT_EVENT).await?;
        let mut seq = last_seq;
        for e in events {
            let id = self.id + 1;
            seq += 1;
            let hash = event_hash(
                &self.hash, id, case_id, seq, &e.action, &e.actor, e.at, &e.details,
            );
            let details = serde_json::to_string(&e.details)
                .map_err(|err| backend(format!("cannot encode event details: {err}")))?;
            let (insert, prev) = (insert.clone(), std::mem::replace(&mut self.hash, hash));
            let (action, actor, at, region) = (
                e.action.clone(),
                e.actor.clone(),
                ms(e.at),
                region.to_string(),
            );
            let hash = self.hash.clone();
            p.push(async move {
                tx.execute(
                    &insert,
                    &[
                        &id, &case_id, &seq, &action, &actor, &at, &details, &prev, &hash, &region,
                    ],
                )
                .await?;
                Ok(())
            });
            self.id = id;
            self.dirty = true;
        }
        Ok(())
    }

    /// Records the new end of the chain (with the pipeline), if anything was appended.
    pub async fn save<'t>(&self, tx: &'t Transaction<'_>, p: &mut Pipeline<'t>) -> R<()> {
        if self.dirty {
            let stmt = tx
                .prepare_cached("UPDATE chain_head SET id = $1, hash = $2 WHERE singleton = 1")
                .await?;
            let (id, hash) = (self.id, self.hash.clone());
            p.push(async move {
                tx.execute(&stmt, &[&id, &hash]).await?;
                Ok(())
            });
        }
        Ok(())
    }
}

/// A stored event, or why its row does not make one.
pub(crate) fn event_from_row(r: &Row) -> std::result::Result<Event, String> {
    let col = |e: tokio_postgres::Error| e.to_string();
    let details: String = r.try_get(6).map_err(col)?;
    let at: i64 = r.try_get(5).map_err(col)?;
    Ok(Event {
        id: r.try_get(0).map_err(col)?,
        case_id: r.try_get(1).map_err(col)?,
        seq: r.try_get(2).map_err(col)?,
        action: r.try_get(3).map_err(col)?,
        actor: r.try_get(4).map_err(col)?,
        at: DateTime::<Utc>::from_timestamp_millis(at)
            .ok_or_else(|| format!("its time {at} is out of range"))?,
        details: serde_json::from_str(&details)
            .map_err(|e| format!("its details are not JSON: {e}"))?,
        prev_hash: r.try_get(7).map_err(col)?,
        hash: r.try_get(8).map_err(col)?,
    })
}

fn events_from_rows(rows: &[Row]) -> R<Vec<Event>> {
    rows.iter()
        .map(|r| event_from_row(r).map_err(|e| backend(format!("corrupt event: {e}"))))
        .collect()
}

/// A case's timeline, oldest first.
pub(crate) async fn case_events(c: &impl GenericClient, case_id: i64) -> R<Vec<Event>> {
    let rows = c
        .query(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE case_id = $1 ORDER BY seq"),
            &[&case_id],
        )
        .await?;
    events_from_rows(&rows)
}

/// Events of all cases with `from <= at < to`, in chain order, at most `limit`.
pub(crate) async fn events_between(
    c: &impl GenericClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> R<Vec<Event>> {
    let rows = c
        .query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE at >= $1 AND at < $2
                 ORDER BY id LIMIT $3"
            ),
            &[&ms(from), &ms(to), &i64::from(limit)],
        )
        .await?;
    events_from_rows(&rows)
}

/// Rows fetched per round trip while the chain is walked.
const VERIFY_BATCH: i32 = 2000;

/// Walks the whole chain in one repeatable-read snapshot (so events committed meanwhile
/// cannot make the chain look longer than its recorded head), a batch of rows at a time
/// through a portal: never the whole table in memory.
pub(crate) async fn verify(tx: &Transaction<'_>) -> R<ChainReport> {
    let row = tx
        .query_one("SELECT id, hash FROM chain_head WHERE singleton = 1", &[])
        .await?;
    let (head_id, head_hash): (i64, String) = (get(&row, 0)?, get(&row, 1)?);
    let mut verifier = ChainVerifier::default();
    let report = |v: &ChainVerifier, first_break| ChainReport {
        checked: v.checked,
        first_break,
    };
    let stmt = tx
        .prepare(&format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY id"))
        .await?;
    let portal = tx.bind(&stmt, &[]).await?;
    loop {
        let rows = tx.query_portal(&portal, VERIFY_BATCH).await?;
        for r in &rows {
            let checked = event_from_row(r).map_err(|reason| ChainBreak {
                event_id: r.try_get(0).unwrap_or(0),
                case_id: r.try_get(1).unwrap_or(0),
                reason,
            });
            if let Err(b) = checked.and_then(|e| verifier.check(&e)) {
                return Ok(report(&verifier, Some(b)));
            }
        }
        if rows.len() < VERIFY_BATCH as usize {
            break;
        }
    }
    let end = verifier.finish(head_id, &head_hash).err();
    Ok(report(&verifier, end))
}

// --- rollups ----------------------------------------------------------------------------

/// Deltas summed per row before they are written, each with its region.
#[derive(Debug, Default)]
pub(crate) struct RollupDelta {
    counters: BTreeMap<(String, NaiveDate), (String, Counters)>,
    gauges: BTreeMap<(String, &'static str), (String, i64)>,
}

impl RollupDelta {
    /// Adds a case's delta at its area and every ancestor.
    pub fn add(&mut self, area_path: &str, delta: &MeasureDelta) {
        if delta.is_empty() {
            return;
        }
        let region = region_of(area_path);
        for org in path_codes(area_path) {
            for (day, c) in &delta.counters {
                self.counters
                    .entry((org.to_string(), *day))
                    .or_insert_with(|| (region.clone(), Counters::default()))
                    .1
                    .add(c);
            }
            for (key, n) in &delta.gauges {
                self.gauges
                    .entry((org.to_string(), key.as_str()))
                    .or_insert_with(|| (region.clone(), 0))
                    .1 += n;
            }
        }
    }

    /// Adds one org's counters of one day as they are (a row copied from another store).
    pub fn add_day(&mut self, org: &str, region: &str, day: NaiveDate, c: &Counters) {
        self.counters
            .entry((org.to_string(), day))
            .or_insert_with(|| (region.to_string(), Counters::default()))
            .1
            .add(c);
    }

    /// Prepares the statements for the rows to write: one statement per table, the rows
    /// as arrays (a write touches a handful of rows: the area and its ancestors, in key
    /// order). The day counters are also summed per month, for `rollup_months`, written in
    /// the same transaction as the days.
    pub async fn prepare(self, tx: &Transaction<'_>) -> R<RollupWrite> {
        let mut months: BTreeMap<(String, String), (String, Counters)> = BTreeMap::new();
        for ((org, day), (region, c)) in &self.counters {
            months
                .entry((org.clone(), month(*day)))
                .or_insert_with(|| (region.clone(), Counters::default()))
                .1
                .add(c);
        }
        let counters: Vec<CounterRow> = self
            .counters
            .into_iter()
            .filter(|(_, c)| !c.1.is_zero())
            .map(|((org, day), c)| ((org, day.to_string()), c))
            .collect();
        let months: Vec<CounterRow> = months.into_iter().filter(|(_, c)| !c.1.is_zero()).collect();
        let gauges: Vec<_> = self.gauges.into_iter().filter(|(_, g)| g.1 != 0).collect();
        let (counters_stmt, months_stmt, running_stmt) = if counters.is_empty() && months.is_empty()
        {
            (None, None, None)
        } else {
            (
                Some(tx.prepare_cached(UPSERT_COUNTERS).await?),
                Some(tx.prepare_cached(UPSERT_MONTHS).await?),
                Some(tx.prepare_cached(ADD_RUNNING).await?),
            )
        };
        let gauges_stmt = if gauges.is_empty() {
            None
        } else {
            Some(tx.prepare_cached(UPSERT_GAUGES).await?)
        };
        Ok(RollupWrite {
            counters,
            months,
            gauges,
            counters_stmt,
            months_stmt,
            running_stmt,
            gauges_stmt,
        })
    }
}

/// `((org, day or month), (region, counters))`.
type CounterRow = ((String, String), (String, Counters));
type GaugeRow = ((String, &'static str), (String, i64));

/// Rollup rows with their prepared statements, ready for a pipeline.
pub(crate) struct RollupWrite {
    counters: Vec<CounterRow>,
    months: Vec<CounterRow>,
    gauges: Vec<GaugeRow>,
    counters_stmt: Option<Statement>,
    months_stmt: Option<Statement>,
    running_stmt: Option<Statement>,
    gauges_stmt: Option<Statement>,
}

const UPSERT_COUNTERS: &str = "INSERT INTO rollup_counters (org, day, region, received,
        closed, closed_on_time, rework, rated, satisfied)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
        $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
    ON CONFLICT (org, day) DO UPDATE SET
        received = rollup_counters.received + excluded.received,
        closed = rollup_counters.closed + excluded.closed,
        closed_on_time = rollup_counters.closed_on_time + excluded.closed_on_time,
        rework = rollup_counters.rework + excluded.rework,
        rated = rollup_counters.rated + excluded.rated,
        satisfied = rollup_counters.satisfied + excluded.satisfied";

const UPSERT_MONTHS: &str = "INSERT INTO rollup_months (org, month, region, received,
        closed, closed_on_time, rework, rated, satisfied)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
        $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
    ON CONFLICT (org, month) DO UPDATE SET
        received = rollup_months.received + excluded.received,
        closed = rollup_months.closed + excluded.closed,
        closed_on_time = rollup_months.closed_on_time + excluded.closed_on_time,
        rework = rollup_months.rework + excluded.rework,
        rated = rollup_months.rated + excluded.rated,
        satisfied = rollup_months.satisfied + excluded.satisfied";

/// Adds day counters (rows in `(org, day)` order, as `UPSERT_COUNTERS` takes them) to the
/// running totals of their orgs (`rollup_running`, migration 0003): every row of an org on
/// or after a day gains that day's counters. A row is made at each day that has none,
/// holding the total before it plus the write's counters up to that day; the rows that
/// were there (the statement's snapshot, which does not see its own inserts) gain the
/// write's counters up to their day, each row once. Rollup writes of cases hold the chain
/// head lock, so no other write changes these rows meanwhile (a copy writes into a store
/// of its own).
const ADD_RUNNING: &str = "WITH d AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
            $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
            AS d (org, day, region, received, closed, closed_on_time, rework, rated, satisfied)
    ), c AS (
        -- `until`: the write's next day of the org ('9' sorts after every day).
        SELECT org, day, region, lead(day) OVER o AS until,
            sum(received) OVER w AS received, sum(closed) OVER w AS closed,
            sum(closed_on_time) OVER w AS closed_on_time, sum(rework) OVER w AS rework,
            sum(rated) OVER w AS rated, sum(satisfied) OVER w AS satisfied
        FROM d
        WINDOW o AS (PARTITION BY org ORDER BY day),
            w AS (PARTITION BY org ORDER BY day ROWS UNBOUNDED PRECEDING)
    ), made AS (
        INSERT INTO rollup_running (org, day, region, received, closed, closed_on_time,
            rework, rated, satisfied)
        SELECT c.org, c.day, c.region, coalesce(p.received, 0) + c.received,
            coalesce(p.closed, 0) + c.closed,
            coalesce(p.closed_on_time, 0) + c.closed_on_time,
            coalesce(p.rework, 0) + c.rework, coalesce(p.rated, 0) + c.rated,
            coalesce(p.satisfied, 0) + c.satisfied
        FROM c LEFT JOIN LATERAL (
            SELECT * FROM rollup_running r WHERE r.org = c.org AND r.day < c.day
            ORDER BY r.day DESC LIMIT 1
        ) AS p ON true
        ON CONFLICT (org, day) DO NOTHING
    )
    UPDATE rollup_running AS r SET
        received = r.received + c.received,
        closed = r.closed + c.closed,
        closed_on_time = r.closed_on_time + c.closed_on_time,
        rework = r.rework + c.rework,
        rated = r.rated + c.rated,
        satisfied = r.satisfied + c.satisfied
    FROM c
    WHERE r.org = c.org AND r.day >= c.day AND r.day < coalesce(c.until, '9')";

const UPSERT_GAUGES: &str = "INSERT INTO rollup_gauges (org, key, n, region)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
    ON CONFLICT (org, key) DO UPDATE SET n = rollup_gauges.n + excluded.n";

/// Pushes one counters upsert (`UPSERT_COUNTERS`, `UPSERT_MONTHS` or `ADD_RUNNING`) of the rows.
fn push_counters<'t>(
    tx: &'t Transaction<'_>,
    p: &mut Pipeline<'t>,
    stmt: Statement,
    rows: Vec<CounterRow>,
) {
    if rows.is_empty() {
        return;
    }
    let col =
        |f: fn(&Counters) -> i64| -> Vec<i64> { rows.iter().map(|(_, (_, c))| f(c)).collect() };
    let (received, closed, on_time) = (
        col(|c| c.received),
        col(|c| c.closed),
        col(|c| c.closed_on_time),
    );
    let (rework, rated, satisfied) = (col(|c| c.rework), col(|c| c.rated), col(|c| c.satisfied));
    let orgs: Vec<String> = rows.iter().map(|((o, _), _)| o.clone()).collect();
    let keys: Vec<String> = rows.iter().map(|((_, k), _)| k.clone()).collect();
    let regions: Vec<String> = rows.iter().map(|(_, (r, _))| r.clone()).collect();
    p.push(async move {
        tx.execute(
            &stmt,
            &[
                &orgs, &keys, &regions, &received, &closed, &on_time, &rework, &rated, &satisfied,
            ],
        )
        .await?;
        Ok(())
    });
}

impl RollupWrite {
    /// Pushes the upserts: the days, then their months, then the running totals (every
    /// writer in this order, so that concurrent transactions lock the rows in the same
    /// order), then the gauges.
    pub fn push<'t>(self, tx: &'t Transaction<'_>, p: &mut Pipeline<'t>) {
        // The running totals after the months, from the same day rows.
        let running = self.running_stmt.map(|stmt| (stmt, self.counters.clone()));
        if let Some(stmt) = self.counters_stmt {
            push_counters(tx, p, stmt, self.counters);
        }
        if let Some(stmt) = self.months_stmt {
            push_counters(tx, p, stmt, self.months);
        }
        if let Some((stmt, rows)) = running {
            push_counters(tx, p, stmt, rows);
        }
        if let Some(stmt) = self.gauges_stmt {
            let rows = self.gauges;
            let orgs: Vec<String> = rows.iter().map(|((o, _), _)| o.clone()).collect();
            let keys: Vec<&'static str> = rows.iter().map(|((_, k), _)| *k).collect();
            let ns: Vec<i64> = rows.iter().map(|(_, (_, n))| *n).collect();
            let regions: Vec<String> = rows.iter().map(|(_, (r, _))| r.clone()).collect();
            p.push(async move {
                tx.execute(&stmt, &[&orgs, &keys, &ns, &regions]).await?;
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_back() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(parse_number(&format_number(day, 42)), Some((day, 42)));
        assert_eq!(parse_number("DEMO-1"), None);
        assert_eq!(parse_number("20261123-x"), None);
    }
}
