//! Cases: the writes (create, update, bulk import) that run on the writer, and the point
//! reads. A case row keeps its indexed fields in columns; the whole case, its document, is
//! in `case_docs` under the same id (migration 0023).

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};

use chrono::{DateTime, NaiveDate, Utc};
use gridloop_domain::DomainError;
use gridloop_domain::case::{Case, Decision, format_number};
use gridloop_domain::timeline::NewEvent;
use gridloop_store::{CaseUpdate, CreateCase, Created, ImportCase, Result, StoreError};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::chain::{ChainHead, ChainLink, PreparedEvent};
use crate::codec::{self, Kind};
use crate::rollups::RollupDelta;
use crate::sql::{Db, collect, first, get, is_unique_violation, ms};

/// The columns of a case row, derived from the case. Built once per write.
struct CaseRow<'a> {
    case: &'a Case,
    status: &'static str,
    channel: &'static str,
    deadline: Option<i64>,
    due_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    lat: Option<f64>,
    lng: Option<f64>,
    /// The document as stored (compressed JSON, see [`codec`]).
    doc: Vec<u8>,
}

fn encode(case: &Case) -> Result<String> {
    serde_json::to_string(case)
        .map_err(|e| StoreError::Backend(format!("cannot encode case {}: {e}", case.id)))
}

impl<'a> CaseRow<'a> {
    fn new(case: &'a Case) -> Result<CaseRow<'a>> {
        CaseRow::with_json(case, &encode(case)?)
    }

    /// A row around the case's JSON document.
    fn with_json(case: &'a Case, json: &str) -> Result<CaseRow<'a>> {
        Ok(CaseRow::with_doc(
            case,
            codec::compress(Kind::Case, json.as_bytes())?,
        ))
    }

    /// A row around the case's document as stored.
    fn with_doc(case: &'a Case, doc: Vec<u8>) -> CaseRow<'a> {
        CaseRow {
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
        }
    }

    /// `?1..=?19` in the order of [`INSERT_CASE`] and [`UPDATE_CASE`].
    fn params(&self) -> [&dyn ToSql; 19] {
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
            &self.deadline,
            &c.overdue,
            &self.due_at,
            &self.created_at,
            &self.updated_at,
            &self.lat,
            &self.lng,
            &c.source_key,
            &c.visit_id,
        ]
    }
}

const INSERT_CASE: &str = "INSERT INTO cases (id, number, status, version, channel, category,
        area_path, org_path, created_by, reporter_phone, deadline, overdue, due_at,
        created_at, updated_at, lat, lng, source_key, visit_id)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
        ?19)";

// The id and number of a case never change: ?2 (the number) is bound but unused, so that
// both statements share one parameter list.
const UPDATE_CASE: &str = "UPDATE cases SET status = ?3, version = ?4, channel = ?5,
        category = ?6, area_path = ?7, org_path = ?8, created_by = ?9, reporter_phone = ?10,
        deadline = ?11, overdue = ?12, due_at = ?13, created_at = ?14, updated_at = ?15,
        lat = ?16, lng = ?17, source_key = ?18, visit_id = ?19
    WHERE id = ?1";

const INSERT_DOC: &str = "INSERT INTO case_docs (id, doc) VALUES (?1, ?2)";
const UPDATE_DOC: &str = "UPDATE case_docs SET doc = ?2 WHERE id = ?1";

/// The case in a `case_docs.doc` column read at `idx`, compressed or, if written before
/// compression, plain JSON.
pub(crate) fn doc_at(r: &Row<'_>, idx: usize, id: i64) -> Result<Case> {
    let json = codec::decode(Kind::Case, r.get_ref(idx).db()?)?;
    serde_json::from_slice(&json)
        .map_err(|e| StoreError::Backend(format!("the stored case {id} is corrupt: {e}")))
}

pub(crate) fn load_case(conn: &Connection, id: i64) -> Result<Option<Case>> {
    let mut stmt = conn
        .prepare_cached("SELECT doc FROM case_docs WHERE id = ?1")
        .db()?;
    first(stmt.query([id]).db()?, |r| doc_at(r, 0, id))
}

pub(crate) fn case_by_number(conn: &Connection, number: &str) -> Result<Option<Case>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT cases.id, case_docs.doc FROM cases
             JOIN case_docs ON case_docs.id = cases.id WHERE number = ?1",
        )
        .db()?;
    first(stmt.query([number]).db()?, |r| doc_at(r, 1, get(r, 0)?))
}

/// `due_at IS NOT NULL` lets SQLite use the partial index on `due_at`.
const DUE_CASES: &str = "SELECT id FROM cases WHERE due_at IS NOT NULL AND due_at <= ?1
    ORDER BY due_at, id LIMIT ?2";

