//! How to make a fresh SQLite store for the tests: a temporary data directory. The
//! fixtures (org tree, helpers driving cases through the domain) are the contract's.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::Arc;

use async_trait::async_trait;
use gridloop_store::Store;
pub use gridloop_store_contract::TempDir;
pub use gridloop_store_contract::fixtures::*;
use gridloop_store_contract::{Columns, Factory, Harness};
use gridloop_store_sqlite::SqliteStore;
use rusqlite::Connection;

/// Makes each contract case a data directory of its own.
pub struct Sqlite;

#[async_trait]
impl Factory for Sqlite {
    async fn fresh(&self, test: &str) -> Option<Box<dyn Harness>> {
        Some(Box::new(SqliteHarness(TempDir::new(&format!(
            "sqlite-{test}"
        )))))
    }
}

pub struct SqliteHarness(TempDir);

impl SqliteHarness {
    fn raw(&self) -> Connection {
        Connection::open(self.0.path().join("gridloop.db")).unwrap()
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(self.0.path()).unwrap())
    }

    async fn raw_sql(&self, sql: &str) -> Result<(), String> {
        self.raw().execute_batch(sql).map_err(|e| e.to_string())
    }

    fn drop_events_trigger(&self, name: &str) -> String {
        format!("DROP TRIGGER {name}")
    }

    fn empty_events(&self) -> &'static str {
        "DELETE FROM events"
    }

    async fn columns(&self, id: i64) -> Columns {
        self.raw()
            .query_row(
                "SELECT lat, lng, source_key, visit_id FROM cases WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
    }

    /// Attachments are files in the data directory, fanned out by the first two hex digits.
    async fn assert_attachment_kept(&self, id: &str, bytes: &[u8]) {
        let file = self.0.path().join("attachments").join(&id[..2]).join(id);
        assert!(file.is_file(), "{}", file.display());
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
    }
}

pub async fn open_with_tree(dir: &TempDir) -> SqliteStore {
    let store = SqliteStore::open(dir.path()).unwrap();
    store.put_orgs(tree()).await.unwrap();
    store
}
