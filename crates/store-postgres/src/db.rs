//! Small helpers shared by every module: the crate's error, row access, time columns,
//! regions and a builder for the statements whose shape depends on the request.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use gridloop_store::StoreError;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};

/// What can go wrong inside the store before it is told to the caller as a [`StoreError`].
/// Database errors are kept as they are until then, so that a transaction can be retried on
/// a serialization failure or a deadlock.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// Lost a race the next attempt resolves (another process wrote the same key first).
    #[error("the transaction lost a race with another one")]
    Retry,
}

pub(crate) type R<T> = std::result::Result<T, Error>;

impl From<Error> for StoreError {
    fn from(e: Error) -> StoreError {
        match e {
            Error::Store(s) => s,
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// The server's message and code when there is one: tokio-postgres alone says "db error".
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

pub(crate) fn backend(msg: impl Into<String>) -> Error {
    Error::Store(StoreError::Backend(msg.into()))
}

pub(crate) fn code_of(e: &Error) -> Option<&SqlState> {
    match e {
        Error::Db(d) => d.code(),
        _ => None,
    }
}

/// Whether running the transaction again may succeed: it lost a serialization race or was
/// chosen as a deadlock's victim.
pub(crate) fn is_retryable(e: &Error) -> bool {
    matches!(e, Error::Retry)
        || matches!(
            code_of(e),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        )
}

/// How often a transaction that lost a race is run again.
pub(crate) const RETRIES: usize = 5;

/// A column of a row; a value of the wrong type is a backend error, never a panic.
pub(crate) fn get<'a, T: FromSql<'a>>(r: &'a Row, idx: usize) -> R<T> {
    r.try_get(idx)
        .map_err(|e| backend(format!("cannot read column {idx}: {e}")))
}

/// Instants are stored as unix milliseconds, the precision the domain keeps.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> R<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| backend(format!("timestamp {v} is out of range")))
}

/// The region of a row: the code of the top-level org on its path ('' for none).
pub(crate) fn region_of(path: &str) -> String {
    gridloop_domain::org::path_codes(path)
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A count from an unsigned domain field, as the BIGINT columns hold it.
pub(crate) fn int(v: impl Into<i64>) -> i64 {
    v.into()
}

/// A BIGINT column back into an unsigned domain field.
pub(crate) fn unsigned<T: TryFrom<i64>>(v: i64, what: &str) -> R<T> {
    T::try_from(v).map_err(|_| backend(format!("the stored {what} {v} is out of range")))
}

pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// SQL text with its numbered parameters (`$1`, `$2`, …), built up in order.
#[derive(Default)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub fn bind<T: ToSql + Sync + Send + 'static>(&mut self, v: T) -> &mut Sql {
        self.params.push(Box::new(v));
        let _ = write!(self.text, "${}", self.params.len());
        self
    }

    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }
}