/// Ids of cases due at `now`, earliest first.
pub(crate) fn due_cases(conn: &Connection, now: DateTime<Utc>, limit: u32) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(DUE_CASES).db()?;
    collect(stmt.query(params![ms(now), limit]).db()?, |r| get(r, 0))
}

/// The next id: the writer is the only one inserting, so max + 1 inside its transaction
/// cannot collide, and the id is known before the row (and its document) is written.
fn next_case_id(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM cases")
        .db()?
        .query_row([], |r| r.get(0))
        .db()
}

pub(crate) fn insert_case(conn: &Connection, case: &Case) -> Result<()> {
    insert_row(conn, &CaseRow::new(case)?)
}

fn insert_row(conn: &Connection, row: &CaseRow<'_>) -> Result<()> {
    insert_with(&mut Inserts::prepare(conn)?, row)
}

/// The statements that write a new case: its row, its document, its search terms.
struct Inserts<'c> {
    row: rusqlite::CachedStatement<'c>,
    doc: rusqlite::CachedStatement<'c>,
    search: rusqlite::CachedStatement<'c>,
}

impl Inserts<'_> {
    fn prepare(conn: &Connection) -> Result<Inserts<'_>> {
        Ok(Inserts {
            row: conn.prepare_cached(INSERT_CASE).db()?,
            doc: conn.prepare_cached(INSERT_DOC).db()?,
            search: conn.prepare_cached(crate::search::INSERT).db()?,
        })
    }
}

/// Inserts `row`, its document and its search terms: the one way a case is written, so
/// that none misses its document or the search index. The terms come from the case in hand
/// (the trigger before read them back from the compressed document).
fn insert_with(stmts: &mut Inserts<'_>, row: &CaseRow<'_>) -> Result<()> {
    let case = row.case;
    match stmts.row.execute(&row.params()[..]) {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate(format!(
                "case number {} already exists",
                case.number
            )));
        }
        Err(e) => return Err(StoreError::Backend(e.to_string())),
    }
    stmts.doc.execute(params![case.id, row.doc]).db()?;
    let terms = crate::search::terms(&[&case.number, &case.title, &case.description]);
    crate::search::index(&mut stmts.search, case.id, terms)
}

/// Hands out the next number of a local day.
fn next_number(conn: &Connection, day: NaiveDate) -> Result<String> {
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO case_numbers (day, last_seq) VALUES (?1, 1)
             ON CONFLICT (day) DO UPDATE SET last_seq = last_seq + 1
             RETURNING last_seq",
        )
        .db()?
        .query_row([day.to_string()], |r| r.get(0))
        .db()?;
    let seq = u64::try_from(seq)
        .map_err(|_| StoreError::Backend(format!("case number counter of {day} is {seq}")))?;
    Ok(format_number(day, seq))
}

/// The day and sequence of a number in the [`format_number`] format (`YYYYMMDD-NNNNNN`).
fn parse_number(number: &str) -> Option<(NaiveDate, i64)> {
    let (day, seq) = number.split_once('-')?;
    let day = NaiveDate::parse_from_str(day, "%Y%m%d").ok()?;
    let seq = seq.parse::<i64>().ok().filter(|s| *s > 0)?;
    Some((day, seq))
}

/// A new case made ready before its write job: the document encoded but for its identity,
/// the events encoded, the measures summed. The writer, which runs one job at a time for the
/// whole store, is left with what must be serial: the id and number, the chain, the inserts.
pub(crate) struct PreparedCase {
    case: Case,
    /// The document after `{"id":…,"number":…`, which the writer assigns.
    doc_tail: String,
    events: Vec<PreparedEvent>,
}

/// How a case document starts: `Case` serializes `id` and `number` first.
fn identity(id: i64, number: &str) -> Result<String> {
    let number = serde_json::to_string(number)
        .map_err(|e| StoreError::Backend(format!("cannot encode case number: {e}")))?;
    Ok(format!("{{\"id\":{id},\"number\":{number}"))
}

impl PreparedCase {
    pub fn new(case: Case, events: Vec<NewEvent>) -> Result<PreparedCase> {
        let mut doc = encode(&case)?;
        let head = identity(case.id, &case.number)?;
        if !doc.starts_with(&head) {
            return Err(StoreError::Backend(
                "a case document does not start with its id and number".into(),
            ));
        }
        let doc_tail = doc.split_off(head.len());
        let events = events
            .into_iter()
            .map(PreparedEvent::new)
            .collect::<Result<_>>()?;
        Ok(PreparedCase {
            case,
            doc_tail,
            events,
        })
    }

