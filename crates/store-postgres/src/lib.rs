//! The PostgreSQL store of gridloop: the same content and behaviour as the embedded SQLite
//! store, on a database server that several gridloop processes share.
//!
//! # Design
//!
//! - **Client.** `tokio-postgres` with a small `deadpool` pool per process for reads and
//!   the other writes, plus one connection of the writer's own. Connections use no TLS
//!   (`NoTls`): the server is expected on loopback or a trusted intranet. Put a TLS proxy in
//!   between otherwise.
//! - **Several processes, one database.** The hash chain is global, so appends are
//!   serialized across all processes on the `chain_head` row (`FOR UPDATE`), always taken
//!   after any case row lock (`FOR NO KEY UPDATE`): one fixed lock order everywhere, so
//!   writers never deadlock (module `cases`). A durable commit waits for the server's log
//!   flush, so one append per commit would bound the write rate by that latency.
//! - **Group commit, per process.** Case creations and updates go to one writer task per
//!   store (module `writer`), which takes every job queued at that moment into one
//!   transaction: it locks the case rows of all its updates (sorted by id), then the chain
//!   head, reads what its jobs need in the same round trip, runs each job's decision (at
//!   most once) in memory and sends its writes behind a SAVEPOINT of its own (so a job that
//!   fails rolls back alone), commits once, and only then answers every job. Other writes
//!   are one transaction each on the pool; bulk imports take the chain head themselves.
//!   Transactions that lose a race (serialization failure, deadlock) are run again a few
//!   times.
//! - **Integrity in the database.** Events are append-only by trigger; the recorded chain
//!   head reveals deleted newest events; foreign keys guard references.
//! - **Schema.** Versioned SQL files in `migrations/postgres/`, compiled in and applied at
//!   [`PgStore::connect`] under an advisory lock (module `schema`). Every table carries the
//!   region (the top-level org's code) as the column a distributed deployment would
//!   distribute by.
//! - **Attachments** live in a `bytea` column: servers share no local folder.
//! - **The overdue sweep** runs in one process at a time: [`Store::try_sweep_lock`] holds a
//!   session advisory lock on a connection of its own, released when the lock is dropped.

mod boundaries;
mod bulk;
mod cases;
mod copy;
mod db;
mod directory;
mod list;
mod schema;
mod writer;

use std::collections::HashMap;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
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
use tokio_postgres::{IsolationLevel, NoTls};

use crate::db::{R, RETRIES, is_retryable};

/// Connections per process: writes serialize on the chain head anyway, and reads are short.
const POOL_SIZE: usize = 16;

/// How long opening a connection may take (unless the URL says `connect_timeout`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The advisory lock the overdue sweep holds ("gridswep").
const SWEEP_LOCK: i64 = 0x6772_6964_7377_6570;

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Creations and updates, in batches with one commit each (module `writer`).
    writer: writer::Writer,
}

/// Runs `$body` (which may use `?` and `.await`) in a transaction on a pooled connection
/// bound to `$tx`, commits, and runs it all again when the transaction lost a race.
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:expr) => {{
        let mut attempt = 0;
        loop {
            let result: R<_> = async {
                let mut client = $store.client().await?;
                let $tx = client.transaction().await?;
                let value = $body;
                $tx.commit().await?;
                Ok(value)
            }
            .await;
            match result {
                Err(e) if is_retryable(&e) && attempt < RETRIES => attempt += 1,
                other => break other.map_err(StoreError::from),
            }
        }
    }};
}

