//! The storage interface of gridloop.
//!
//! Every store (SQLite embedded, PostgreSQL) implements [`Store`]. The interface is narrow
//! on purpose: it persists what the domain decided, atomically, and answers the few
//! queries the product needs. It holds no business rule: a store never decides whether an
//! action is allowed; it runs the caller's decision closure inside its write transaction
//! and writes the result (case row, events on the hash chain, rollups) all together or not
//! at all.

pub mod cursor;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use gridloop_domain::DomainError;
use gridloop_domain::calendar::CalendarYear;
use gridloop_domain::case::{Case, Channel, Decision, Status};
use gridloop_domain::measures::Counters;
use gridloop_domain::org::{Level, Org};
use gridloop_domain::role::Role;
use gridloop_domain::timeline::{ChainBreak, Event};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// `expected_version` did not match the stored version.
    #[error("the case has changed: expected version {expected}, current version {current}")]
    VersionConflict { expected: i64, current: i64 },
    /// The decision closure refused.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A unique value (username, org code, API key name) already exists.
    #[error("{0}")]
    Duplicate(String),
    /// An `Idempotency-Key` was reused for a different request.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyMismatch,
    /// Anything the backend reports: I/O, corruption, a full disk. Never bad input.
    #[error("storage error: {0}")]
    Backend(String),
}

/// A login: its user and when it ends. Neither changes while it lasts (users are never
/// edited; a session ends by logout or expiry), which lets a server keep it a while.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user: User,
    pub expires_at: DateTime<Utc>,
}

/// A user with the secrets a store keeps for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub org: String,
    pub org_path: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// The org code; the store resolves its path and fails with NotFound if absent.
    pub org: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A three-level tower group (塔群): a party-building combat unit tied to an org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TowerGroup {
    pub code: String,
    pub name: String,
    /// 1, 2 or 3.
    pub tier: u8,
    /// The tower group one tier up, for tiers 2 and 3.
    pub parent: Option<String>,
    /// The org the group covers (a community or village for tier 1, a grid for 2, a unit for 3).
    pub org: String,
    pub org_path: String,
    pub commander_name: String,
    pub commander_phone: Option<String>,
    pub members: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub key_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A stored file (photo, video) and its metadata. Content-addressed by SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The hex SHA-256 of the content.
    pub id: String,
    pub content_type: String,
    pub size: u64,
    pub uploaded_by: String,
    pub created_at: DateTime<Utc>,
}

/// An idempotent create: the same `(scope, key)` with the same `fingerprint` returns the
/// first result; with a different fingerprint it is an error.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// Who may replay the key: a username, or `public` for residents.
    pub scope: String,
    pub key: String,
    /// A hash of the request body.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct CreateCase {
    /// From [`gridloop_domain::case::new_case`]; the store fills in `id` and `number`.
    pub decision: Decision,
    /// The local day that prefixes the case number.
    pub number_day: NaiveDate,
    pub idempotency: Option<IdempotencyKey>,
}

#[derive(Debug, Clone)]
pub struct Created {
    pub case: Case,
    /// True when an idempotent retry returned the earlier case.
    pub replayed: bool,
}

/// The decision made inside the write transaction, from the case as it is stored now.
pub type CaseUpdate =
    Box<dyn FnOnce(&Case) -> std::result::Result<Decision, DomainError> + Send + 'static>;