    /// Inserts the case under `id` (and `number`, when given) with its events on the chain.
    fn insert(
        mut self,
        conn: &Connection,
        head: &mut ChainHead,
        id: i64,
        number: Option<String>,
    ) -> Result<Case> {
        self.case.id = id;
        if let Some(n) = number {
            self.case.number = n;
        }
        let mut doc = identity(id, &self.case.number)?;
        doc.push_str(&self.doc_tail);
        insert_row(conn, &CaseRow::with_json(&self.case, &doc)?)?;
        head.link()?.link(id, &mut self.events)?;
        head.append_linked(conn, id, &self.events)?;
        Ok(self.case)
    }
}

/// A [`CreateCase`] made ready off the writer.
pub(crate) struct PreparedCreate {
    case: PreparedCase,
    rollups: RollupDelta,
    number_day: NaiveDate,
    idempotency: Option<gridloop_store::IdempotencyKey>,
}

impl PreparedCreate {
    pub fn new(req: CreateCase) -> Result<PreparedCreate> {
        let Decision {
            case,
            events,
            measures,
        } = req.decision;
        let mut rollups = RollupDelta::default();
        rollups.add(&case.area_path, &measures);
        Ok(PreparedCreate {
            case: PreparedCase::new(case, events)?,
            rollups,
            number_day: req.number_day,
            idempotency: req.idempotency,
        })
    }
}

