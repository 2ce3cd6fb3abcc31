//! The embedded SQLite store of gridloop: one file, `gridloop.db`, in the data directory,
//! plus the attachment files beside it.
//!
//! # Design
//!
//! - **One writer, group commit.** SQLite serializes writers, so one dedicated thread owns
//!   the only read-write connection. Every write (a case creation, an action, a login) is a
//!   job sent to it over a channel and answered through a oneshot. The writer takes all the
//!   jobs queued at that moment (up to 256) into *one* transaction, runs each inside its own
//!   SAVEPOINT (a failing job rolls back only itself), COMMITs once and only then answers.
//!   One fsync thus makes a whole batch durable: throughput grows with load instead of being
//!   capped by the disk's sync rate (module `writer`).
//! - **Readers in parallel.** A small pool of read-only connections serves reads on tokio's
//!   blocking threads. WAL mode gives each read a committed snapshot without blocking, or
//!   being blocked by, the writer.
//! - **Durability.** WAL with `synchronous = FULL`: a write is acknowledged only after its
//!   commit is synced, so it survives a crash of the process and a power failure alike.
//! - **Integrity in the database.** Events are append-only by trigger and form one hash chain
//!   whose head is recorded beside it; foreign keys are on.
//! - **Schema.** Versioned SQL files in `migrations/sqlite/`, compiled in and applied at
//!   [`SqliteStore::open`].
//!
//! A case row keeps the fields that are filtered or sorted on as indexed columns and the whole
//! domain case as a JSON document, stored compressed against a trained dictionary like the
//! events' details (module `codec`); measures are kept as rollups updated in the same
//! transaction as the case, so dashboards never scan cases. Case lists page by keyset and
//! pick their plan by the density of the caller's subtree (module `list`); the store never
//! runs ANALYZE, so that SQLite's plans stay the ones its tests check. Night visits and
//! hotline calls are plain rows beside the cases (module `channels`). A bulk import into an
//! empty store builds the secondary indexes once at its end (module `bulk`).

mod attachments;
mod boundaries;
mod bulk;
mod cases;
mod chain;
mod channels;
mod codec;
mod copy;
mod directory;
mod list;
mod readers;
mod rollups;
mod schema;
mod search;
mod sql;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use gridloop_domain::calendar::CalendarYear;
use gridloop_domain::case::Case;
use gridloop_domain::measures::Counters;
use gridloop_domain::org::{Level, Org};
use gridloop_domain::timeline::Event;
use gridloop_store::{
    ApiKey, Attachment, CaseFilter, CaseUpdate, ChainReport, CreateCase, Created, HotlineCall,
    ImportCase, NewUser, NightVisit, Page, Record, Result, Session, Settings, Store, StoreError,
    SweepLock, TowerGroup, User,
};

use crate::readers::Readers;
use crate::writer::Writer;

/// Read-only connections in the pool: enough to keep reads off each other's backs on a
/// small server without holding many file handles and page caches.
const READERS: usize = 4;

const DB_FILE: &str = "gridloop.db";
const ATTACHMENTS_DIR: &str = "attachments";

