//! How to make a fresh PostgreSQL store for the tests: a fresh database on the test server.
//! The fixtures (org tree, helpers driving cases through the domain) are the contract's.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use gridloop_store::Store;
pub use gridloop_store_contract::fixtures::*;
use gridloop_store_contract::{Columns, Factory, Harness};
use gridloop_store_postgres::PgStore;

/// A fresh database on the test server (`GRIDLOOP_TEST_DATABASE_URL`, an admin URL),
/// dropped with it. `None`, with a line saying so, when no server is given.
pub struct TestDb {
    admin: String,
    name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new(test: &str) -> Option<TestDb> {
        let Ok(admin) = std::env::var("GRIDLOOP_TEST_DATABASE_URL") else {
            eprintln!("skipped {test}: GRIDLOOP_TEST_DATABASE_URL is not set (see scripts/pg.sh)");
            return None;
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "gridloop_t_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let client = connect(&admin).await;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = with_database(&admin, &name);
        Some(TestDb { admin, name, url })
    }

    pub async fn store(&self) -> PgStore {
        PgStore::connect(&self.url).await.unwrap()
    }

    /// A plain connection to the database, for looking behind the store's back.
    pub async fn raw(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

/// Drops the database once the test is over (its stores are dropped before it, being
/// declared after it). On a thread of its own: the test's runtime may be single-threaded
/// and is busy dropping this.
impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = connect(&admin).await;
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The URL with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Makes each contract case a database of its own; skips it without a server.
pub struct Pg;

#[async_trait]
impl Factory for Pg {
    async fn fresh(&self, test: &str) -> Option<Box<dyn Harness>> {
        let db = TestDb::new(test).await?;
        Some(Box::new(db))
    }
}

#[async_trait]
impl Harness for TestDb {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.store().await)
    }

    async fn raw_sql(&self, sql: &str) -> Result<(), String> {
        self.raw().await.batch_execute(sql).await.map_err(|e| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string())
        })
    }

    fn drop_events_trigger(&self, name: &str) -> String {
        format!("DROP TRIGGER {name} ON events")
    }

    fn empty_events(&self) -> &'static str {
        "TRUNCATE events CASCADE"
    }

    async fn columns(&self, id: i64) -> Columns {
        let r = self
            .raw()
            .await
            .query_one(
                "SELECT lat, lng, source_key, visit_id FROM cases WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    }

    /// The bytes are in the database, where every server finds them.
    async fn assert_attachment_kept(&self, id: &str, bytes: &[u8]) {
        let row = self
            .raw()
            .await
            .query_one("SELECT bytes FROM attachments WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert_eq!(row.get::<_, Vec<u8>>(0), bytes);
    }
}

pub async fn open_with_tree(db: &TestDb) -> PgStore {
    let store = db.store().await;
    store.put_orgs(tree()).await.unwrap();
    store
}