pub(crate) fn create_prepared(conn: &Connection, req: PreparedCreate) -> Result<Created> {
    if let Some(k) = &req.idempotency {
        let seen: Option<(String, i64)> = conn
            .prepare_cached(
                "SELECT fingerprint, case_id FROM idempotency WHERE scope = ?1 AND key = ?2",
            )
            .db()?
            .query_row(params![k.scope, k.key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .db()?;
        if let Some((fingerprint, case_id)) = seen {
            if fingerprint != k.fingerprint {
                return Err(StoreError::IdempotencyMismatch);
            }
            let case = load_case(conn, case_id)?.ok_or_else(|| {
                StoreError::Backend(format!("idempotency key refers to missing case {case_id}"))
            })?;
            return Ok(Created {
                case,
                replayed: true,
            });
        }
    }

    let id = next_case_id(conn)?;
    let number = next_number(conn, req.number_day)?;
    let mut head = ChainHead::load(conn)?;
    let case = req.case.insert(conn, &mut head, id, Some(number))?;
    head.save(conn)?;
    req.rollups.write(conn)?;

    if let Some(k) = &req.idempotency {
        conn.prepare_cached(
            "INSERT INTO idempotency (scope, key, fingerprint, case_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .db()?
        .execute(params![
            k.scope,
            k.key,
            k.fingerprint,
            case.id,
            ms(case.created_at)
        ])
        .db()?;
    }
    Ok(Created {
        case,
        replayed: false,
    })
}

pub(crate) fn update_case(
    conn: &Connection,
    id: i64,
    expected_version: Option<i64>,
    decide: CaseUpdate,
) -> Result<Case> {
    let before = load_case(conn, id)?.ok_or(StoreError::NotFound)?;
    if let Some(expected) = expected_version
        && expected != before.version
    {
        return Err(StoreError::VersionConflict {
            expected,
            current: before.version,
        });
    }
    let Decision {
        mut case,
        events,
        measures,
    } = decide(&before).map_err(StoreError::Domain)?;
    // The row's identity is the store's, whatever the closure returned.
    case.id = before.id;
    case.number.clone_from(&before.number);

    // A reveal leaves the case as it was: only its event is written.
    if case != before {
        let row = CaseRow::new(&case)?;
        conn.prepare_cached(UPDATE_CASE)
            .db()?
            .execute(&row.params()[..])
            .db()?;
        conn.prepare_cached(UPDATE_DOC)
            .db()?
            .execute(params![case.id, row.doc])
            .db()?;
    }
    let mut head = ChainHead::load(conn)?;
    head.append(conn, id, None, &events)?;
    head.save(conn)?;

    let mut rollups = RollupDelta::default();
    rollups.add(&case.area_path, &measures);
    rollups.write(conn)?;
    Ok(case)
}

/// The writer's page cache once it has imported (512 MiB).
const IMPORT_CACHE_KIB: i64 = 512 * 1024;

/// Cases per chunk of an import: the encoder hands the writer one chunk while it encodes
/// the next, so that the writer's first wait of each import is short.
const IMPORT_CHUNK: usize = 500;
/// Encoded chunks waiting for the writer.
const IMPORT_CHUNKS_AHEAD: usize = 2;

/// What the encoder of an import hands the writer: chunks of rows, then the sums.
pub(crate) enum ImportPart {
    Rows(Vec<ImportRow>),
    /// The end of the import: its measures summed per row, and the numbers it took per day
    /// (so the live counter continues after them).
    End {
        rollups: RollupDelta,
        last_seq: BTreeMap<NaiveDate, i64>,
    },
}

/// A finished historic case encoded under the id it will take: the writer only inserts.
pub(crate) struct ImportRow {
    case: Case,
    doc: Vec<u8>,
    events: Vec<PreparedEvent>,
}

/// Where an import's writer job starts: the first case's id and the end of the chain,
/// after which the encoder numbers and hashes the cases and events in order.
pub(crate) struct ImportStart {
    next_id: i64,
    chain: ChainLink,
}

/// The channels between an import's encoder and its writer job.
pub(crate) fn import_channels() -> (ImportEncoder, ImportWriter) {
    let (start_tx, start_rx) = std::sync::mpsc::sync_channel(1);
    let (parts_tx, parts_rx) = std::sync::mpsc::sync_channel(IMPORT_CHUNKS_AHEAD);
    let (spent_tx, spent_rx) = std::sync::mpsc::channel();
    (
        ImportEncoder {
            start: start_rx,
            parts: parts_tx,
            spent: spent_rx,
        },
        ImportWriter {
            start: start_tx,
            parts: parts_rx,
            spent: spent_tx,
        },
    )
}

pub(crate) struct ImportEncoder {
    start: Receiver<ImportStart>,
    parts: SyncSender<Result<ImportPart>>,
    /// Chunks the writer has inserted, freed here: freeing thousands of cases' strings
    /// was a tenth of the writer's time.
    spent: Receiver<Vec<ImportRow>>,
}

pub(crate) struct ImportWriter {
    start: SyncSender<ImportStart>,
    parts: Receiver<Result<ImportPart>>,
    spent: Sender<Vec<ImportRow>>,
}

impl ImportEncoder {
    /// Encodes `cases` (events, measures, then documents) on a thread of its own while the
    /// writer inserts the chunks before. Everything but the documents and the chain is
    /// encoded at once, before the writer's job has started (while it finishes the import
    /// before, say); the documents hold their ids and the events' hashes the chain's end, so
    /// a chunk is finished and handed over only once the job has said where it starts.
    /// Stops when the writer's job has (an error there).
    pub fn run(self, cases: Vec<ImportCase>) {
        let mut rollups = RollupDelta::default();
        let mut last_seq: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        // The next case's id and the chain's end, once known.
        let mut next: Option<ImportStart> = None;
        // Chunks waiting for their ids, oldest first.
        let mut waiting: VecDeque<Vec<ImportRow>> = VecDeque::new();
        let mut cases = cases.into_iter().peekable();
        loop {
            self.spent.try_iter().for_each(drop);
            if next.is_none() {
                match self.start.try_recv() {
                    Ok(start) => next = Some(start),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if let Some(start) = &mut next {
                while let Some(rows) = waiting.pop_front() {
                    if !hand_over(&self.parts, rows, start) {
                        return;
                    }
                }
            }
            if cases.peek().is_none() {
                break;
            }
            let mut rows = Vec::with_capacity(IMPORT_CHUNK);
            for c in cases.by_ref().take(IMPORT_CHUNK) {
                match prepare_import(c, &mut rollups, &mut last_seq) {
                    Ok(row) => rows.push(row),
                    Err(e) => {
                        let _ = self.parts.send(Err(e));
                        return;
                    }
                }
            }
            waiting.push_back(rows);
        }
        if !waiting.is_empty() {
            let Some(mut start) = next.or_else(|| self.start.recv().ok()) else {
                return;
            };
            for rows in waiting {
                if !hand_over(&self.parts, rows, &mut start) {
                    return;
                }
            }
        }
        let _ = self.parts.send(Ok(ImportPart::End { rollups, last_seq }));
        // Until the writer's job is over.
        self.spent.iter().for_each(drop);
    }
}

/// Gives a chunk its ids from `start` on, links its events to the chain, compresses its
/// documents and sends it to the writer; false when the import is over (an error here
/// or there).
fn hand_over(
    parts: &SyncSender<Result<ImportPart>>,
    mut rows: Vec<ImportRow>,
    start: &mut ImportStart,
) -> bool {
    let mut finished = Ok(());
    for r in &mut rows {
        r.case.id = start.next_id;
        start.next_id += 1;
        let encoded = start
            .chain
            .link(r.case.id, &mut r.events)
            .and_then(|()| compress_case(&r.case));
        match encoded {
            Ok(doc) => r.doc = doc,
            Err(e) => {
                finished = Err(e);
                break;
            }
        }
    }
    let failed = finished.is_err();
    parts
        .send(finished.map(|()| ImportPart::Rows(rows)))
        .is_ok()
        && !failed
}

/// An imported case made ready but for its id and so its document: its events encoded,
/// its measures and number counted.
fn prepare_import(
    c: ImportCase,
    rollups: &mut RollupDelta,
    last_seq: &mut BTreeMap<NaiveDate, i64>,
) -> Result<ImportRow> {
    let ImportCase {
        case,
        events,
        measures,
    } = c;
    if case.number.is_empty() {
        return Err(StoreError::Domain(DomainError::invalid(
            "number",
            "an imported case needs its number",
        )));
    }
    if let Some((day, seq)) = parse_number(&case.number) {
        let last = last_seq.entry(day).or_default();
        *last = (*last).max(seq);
    }
    rollups.add(&case.area_path, &measures);
    let events = events
        .into_iter()
        .map(PreparedEvent::new)
        .collect::<Result<_>>()?;
    Ok(ImportRow {
        case,
        doc: Vec::new(),
        events,
    })
}

thread_local! {
    /// The buffer [`compress_case`] writes a document's JSON in, reused case after case.
    static DOC_JSON: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The document as stored, as [`CaseRow::new`] makes it (the same JSON, compressed),
/// without a new string grown for each case.
fn compress_case(case: &Case) -> Result<Vec<u8>> {
    DOC_JSON.with(|json| {
        let mut json = json.borrow_mut();
        json.clear();
        serde_json::to_writer(&mut *json, case)
            .map_err(|e| StoreError::Backend(format!("cannot encode case {}: {e}", case.id)))?;
        let doc = codec::compress(Kind::Case, &json);
        codec::let_go_if_large(&mut json);
        doc
    })
}

/// Writes finished historic cases as its encoder hands them over: fresh ids, their own
/// numbers, events on the chain in order, measures written once per row at the end. One
/// write job, so the import is all or nothing.
pub(crate) fn import_encoded(conn: &Connection, import: ImportWriter) -> Result<()> {
    let stopped = || StoreError::Backend("the import's encoder stopped before its end".into());
    // Bulk imports (the demo's and the benchmark's seeding) insert into every index at
    // random places; with the server's cache the writer rereads index pages from the OS for
    // most rows. Only processes that import pay for the larger cache.
    conn.prepare_cached(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))
        .db()?
        .execute([])
        .db()?;
    let mut head = ChainHead::load(conn)?;
    import
        .start
        .send(ImportStart {
            next_id: next_case_id(conn)?,
            chain: head.link()?,
        })
        .map_err(|_| stopped())?;
    // Prepared once for the import, not looked up by its text for every case.
    let mut inserts = Inserts::prepare(conn)?;
    loop {
        match import.parts.recv().map_err(|_| stopped())?? {
            ImportPart::Rows(mut rows) => {
                for r in &mut rows {
                    insert_with(
                        &mut inserts,
                        &CaseRow::with_doc(&r.case, std::mem::take(&mut r.doc)),
                    )?;
                    head.append_linked(conn, r.case.id, &r.events)?;
                }
                let _ = import.spent.send(rows);
            }
            ImportPart::End { rollups, last_seq } => {
                head.save(conn)?;
                if crate::bulk::active(conn)? {
                    rollups.stage_days(conn)?;
                } else {
                    rollups.write(conn)?;
                }
                let mut bump = conn
                    .prepare_cached(
                        "INSERT INTO case_numbers (day, last_seq) VALUES (?1, ?2)
                         ON CONFLICT (day) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
                    )
                    .db()?;
                for (day, seq) in last_seq {
                    bump.execute(params![day.to_string(), seq]).db()?;
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_reads_only_due_cases() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let plan: String = conn
            .query_row(&format!("EXPLAIN QUERY PLAN {DUE_CASES}"), [0, 10], |r| {
                r.get(3)
            })
            .unwrap();
        // The index alone, in order: no table rows, no sort.
        assert_eq!(
            plan,
            "SEARCH cases USING COVERING INDEX cases_due_at (due_at>? AND due_at<?)"
        );
    }

    #[test]
    fn numbers_parse_back() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(parse_number(&format_number(day, 42)), Some((day, 42)));
        assert_eq!(parse_number("20261123-1234567"), Some((day, 1_234_567)));
        assert_eq!(parse_number("DEMO-1"), None);
        assert_eq!(parse_number("20261123-x"), None);
    }
}
