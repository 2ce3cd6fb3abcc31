//! Opening connections and migrating the schema.
//!
//! Migrations are the SQL files in `migrations/sqlite/`, compiled into the binary and
//! applied in order, all of the pending ones in one transaction, each recorded in
//! `schema_migrations`. A database written by a newer gridloop (a version this binary does
//! not know) is refused rather than used half-understood.

use std::path::Path;
use std::time::Duration;

use gridloop_store::{Result, StoreError};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::sql::Db;

/// `(version, name, sql)`, in order. Never edit a released migration: add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "0002_channels",
        include_str!("../../../migrations/sqlite/0002_channels.sql"),
    ),
    (
        3,
        "0003_rollup_months",
        include_str!("../../../migrations/sqlite/0003_rollup_months.sql"),
    ),
    (
        4,
        "0004_rollup_months_in_code",
        include_str!("../../../migrations/sqlite/0004_rollup_months_in_code.sql"),
    ),
    (
        5,
        "0005_stats_reads",
        include_str!("../../../migrations/sqlite/0005_stats_reads.sql"),
    ),
    (
        6,
        "0006_deferred_indexes",
        include_str!("../../../migrations/sqlite/0006_deferred_indexes.sql"),
    ),
    (
        7,
        "0007_rollup_generation",
        include_str!("../../../migrations/sqlite/0007_rollup_generation.sql"),
    ),
    (
        8,
        "0008_events_without_prev_hash",
        include_str!("../../../migrations/sqlite/0008_events_without_prev_hash.sql"),
    ),
    (
        9,
        "0009_drop_rollup_months",
        include_str!("../../../migrations/sqlite/0009_drop_rollup_months.sql"),
    ),
    (
        10,
        "0010_rollup_counters_without_rowid",
        include_str!("../../../migrations/sqlite/0010_rollup_counters_without_rowid.sql"),
    ),
    (
        11,
        "0011_rollup_running_by_parent",
        include_str!("../../../migrations/sqlite/0011_rollup_running_by_parent.sql"),
    ),
    (
        12,
        "0012_open_case_keys",
        include_str!("../../../migrations/sqlite/0012_open_case_keys.sql"),
    ),
    (
        13,
        "0013_rollup_gauges_without_rowid",
        include_str!("../../../migrations/sqlite/0013_rollup_gauges_without_rowid.sql"),
    ),
    (
        14,
        "0014_running_totals_near_roots",
        include_str!("../../../migrations/sqlite/0014_running_totals_near_roots.sql"),
    ),
    (
        15,
        "0015_closed_case_paths",
        include_str!("../../../migrations/sqlite/0015_closed_case_paths.sql"),
    ),
    (
        16,
        "0016_gauges_near_roots",
        include_str!("../../../migrations/sqlite/0016_gauges_near_roots.sql"),
    ),
    (
        17,
        "0017_case_search",
        include_str!("../../../migrations/sqlite/0017_case_search.sql"),
    ),
    (
        18,
        "0018_case_search_by_the_store",
        include_str!("../../../migrations/sqlite/0018_case_search_by_the_store.sql"),
    ),
    (
        19,
        "0019_records_without_frame_magic",
        include_str!("../../../migrations/sqlite/0019_records_without_frame_magic.sql"),
    ),
    (
        20,
        "0020_staged_import_days",
        include_str!("../../../migrations/sqlite/0020_staged_import_days.sql"),
    ),
    (
        21,
        "0021_status_conditions_without_lists",
        include_str!("../../../migrations/sqlite/0021_status_conditions_without_lists.sql"),
    ),
    (
        22,
        "0022_case_search_merged_in_steps",
        include_str!("../../../migrations/sqlite/0022_case_search_merged_in_steps.sql"),
    ),
    (
        23,
        "0023_case_docs_apart",
        include_str!("../../../migrations/sqlite/0023_case_docs_apart.sql"),
    ),
];

/// How long a connection waits for a lock held by another process (a backup, the CLI)
/// before it reports SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Distinct statement shapes per connection. The case list builds a few dozen shapes from
/// its optional filters; the rest are fixed.
const STATEMENT_CACHE: usize = 256;

/// The one read-write connection, owned by the writer thread.
pub(crate) fn open_writer(db: &Path) -> Result<Connection> {
    let conn = Connection::open(db).db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    // WAL lets the readers work while the writer commits; FULL syncs the WAL on every
    // commit, so an acknowledged write survives a crash of the process or the machine.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "could not switch the database to WAL mode (it is in {mode} mode)"
        )));
    }
    // Checkpoints copy the WAL into the database file and sync it: every 10,000 pages
    // (~40 MB) rather than SQLite's 1,000, so that a hot page (a rollup row, an index leaf)
    // is written back once per many batches. The WAL file is cut back to 256 MB after each
    // (`writer::WAL_RESTART`).
    // (For a database in a file the writer turns these off and checkpoints on a thread of
    // its own instead; see `writer`.)
    // A 32 MB page cache: the operating system's page cache holds the rest of the file, and
    // at 10M cases 64 MB gave intake nothing more (5,436 cases/s at 256 clients against
    // 5,372 and 5,542) for ~40 MB more of the server's peak memory (issue #5: ≤ 300 MB).
    // An import's writer gets more (`cases::import_encoded`).
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;
         PRAGMA wal_autocheckpoint = 10000;
         PRAGMA journal_size_limit = 268435456;",
    )
    .db()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    crate::codec::register_functions(&conn).db()?;
    crate::search::register(&conn)?;
    Ok(conn)
}