/// Runs `$body` on a pooled connection bound to `$c` (a `tokio_postgres::Client`).
macro_rules! read {
    ($store:expr, $c:ident => $body:expr) => {{
        let result: R<_> = async {
            let client = $store.client().await?;
            let $c: &tokio_postgres::Client = &client;
            Ok($body)
        }
        .await;
        result.map_err(StoreError::from)
    }};
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`), creating a pool
    /// and migrating the schema.
    pub async fn connect(url: &str) -> Result<PgStore> {
        PgStore::connect_with(url, POOL_SIZE).await
    }

    /// [`PgStore::connect`] with a pool of `pool_size` connections.
    pub async fn connect_with(url: &str, pool_size: usize) -> Result<PgStore> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("not a PostgreSQL URL: {e}")))?;
        // An unreachable server is an error after a while, not a request hanging forever.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("gridloop");
        }
        let pool = make_pool(&config, pool_size)?;
        // The writer's connection, of its own: a pool of one opens it again when it breaks.
        let writer = writer::Writer::start(make_pool(&config, 1)?);
        let store = PgStore {
            pool,
            config,
            writer,
        };
        let mut client = store.client().await.map_err(StoreError::from)?;
        let version = schema::migrate(&mut client)
            .await
            .map_err(StoreError::from)?;
        tracing::info!(schema = version, "connected to the PostgreSQL store");
        Ok(store)
    }

    async fn client(&self) -> R<Object> {
        Ok(self.pool.get().await?)
    }
}

fn make_pool(config: &tokio_postgres::Config, size: usize) -> Result<Pool> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .build()
        .map_err(|e| StoreError::Backend(format!("cannot create the pool: {e}")))
}

#[async_trait]
impl Store for PgStore {
    // --- organisation -------------------------------------------------------------------
    async fn put_orgs(&self, orgs: Vec<Org>) -> Result<()> {
        in_tx!(self, tx => directory::put_orgs(&tx, &orgs).await?)
    }

    async fn org(&self, code: &str) -> Result<Option<Org>> {
        read!(self, c => directory::org(c, code).await?)
    }

    async fn orgs_in_subtree(&self, path: &str, with_boundary: bool) -> Result<Vec<Org>> {
        read!(self, c => directory::orgs_in_subtree(c, path, with_boundary).await?)
    }

    async fn child_orgs(&self, code: &str) -> Result<Vec<Org>> {
        read!(self, c => directory::child_orgs(c, code).await?)
    }

    async fn boundaries_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<Org>> {
        read!(self, c => boundaries::boundaries_page(c, after, limit).await?)
    }

    async fn first_org_of_level(&self, level: Level) -> Result<Option<Org>> {
        read!(self, c => directory::first_org_of_level(c, level).await?)
    }

    async fn put_tower_groups(&self, groups: Vec<TowerGroup>) -> Result<()> {
        in_tx!(self, tx => directory::put_tower_groups(&tx, &groups).await?)
    }

    async fn tower_groups(&self, path: &str) -> Result<Vec<TowerGroup>> {
        read!(self, c => directory::tower_groups(c, path).await?)
    }

    // --- people and keys ----------------------------------------------------------------
    async fn create_user(&self, user: NewUser) -> Result<User> {
        in_tx!(self, tx => directory::create_user(&tx, user.clone()).await?)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        read!(self, c => directory::user_by_username(c, username).await?)
    }

    async fn users_in_subtree(&self, path: &str) -> Result<Vec<User>> {
        read!(self, c => directory::users_in_subtree(c, path).await?)
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        in_tx!(self, tx => directory::create_session(&tx, token_hash, user_id, created_at, expires_at).await?)
    }

    async fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
        read!(self, c => directory::session(c, token_hash, now).await?)
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        read!(self, c => directory::delete_session(c, token_hash).await?)
    }

    async fn create_api_key(
        &self,
        name: &str,
        key_hash: &str,
        created_at: DateTime<Utc>,
    ) -> Result<ApiKey> {
        in_tx!(self, tx => directory::create_api_key(&tx, name, key_hash, created_at).await?)
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        read!(self, c => directory::api_key_by_hash(c, key_hash).await?)
    }

    // --- configuration ------------------------------------------------------------------
    async fn calendar_years(&self) -> Result<Vec<CalendarYear>> {
        read!(self, c => directory::calendar_years(c).await?)
    }

    async fn put_calendar_year(&self, year: &CalendarYear) -> Result<()> {
        read!(self, c => directory::put_calendar_year(c, year).await?)
    }

    async fn settings(&self) -> Result<Settings> {
        read!(self, c => directory::settings(c).await?)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        read!(self, c => directory::put_setting(c, key, value).await?)
    }

    // --- attachments --------------------------------------------------------------------
    /// The id and size are the store's: the SHA-256 and length of `bytes`, whatever `meta`
    /// says, so a record can never point at other content.
    async fn put_attachment(&self, meta: Attachment, bytes: Vec<u8>) -> Result<Attachment> {
        // Hashing a large video takes a while: off the async threads.
        let (meta, bytes) = tokio::task::spawn_blocking(move || {
            let id = directory::content_id(&bytes);
            let meta = Attachment {
                id,
                size: bytes.len() as u64,
                ..meta
            };
            (meta, bytes)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("hashing the attachment failed: {e}")))?;
        read!(self, c => directory::put_attachment(c, &meta, &bytes).await?)
    }

    async fn attachment(&self, id: &str) -> Result<Option<(Attachment, Vec<u8>)>> {
        read!(self, c => directory::attachment(c, id).await?)
    }

    // --- cases --------------------------------------------------------------------------
    async fn create_case(&self, req: CreateCase) -> Result<Created> {
        self.writer.create(req).await
    }

    async fn update_case(
        &self,
        id: i64,
        expected_version: Option<i64>,
        decide: CaseUpdate,
    ) -> Result<Case> {
        self.writer.update(id, expected_version, decide).await
    }

    async fn case(&self, id: i64) -> Result<Option<Case>> {
        read!(self, c => cases::load_case(c, id).await?)
    }

    async fn case_by_number(&self, number: &str) -> Result<Option<Case>> {
        read!(self, c => cases::case_by_number(c, number).await?)
    }

    async fn events(&self, case_id: i64) -> Result<Vec<Event>> {
        read!(self, c => cases::case_events(c, case_id).await?)
    }

    async fn list_cases(&self, filter: CaseFilter) -> Result<Page<Case>> {
        read!(self, c => list::list_cases(c, &filter).await?)
    }

    async fn due_cases(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<i64>> {
        read!(self, c => cases::due_cases(c, now, limit).await?)
    }

    async fn import_cases(&self, cases: Vec<ImportCase>) -> Result<()> {
        in_tx!(self, tx => cases::import_cases(&tx, &cases).await?)
    }

    async fn events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        read!(self, c => cases::events_between(c, from, to, limit).await?)
    }

    // --- channels -----------------------------------------------------------------------
    async fn create_night_visit(&self, visit: NightVisit) -> Result<NightVisit> {
        read!(self, c => directory::create_night_visit(c, visit).await?)
    }

    async fn night_visit(&self, id: i64) -> Result<Option<NightVisit>> {
        read!(self, c => directory::night_visit(c, id).await?)
    }

    async fn night_visits(
        &self,
        path: &str,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<NightVisit>> {
        read!(self, c => directory::night_visits(c, path, before_id, limit).await?)
    }

    async fn record_call(&self, call: HotlineCall) -> Result<HotlineCall> {
        read!(self, c => directory::record_call(c, call).await?)
    }

    async fn calls_from(&self, phone: &str, limit: u32) -> Result<Vec<HotlineCall>> {
        read!(self, c => directory::calls_from(c, phone, limit).await?)
    }

    // --- measures -----------------------------------------------------------------------
    async fn counters(
        &self,
        orgs: &[String],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HashMap<String, Counters>> {
        read!(self, c => directory::counters(c, orgs, from, to).await?)
    }

    async fn gauges(&self, orgs: &[String]) -> Result<HashMap<String, HashMap<String, i64>>> {
        read!(self, c => directory::gauges(c, orgs).await?)
    }

    async fn gauge(&self, orgs: &[String], key: &str) -> Result<HashMap<String, i64>> {
        read!(self, c => directory::gauge(c, orgs, key).await?)
    }

    // --- audit --------------------------------------------------------------------------
    async fn verify_chain(&self) -> Result<ChainReport> {
        let result: R<ChainReport> = async {
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let report = cases::verify(&tx).await?;
            tx.commit().await?;
            Ok(report)
        }
        .await;
        result.map_err(StoreError::from)
    }

    // --- operations ---------------------------------------------------------------------
    /// A session advisory lock on a connection of its own (not one of the pool's, which
    /// would keep the lock after being returned). Dropping the lock drops the connection,
    /// and the server releases the lock with the session.
    async fn try_sweep_lock(&self) -> Result<Option<SweepLock>> {
        let result: R<Option<SweepLock>> = async {
            let (client, connection) = self.config.connect(NoTls).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "the sweep lock's connection failed");
                }
            });
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&SWEEP_LOCK])
                .await?;
            let got: bool = db::get(&row, 0)?;
            if got {
                Ok(Some(SweepLock::new(SweepHolder {
                    _client: client,
                    _task: task,
                })))
            } else {
                Ok(None)
            }
        }
        .await;
        result.map_err(StoreError::from)
    }

    async fn export_records(&self, cursor: Option<String>, limit: u32) -> Result<Page<Record>> {
        let result: R<Page<Record>> = async {
            let client = self.client().await?;
            copy::export(&client, cursor.as_deref(), limit).await
        }
        .await;
        result.map_err(StoreError::from)
    }

    async fn import_records(&self, records: Vec<Record>) -> Result<()> {
        in_tx!(self, tx => copy::import(&tx, &records).await?)
    }
}

/// Keeps the sweep lock's connection open. Dropping the client ends the connection task,
/// which closes the session and so releases the advisory lock.
struct SweepHolder {
    _client: tokio_postgres::Client,
    _task: tokio::task::JoinHandle<()>,
}