/// Who is asking: cases are visible when their responsible org or their area lies in the
/// subtree at `path`, or when `username` reported them.
#[derive(Debug, Clone)]
pub struct Visibility {
    pub path: String,
    pub username: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseSort {
    /// Newest first (by id).
    #[default]
    Newest,
    /// Earliest deadline first; cases without a deadline last.
    Deadline,
    /// Most recently changed first.
    Updated,
}

#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// `None` only for internal callers that see everything.
    pub visible_to: Option<Visibility>,
    /// Any of these statuses (empty: all).
    pub statuses: Vec<Status>,
    /// Responsible org in this subtree.
    pub org_path: Option<String>,
    /// Area (属地) in this subtree.
    pub area_path: Option<String>,
    pub overdue: Option<bool>,
    pub channel: Option<Channel>,
    pub category: Option<String>,
    /// Substring of number, title or description (Chinese or not).
    pub q: Option<String>,
    /// The reporter's normalized phone number (hotline lookups).
    pub reporter_phone: Option<String>,
    /// Only these ids (Open311 `service_request_id` lists).
    pub ids: Vec<i64>,
    /// Any of these categories (Open311 `service_code` lists); empty: all.
    pub categories: Vec<String>,
    /// Reported at or after / before (exclusive) these instants.
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// Cases joined by the same source (a camera and alert type).
    pub source_key: Option<String>,
    /// Concerns raised on one night visit.
    pub visit_id: Option<i64>,
    /// Located within this box (WGS-84), for nearby-duplicate checks.
    pub within: Option<BBox>,
    pub sort: CaseSort,
    /// 1..=200.
    pub limit: u32,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A latitude/longitude box, inclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub min_lat: f64,
    pub min_lng: f64,
    pub max_lat: f64,
    pub max_lng: f64,
}

impl BBox {
    /// The box around a point reaching `metres` in every direction.
    pub fn around(lat: f64, lng: f64, metres: f64) -> BBox {
        let dlat = metres / 111_320.0;
        let dlng = metres / (111_320.0 * lat.to_radians().cos().max(0.01));
        BBox {
            min_lat: lat - dlat,
            min_lng: lng - dlng,
            max_lat: lat + dlat,
            max_lng: lng + dlng,
        }
    }
}

/// A night visit (夜访日记): who went where, whom they met, what they heard. Each concern
/// raised becomes a case with `visit_id` set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NightVisit {
    /// 0 when new; the store assigns it.
    pub id: i64,
    /// The org visited (a community or grid).
    pub org: String,
    pub org_path: String,
    /// The night-visit group (夜访组).
    pub group_name: String,
    pub leader: String,
    pub visited_at: DateTime<Utc>,
    pub place: String,
    pub households: u32,
    pub people_met: u32,
    pub notes: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A hotline call taken by an operator (热线受理记录).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotlineCall {
    /// 0 when new; the store assigns it.
    pub id: i64,
    /// Normalized caller number.
    pub phone: String,
    pub operator: String,
    /// The operator's org (for jurisdiction of the call log).
    pub org_path: String,
    pub at: DateTime<Utc>,
    pub summary: String,
    /// The case the call opened or followed, if any.
    pub case_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The result of checking the whole hash chain.
#[derive(Debug, Clone)]
pub struct ChainReport {
    pub checked: u64,
    pub first_break: Option<ChainBreak>,
}

/// A finished historic case for bulk loading (demo city, benchmarks): the final case (with
/// `id` 0 and its `number` set), all its events in order, and the summed measure deltas.
#[derive(Debug, Clone)]
pub struct ImportCase {
    pub case: Case,
    pub events: Vec<gridloop_domain::timeline::NewEvent>,
    pub measures: gridloop_domain::measures::MeasureDelta,
}

/// A store-level setting (key/value), e.g. the intake org.
pub type Settings = HashMap<String, String>;

/// Held while one overdue sweep pass runs; dropping it lets another process sweep. Several
/// server processes on one database thus never sweep at the same time.
pub struct SweepLock {
    _holder: Box<dyn Send + Sync>,
}

impl SweepLock {
    /// Wraps whatever keeps the lock (a mutex guard, a database connection holding an
    /// advisory lock); the lock is released when that is dropped.
    pub fn new(holder: impl Send + Sync + 'static) -> SweepLock {
        SweepLock {
            _holder: Box::new(holder),
        }
    }
}

impl std::fmt::Debug for SweepLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SweepLock")
    }
}

/// An idempotency key as stored, with the case it created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    pub case_id: i64,
    pub created_at: DateTime<Utc>,
}