/// A read-only connection for the reader pool. Opened after the writer has put the database
/// in WAL mode, so it reads committed snapshots without blocking the writer.
pub(crate) fn open_reader(db: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(db, flags).db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    // 8 MB each: a read touches a few dozen pages, and the operating system's page cache
    // holds the rest of the file; four readers' caches are a fair share of the server's
    // memory budget (issue #5: 300 MB under load, with the routing index).
    conn.execute_batch(
        "PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -8192;",
    )
    .db()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    crate::codec::register_functions(&conn).db()?;
    crate::search::register(&conn)?;
    Ok(conn)
}

/// Applies the pending migrations. Returns the schema version now in effect.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64> {
    // Migrations and triggers call the store's SQL functions; a connection opened elsewhere
    // (a test's) has them from here on.
    crate::codec::register_functions(conn).db()?;
    crate::search::register(conn)?;
    // A migration may rewrite a whole table through a temporary one (0023's DROP COLUMN
    // copies every case row first): in a file, not in memory as the server's connections
    // keep temporary tables (at 10M cases that was 9 GB of memory).
    let temp_store: i64 = conn.query_row("PRAGMA temp_store", [], |r| r.get(0)).db()?;
    conn.execute_batch("PRAGMA temp_store = FILE").db()?;
    let migrated = migrate_in_one_transaction(conn);
    conn.execute_batch(&format!("PRAGMA temp_store = {temp_store}"))
        .db()?;
    migrated
}

fn migrate_in_one_transaction(conn: &mut Connection) -> Result<i64> {
    // IMMEDIATE: two processes opening a new database at once must not both migrate it.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )
    .db()?;
    let current: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .db()?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this program knows \
             ({latest}); use a newer gridloop"
        )));
    }
    let now = chrono::Utc::now().timestamp_millis();
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Backend(format!("migration {name} failed: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, now],
        )
        .db()?;
        tracing::info!(migration = name, "applied migration");
    }
    crate::rollups::rebuild_running_if_missing(&tx)?;
    tx.commit().db()?;
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A case row as versions before 0023 wrote them, its document inside.
    fn insert_case_with_doc(conn: &Connection, id: i64, doc: &dyn rusqlite::ToSql) {
        conn.execute(
            "INSERT INTO cases (id, number, status, version, channel, area_path, org_path,
                 overdue, created_at, updated_at, doc)
             VALUES (?1, ?2, 'reported', 1, 'hotline', '/1/', '/1/', 0, 0, 0, ?3)",
            rusqlite::params![id, format!("n{id}"), doc],
        )
        .unwrap();
    }

    #[test]
    fn migrations_are_ordered_and_idempotent() {
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].0 < w[1].0, "migrations must be in version order");
        }
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA temp_store = MEMORY").unwrap();
        let latest = MIGRATIONS.len() as i64;
        assert_eq!(migrate(&mut conn).unwrap(), latest);
        // Temporary tables were in files while migrating only.
        let temp_store: i64 = conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .unwrap();
        assert_eq!(temp_store, 2);
        // Running again applies nothing and keeps the data.
        assert_eq!(migrate(&mut conn).unwrap(), latest);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
        let genesis: String = conn
            .query_row("SELECT hash FROM chain_head", [], |r| r.get(0))
            .unwrap();
        assert_eq!(genesis, gridloop_domain::timeline::GENESIS);
    }

    /// A database of version 1 with cases in it gets the new columns filled in from the
    /// documents (the documents of older cases lack the new fields altogether).
    #[test]
    fn channels_migration_backfills_case_columns() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].2).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, '0001_init', 0);",
        )
        .unwrap();
        let docs = [
            r#"{"location": {"lat": 29.301, "lng": 120.07}, "source_key": "cam-1", "visit_id": 7}"#,
            r#"{"location": null, "source_key": null, "visit_id": null}"#,
            r#"{"title": "older than the channels"}"#,
        ];
        for (i, doc) in docs.iter().enumerate() {
            insert_case_with_doc(&conn, i as i64 + 1, doc);
        }
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len() as i64);
        type Columns = (Option<f64>, Option<f64>, Option<String>, Option<i64>);
        let rows: Vec<Columns> = conn
            .prepare("SELECT lat, lng, source_key, visit_id FROM cases ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            vec![
                (Some(29.301), Some(120.07), Some("cam-1".into()), Some(7)),
                (None, None, None, None),
                (None, None, None, None),
            ]
        );
    }

    /// Documents kept in the case rows (before 0023) move to `case_docs` as they are stored,
    /// compressed or plain JSON, and the column leaves the rows.
    #[test]
    fn documents_move_out_of_the_case_rows() {
        use crate::codec::{Kind, compress};
        let mut conn = Connection::open_in_memory().unwrap();
        crate::codec::register_functions(&conn).unwrap();
        crate::search::register(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 < 23) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
                rusqlite::params![version, name],
            )
            .unwrap();
        }
        let json = r#"{"title":"路灯不亮"}"#;
        let compressed = compress(Kind::Case, json.as_bytes()).unwrap();
        let docs: [&dyn rusqlite::ToSql; 2] = [&compressed, &json];
        for (i, doc) in docs.into_iter().enumerate() {
            insert_case_with_doc(&conn, i as i64 + 1, doc);
        }
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len() as i64);
        let moved: Vec<(i64, String, Vec<u8>)> = conn
            .prepare("SELECT id, typeof(doc), CAST(doc AS BLOB) FROM case_docs ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            moved,
            vec![
                (1, "blob".into(), compressed),
                (2, "text".into(), json.as_bytes().to_vec()),
            ]
        );
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('cases') WHERE name = 'doc'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn newer_databases_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations VALUES (999, 'future', 0)",
            [],
        )
        .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::Backend(_))));
    }
}
