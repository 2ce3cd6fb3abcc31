//! Small helpers shared by every module: error mapping, time columns, row iteration and a
//! builder for the few statements whose shape depends on the request.

use chrono::{DateTime, Utc};
use gridloop_store::{Result, StoreError};
use rusqlite::types::Value;
use rusqlite::{ErrorCode, Row, Rows};

/// Maps rusqlite's errors to [`StoreError::Backend`]; callers that expect a particular
/// constraint violation check for it first (see [`is_unique_violation`]).
pub(crate) trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(backend)
    }
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Whether an error is a UNIQUE or PRIMARY KEY violation (a duplicate name or key).
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    const UNIQUE: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE;
    const PRIMARY_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == ErrorCode::ConstraintViolation
                && (f.extended_code == UNIQUE || f.extended_code == PRIMARY_KEY)
    )
}

/// Whether an error is a FOREIGN KEY violation (a reference to a missing row).
pub(crate) fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

/// Instants are stored as unix milliseconds, the precision the domain keeps.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| StoreError::Backend(format!("timestamp {v} is out of range")))
}

pub(crate) fn get<T: rusqlite::types::FromSql>(r: &Row<'_>, idx: usize) -> Result<T> {
    r.get(idx).db()
}

/// Collects rows through a converter that may fail with a [`StoreError`] (a corrupt value
/// is a backend error, not a panic).
pub(crate) fn collect<T>(
    mut rows: Rows<'_>,
    mut f: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(r) = rows.next().db()? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// The first row through a converter, if any.
pub(crate) fn first<T>(
    mut rows: Rows<'_>,
    f: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    match rows.next().db()? {
        Some(r) => f(r).map(Some),
        None => Ok(None),
    }
}

/// SQL text with its positional parameters, for statements assembled per request. The
/// text of each distinct shape is cached by `prepare_cached` like any other statement.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Value>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            params: Vec::new(),
        }
    }

    pub fn push(mut self, text: &str) -> Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a `?` placeholder bound to `v`.
    pub fn bind(mut self, v: impl Into<Value>) -> Sql {
        self.text.push('?');
        self.params.push(v.into());
        self
    }

    pub fn append(mut self, other: &Sql) -> Sql {
        self.text.push_str(&other.text);
        self.params.extend(other.params.iter().cloned());
        self
    }

    /// `parts` joined by `sep`, each in parentheses; `empty` when there are none.
    pub fn join(parts: &[Sql], sep: &str, empty: &str) -> Sql {
        if parts.is_empty() {
            return Sql::new(empty);
        }
        let mut out = Sql::default();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                out = out.push(sep);
            }
            out = out.push("(").append(p).push(")");
        }
        out
    }
}