/// One piece of a store's content, exactly as stored, for moving a deployment from one store
/// to another (`gridloop copy`). Ids, numbers and the events' hashes are kept, so the chain
/// verifies after the move. Sessions are not carried over: users log in again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Org(Org),
    TowerGroup(TowerGroup),
    User(User),
    ApiKey(ApiKey),
    CalendarYear(CalendarYear),
    Setting {
        key: String,
        value: String,
    },
    Attachment {
        meta: Attachment,
        bytes: Vec<u8>,
    },
    NightVisit(NightVisit),
    /// The case as stored (with its id, number and version).
    Case(Box<Case>),
    Idempotency(IdempotencyRecord),
    /// The last case number handed out on a local day.
    CaseNumber {
        day: NaiveDate,
        last_seq: i64,
    },
    /// An event with its place in the chain and its hashes.
    Event(Event),
    HotlineCall(HotlineCall),
    /// Counters of one org on one local day.
    Counters {
        org: String,
        day: NaiveDate,
        counters: Counters,
    },
    Gauge {
        org: String,
        key: String,
        n: i64,
    },
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- organisation -------------------------------------------------------------------
    /// Inserts or replaces orgs (by code). Parents must exist or come earlier in the list.
    async fn put_orgs(&self, orgs: Vec<Org>) -> Result<()>;
    async fn org(&self, code: &str) -> Result<Option<Org>>;
    /// Orgs in the subtree at `path` (itself included), sorted by path. Boundaries only when
    /// asked for.
    async fn orgs_in_subtree(&self, path: &str, with_boundary: bool) -> Result<Vec<Org>>;
    /// Direct children of an org, sorted by code, without their boundaries.
    async fn child_orgs(&self, code: &str) -> Result<Vec<Org>>;
    /// Orgs with a boundary, with it, sorted by code: the first `limit` after the code
    /// `after` (from the start when `None`). For building the routing index a page at a
    /// time; pass the last code of a page to get the next one.
    async fn boundaries_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<Org>>;
    /// The org of a level nearest the root (e.g. the only street), for defaults.
    async fn first_org_of_level(&self, level: Level) -> Result<Option<Org>>;

    async fn put_tower_groups(&self, groups: Vec<TowerGroup>) -> Result<()>;
    async fn tower_groups(&self, path: &str) -> Result<Vec<TowerGroup>>;

    // --- people and keys ----------------------------------------------------------------
    /// Fails with `Duplicate` if the username exists, `NotFound` if the org does not.
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn users_in_subtree(&self, path: &str) -> Result<Vec<User>>;
    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// An unexpired session and its user.
    async fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Session>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
    /// Fails with `Duplicate` if the name exists.
    async fn create_api_key(
        &self,
        name: &str,
        key_hash: &str,
        created_at: DateTime<Utc>,
    ) -> Result<ApiKey>;
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>>;

    // --- configuration ------------------------------------------------------------------
    async fn calendar_years(&self) -> Result<Vec<CalendarYear>>;
    async fn put_calendar_year(&self, year: &CalendarYear) -> Result<()>;
    async fn settings(&self) -> Result<Settings>;
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;

    // --- attachments --------------------------------------------------------------------
    /// Stores the content durably (idempotent by content hash) and returns its record.
    async fn put_attachment(&self, meta: Attachment, bytes: Vec<u8>) -> Result<Attachment>;
    async fn attachment(&self, id: &str) -> Result<Option<(Attachment, Vec<u8>)>>;

    // --- cases --------------------------------------------------------------------------
    /// Writes a new case with its events and rollups in one transaction.
    async fn create_case(&self, req: CreateCase) -> Result<Created>;
    /// Loads the case inside a write transaction, checks `expected_version`, runs `decide`
    /// on it and writes the decision (case, events, rollups) atomically. A decision whose
    /// case has the same version as before (a reveal) still appends its events.
    async fn update_case(
        &self,
        id: i64,
        expected_version: Option<i64>,
        decide: CaseUpdate,
    ) -> Result<Case>;
    async fn case(&self, id: i64) -> Result<Option<Case>>;
    async fn case_by_number(&self, number: &str) -> Result<Option<Case>>;
    /// A case's timeline, oldest first.
    async fn events(&self, case_id: i64) -> Result<Vec<Event>>;
    async fn list_cases(&self, filter: CaseFilter) -> Result<Page<Case>>;
    /// Ids of open cases whose `due_at` is at or before `now`, earliest first.
    async fn due_cases(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<i64>>;
    /// Writes finished historic cases in bulk, with events on the chain and rollups.
    async fn import_cases(&self, cases: Vec<ImportCase>) -> Result<()>;
    /// Before many [`Store::import_cases`] into a store without cases: a store may set aside
    /// the indexes an import does not need and build them once at
    /// [`Store::end_bulk_import`], and build derived rollups there too: reads in between
    /// may be slow, and stats may leave out what the import wrote so far, but nothing read
    /// is otherwise wrong. Uniqueness is still checked on every import. Refused when the
    /// store holds cases.
    async fn begin_bulk_import(&self) -> Result<()> {
        Ok(())
    }
    /// Builds what [`Store::begin_bulk_import`] set aside (also done at the next open after a
    /// crash in between).
    async fn end_bulk_import(&self) -> Result<()> {
        Ok(())
    }

    /// Events of all cases with `from <= at < to`, in chain order, at most `limit`
    /// (Open311 `servicerequestupdates`).
    async fn events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Event>>;

    // --- channels -----------------------------------------------------------------------
    /// Stores a new night visit and returns it with its id.
    async fn create_night_visit(&self, visit: NightVisit) -> Result<NightVisit>;
    async fn night_visit(&self, id: i64) -> Result<Option<NightVisit>>;
    /// Visits in the subtree at `path`, newest first; `before_id` pages.
    async fn night_visits(
        &self,
        path: &str,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<NightVisit>>;
    /// Logs a hotline call and returns it with its id.
    async fn record_call(&self, call: HotlineCall) -> Result<HotlineCall>;
    /// Earlier calls from a number, newest first.
    async fn calls_from(&self, phone: &str, limit: u32) -> Result<Vec<HotlineCall>>;

    // --- measures -----------------------------------------------------------------------
    /// Counters summed per org over the local days `from..=to`, for each code given.
    async fn counters(
        &self,
        orgs: &[String],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HashMap<String, Counters>>;
    /// Gauges per org now: `{status name or "overdue": count}`.
    async fn gauges(&self, orgs: &[String]) -> Result<HashMap<String, HashMap<String, i64>>>;
    /// One gauge of [`Store::gauges`] per org (`"overdue"`, a status name), zero where an org
    /// has none: what a page showing one of them needs, which a store may read alone.
    async fn gauge(&self, orgs: &[String], key: &str) -> Result<HashMap<String, i64>> {
        let all = self.gauges(orgs).await?;
        Ok(orgs
            .iter()
            .map(|o| {
                let n = all.get(o).and_then(|g| g.get(key)).copied().unwrap_or(0);
                (o.clone(), n)
            })
            .collect())
    }

    // --- audit --------------------------------------------------------------------------
    /// Walks the whole event chain in order and reports the first bad event.
    async fn verify_chain(&self) -> Result<ChainReport>;

    // --- operations ---------------------------------------------------------------------
    /// The right to run one overdue sweep pass now, or `None` while another process (or
    /// task) holds it.
    async fn try_sweep_lock(&self) -> Result<Option<SweepLock>>;

    /// The next page of the store's whole content, in an order that [`Store::import_records`]
    /// can write as it comes: orgs parents first, then tower groups, users, API keys,
    /// calendars, settings, attachments, night visits, cases by id, idempotency keys, case
    /// numbers, events in chain order, hotline calls, counters, gauges. `cursor` is the
    /// previous page's `next_cursor` (opaque); `None` starts at the beginning.
    async fn export_records(&self, cursor: Option<String>, limit: u32) -> Result<Page<Record>>;

    /// Writes records exported from another store, as they are (ids, hashes), in one
    /// transaction per call. Meant for an empty store; afterwards the chain head is the last
    /// event written and new ids continue after the largest imported ones.
    async fn import_records(&self, records: Vec<Record>) -> Result<()>;
}

/// How a period of local days is read from counters kept both per day and per calendar
/// month: its whole months from the months, the days before and after them from the days.
/// Shared by the stores, so that they split a period alike.
pub mod period {
    use chrono::{Datelike, Months, NaiveDate};

    /// The parts of a period `from..=to`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Split {
        /// Days `from <= day < head_end`.
        pub head_end: NaiveDate,
        /// Days `tail_start < day <= to`.
        pub tail_start: NaiveDate,
        /// Months `first..=last` ('YYYY-MM'); empty when `first > last`.
        pub months: (String, String),
    }

    /// The month of a day as 'YYYY-MM', the first seven characters of its 'YYYY-MM-DD'.
    pub fn month(d: NaiveDate) -> String {
        d.format("%Y-%m").to_string()
    }

    /// Splits `from..=to` into its whole calendar months and the days at its two ends.
    pub fn split(from: NaiveDate, to: NaiveDate) -> Split {
        let first_of = |d: NaiveDate| d.with_day(1).unwrap_or(d);
        // The first whole month starts on the 1st at or after `from`; the last whole month
        // ends on the last day at or before `to`.
        let start = if from.day() == 1 {
            from
        } else {
            first_of(from)
                .checked_add_months(Months::new(1))
                .unwrap_or(from)
        };
        let after_to = to.succ_opt().unwrap_or(to);
        let end = first_of(after_to); // the first day after the last whole month
        if start >= end {
            // No whole month: every day from the day table.
            return Split {
                head_end: after_to,
                tail_start: to,
                months: ("9999-12".into(), "0000-01".into()),
            };
        }
        let last_month = end.pred_opt().unwrap_or(end);
        Split {
            head_end: start,
            tail_start: last_month,
            months: (month(start), month(last_month)),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn d(s: &str) -> NaiveDate {
            s.parse().unwrap()
        }

        #[test]
        fn periods_split_into_whole_months_and_their_ends() {
            let s = split(d("2025-01-15"), d("2025-04-10"));
            assert_eq!(s.head_end, d("2025-02-01"));
            assert_eq!(s.months, ("2025-02".into(), "2025-03".into()));
            assert_eq!(s.tail_start, d("2025-03-31"));
            let s = split(d("2025-01-01"), d("2025-12-31"));
            assert_eq!(s.head_end, d("2025-01-01"));
            assert_eq!(s.months, ("2025-01".into(), "2025-12".into()));
            assert_eq!(s.tail_start, d("2025-12-31"));
            // Within one month: days only.
            let s = split(d("2025-02-03"), d("2025-02-20"));
            assert!(s.months.0 > s.months.1);
            assert_eq!(s.head_end, d("2025-02-21"));
            assert_eq!(s.tail_start, d("2025-02-20"));
            // A whole February of a leap year, with a day on each side.
            let s = split(d("2024-01-31"), d("2024-03-01"));
            assert_eq!(s.head_end, d("2024-02-01"));
            assert_eq!(s.months, ("2024-02".into(), "2024-02".into()));
            assert_eq!(s.tail_start, d("2024-02-29"));
        }

        /// Every day of a period is read exactly once: from a month or from one of the ends.
        #[test]
        fn every_day_is_read_once() {
            let start = d("2023-11-01");
            for a in 0..120 {
                for len in [0u64, 1, 27, 28, 30, 31, 45, 62, 95] {
                    let from = start + chrono::Days::new(a * 3);
                    let to = from + chrono::Days::new(len);
                    let s = split(from, to);
                    let mut day = from;
                    while day <= to {
                        let head = day < s.head_end;
                        let tail = day > s.tail_start;
                        let m = month(day);
                        let whole = s.months.0 <= m && m <= s.months.1;
                        assert_eq!(
                            usize::from(head) + usize::from(tail) + usize::from(whole),
                            1,
                            "{day} in {from}..={to}: {s:?}"
                        );
                        day = day.succ_opt().unwrap();
                    }
                }
            }
        }
    }
}