/// The SQLite store. Cheap to share behind an `Arc`; dropping it finishes the queued writes
/// and closes the database.
pub struct SqliteStore {
    // Field order is drop order: the readers close before the writer, whose connection, the
    // last one, then checkpoints the WAL into the database file.
    readers: Readers,
    writer: Writer,
    attachments: Arc<PathBuf>,
    sweep: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`: the directory, the database file
    /// `gridloop.db` with its schema migrated, and the `attachments/` folder.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            StoreError::Backend(format!("cannot {what} {}: {e}", p.display()))
        };
        std::fs::create_dir_all(data_dir).map_err(|e| io("create", data_dir, e))?;
        let attachments = data_dir.join(ATTACHMENTS_DIR);
        std::fs::create_dir_all(&attachments).map_err(|e| io("create", &attachments, e))?;

        let db = data_dir.join(DB_FILE);
        let mut conn = schema::open_writer(&db)?;
        let version = schema::migrate(&mut conn)?;
        // A bulk import that did not finish (a crash) left indexes aside: build them first.
        let rebuilt = bulk::end(&conn)?;
        if rebuilt > 0 {
            tracing::warn!(
                indexes = rebuilt,
                "built the indexes an unfinished bulk import had set aside"
            );
        }
        // Readers open after the writer has switched the file to WAL.
        let readers = (0..READERS)
            .map(|_| schema::open_reader(&db))
            .collect::<Result<Vec<_>>>()?;
        tracing::info!(db = %db.display(), schema = version, "opened the SQLite store");
        Ok(SqliteStore {
            readers: Readers::new(readers),
            writer: Writer::start(conn)?,
            attachments: Arc::new(attachments),
            sweep: Arc::default(),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    // --- organisation -------------------------------------------------------------------
    async fn put_orgs(&self, orgs: Vec<Org>) -> Result<()> {
        self.writer
            .run(move |c| directory::put_orgs(c, &orgs))
            .await
    }

    async fn org(&self, code: &str) -> Result<Option<Org>> {
        let code = code.to_string();
        self.readers.run(move |c| directory::org(c, &code)).await
    }

    async fn orgs_in_subtree(&self, path: &str, with_boundary: bool) -> Result<Vec<Org>> {
        let path = path.to_string();
        self.readers
            .run(move |c| directory::orgs_in_subtree(c, &path, with_boundary))
            .await
    }

    async fn child_orgs(&self, code: &str) -> Result<Vec<Org>> {
        let code = code.to_string();
        self.readers
            .run(move |c| directory::child_orgs(c, &code))
            .await
    }

    async fn boundaries_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<Org>> {
        let after = after.map(str::to_string);
        self.readers
            .run(move |c| boundaries::boundaries_page(c, after.as_deref(), limit))
            .await
    }

    async fn first_org_of_level(&self, level: Level) -> Result<Option<Org>> {
        self.readers
            .run(move |c| directory::first_org_of_level(c, level))
            .await
    }

    async fn put_tower_groups(&self, groups: Vec<TowerGroup>) -> Result<()> {
        self.writer
            .run(move |c| directory::put_tower_groups(c, &groups))
            .await
    }

    async fn tower_groups(&self, path: &str) -> Result<Vec<TowerGroup>> {
        let path = path.to_string();
        self.readers
            .run(move |c| directory::tower_groups(c, &path))
            .await
    }

    // --- people and keys ----------------------------------------------------------------
    async fn create_user(&self, user: NewUser) -> Result<User> {
        self.writer
            .run(move |c| directory::create_user(c, user))
            .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let username = username.to_string();
        self.readers
            .run(move |c| directory::user_by_username(c, &username))
            .await
    }

    async fn users_in_subtree(&self, path: &str) -> Result<Vec<User>> {
        let path = path.to_string();
        self.readers
            .run(move |c| directory::users_in_subtree(c, &path))
            .await
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let token_hash = token_hash.to_string();
        self.writer
            .run(move |c| {
                directory::create_session(c, &token_hash, user_id, created_at, expires_at)
            })
            .await
    }

    async fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
        let token_hash = token_hash.to_string();
        self.readers
            .run(move |c| directory::session(c, &token_hash, now))
            .await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let token_hash = token_hash.to_string();
        self.writer
            .run(move |c| directory::delete_session(c, &token_hash))
            .await
    }

    async fn create_api_key(
        &self,
        name: &str,
        key_hash: &str,
        created_at: DateTime<Utc>,
    ) -> Result<ApiKey> {
        let (name, key_hash) = (name.to_string(), key_hash.to_string());
        self.writer
            .run(move |c| directory::create_api_key(c, &name, &key_hash, created_at))
            .await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let key_hash = key_hash.to_string();
        self.readers
            .run(move |c| directory::api_key_by_hash(c, &key_hash))
            .await
    }

    // --- configuration ------------------------------------------------------------------
    async fn calendar_years(&self) -> Result<Vec<CalendarYear>> {
        self.readers.run(directory::calendar_years).await
    }

    async fn put_calendar_year(&self, year: &CalendarYear) -> Result<()> {
        let year = year.clone();
        self.writer
            .run(move |c| directory::put_calendar_year(c, &year))
            .await
    }

    async fn settings(&self) -> Result<Settings> {
        self.readers.run(directory::settings).await
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_string(), value.to_string());
        self.writer
            .run(move |c| directory::put_setting(c, &key, &value))
            .await
    }

    // --- attachments --------------------------------------------------------------------
    /// The id and size are the store's: the SHA-256 and length of `bytes`, whatever `meta`
    /// says, so a record can never point at other content.
    async fn put_attachment(&self, meta: Attachment, bytes: Vec<u8>) -> Result<Attachment> {
        let dir = self.attachments.clone();
        // Hash and write the file off the async threads and outside the writer, which must
        // not wait on a large file's fsync while other jobs queue up.
        let meta = tokio::task::spawn_blocking(move || {
            let id = attachments::content_id(&bytes);
            attachments::write_file(&dir, &id, &bytes)?;
            Ok::<_, StoreError>(Attachment {
                id,
                size: bytes.len() as u64,
                ..meta
            })
        })
        .await
        .map_err(|e| StoreError::Backend(format!("the attachment writer failed: {e}")))??;
        self.writer
            .run(move |c| attachments::insert_row(c, &meta))
            .await
    }

    async fn attachment(&self, id: &str) -> Result<Option<(Attachment, Vec<u8>)>> {
        let (id, dir) = (id.to_string(), self.attachments.clone());
        self.readers
            .run(move |c| attachments::read(c, &dir, &id))
            .await
    }

    // --- cases --------------------------------------------------------------------------
    async fn create_case(&self, req: CreateCase) -> Result<Created> {
        // Encoding happens here, on the caller's thread, not on the single writer.
        let req = cases::PreparedCreate::new(req)?;
        self.writer
            .run(move |c| cases::create_prepared(c, req))
            .await
    }

    async fn update_case(
        &self,
        id: i64,
        expected_version: Option<i64>,
        decide: CaseUpdate,
    ) -> Result<Case> {
        self.writer
            .run(move |c| cases::update_case(c, id, expected_version, decide))
            .await
    }

    async fn case(&self, id: i64) -> Result<Option<Case>> {
        self.readers.run(move |c| cases::load_case(c, id)).await
    }

    async fn case_by_number(&self, number: &str) -> Result<Option<Case>> {
        let number = number.to_string();
        self.readers
            .run(move |c| cases::case_by_number(c, &number))
            .await
    }

    async fn events(&self, case_id: i64) -> Result<Vec<Event>> {
        self.readers
            .run(move |c| chain::case_events(c, case_id))
            .await
    }

    async fn list_cases(&self, filter: CaseFilter) -> Result<Page<Case>> {
        self.readers
            .run(move |c| list::list_cases(c, &filter))
            .await
    }

    async fn due_cases(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<i64>> {
        self.readers
            .run(move |c| cases::due_cases(c, now, limit))
            .await
    }

    async fn import_cases(&self, cases: Vec<ImportCase>) -> Result<()> {
        // Thousands of cases to encode: off the async threads and off the writer, which
        // inserts each chunk while the next is encoded.
        let (encoder, writer) = cases::import_channels();
        let encoding = tokio::task::spawn_blocking(move || encoder.run(cases));
        let written = self
            .writer
            .run(move |c| cases::import_encoded(c, writer))
            .await;
        encoding
            .await
            .map_err(|e| StoreError::Backend(format!("encoding the import failed: {e}")))?;
        written
    }

    async fn begin_bulk_import(&self) -> Result<()> {
        let deferred = self.writer.run(bulk::begin).await?;
        tracing::info!(indexes = deferred, "bulk import: indexes set aside");
        Ok(())
    }

    async fn end_bulk_import(&self) -> Result<()> {
        let built = self.writer.run(bulk::end).await?;
        tracing::info!(indexes = built, "bulk import: indexes built");
        Ok(())
    }

    async fn events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        self.readers
            .run(move |c| chain::events_between(c, from, to, limit))
            .await
    }

    // --- channels -----------------------------------------------------------------------
    async fn create_night_visit(&self, visit: NightVisit) -> Result<NightVisit> {
        self.writer
            .run(move |c| channels::create_night_visit(c, visit))
            .await
    }

    async fn night_visit(&self, id: i64) -> Result<Option<NightVisit>> {
        self.readers
            .run(move |c| channels::night_visit(c, id))
            .await
    }

    async fn night_visits(
        &self,
        path: &str,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<NightVisit>> {
        let path = path.to_string();
        self.readers
            .run(move |c| channels::night_visits(c, &path, before_id, limit))
            .await
    }

    async fn record_call(&self, call: HotlineCall) -> Result<HotlineCall> {
        self.writer
            .run(move |c| channels::record_call(c, call))
            .await
    }

    async fn calls_from(&self, phone: &str, limit: u32) -> Result<Vec<HotlineCall>> {
        let phone = phone.to_string();
        self.readers
            .run(move |c| channels::calls_from(c, &phone, limit))
            .await
    }

    // --- measures -----------------------------------------------------------------------
    async fn counters(
        &self,
        orgs: &[String],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HashMap<String, Counters>> {
        let orgs = orgs.to_vec();
        self.readers
            .run(move |c| rollups::counters(c, &orgs, from, to))
            .await
    }

    async fn gauges(&self, orgs: &[String]) -> Result<HashMap<String, HashMap<String, i64>>> {
        let orgs = orgs.to_vec();
        self.readers.run(move |c| rollups::gauges(c, &orgs)).await
    }

    async fn gauge(&self, orgs: &[String], key: &str) -> Result<HashMap<String, i64>> {
        let (orgs, key) = (orgs.to_vec(), key.to_string());
        self.readers
            .run(move |c| rollups::gauge(c, &orgs, &key))
            .await
    }

    // --- audit --------------------------------------------------------------------------
    async fn verify_chain(&self) -> Result<ChainReport> {
        self.readers.run(chain::verify).await
    }

    // --- operations ---------------------------------------------------------------------
    async fn try_sweep_lock(&self) -> Result<Option<SweepLock>> {
        // One process owns the database file, so an in-process lock is enough.
        Ok(self.sweep.clone().try_lock_owned().ok().map(SweepLock::new))
    }

    async fn export_records(&self, cursor: Option<String>, limit: u32) -> Result<Page<Record>> {
        let attachments = self.attachments.clone();
        self.readers
            .run(move |c| copy::export(c, &attachments, cursor.as_deref(), limit))
            .await
    }

    async fn import_records(&self, records: Vec<Record>) -> Result<()> {
        let attachments = self.attachments.clone();
        self.writer
            .run(move |c| copy::import(c, &attachments, records))
            .await
    }
}
