//! Bulk imports into an empty store: the secondary indexes of cases and events are set
//! aside while the rows go in and built once at the end.
//!
//! Historic cases arrive in time order, but most indexes are not in time order (status and
//! path, reporter phone, location, creator): each imported row would insert into them at a
//! random place, and at millions of rows those indexes outgrow the cache, so that every
//! commit rewrites thousands of scattered pages into the WAL. Built afterwards, an index is
//! one sort and a sequential write. The definitions wait in `deferred_indexes` (migration
//! 0006), so that a crash during the import loses nothing: the next open builds them.
//!
//! The same holds for the rollups: an import's jobs append their daily counters to a
//! staging table, and the end sums them into the daily counters in key order, then builds
//! the tables derived from them (the running totals) in one sorted pass. Until then stats
//! leave out what the import wrote.
//!
//! Uniqueness is never deferred (case numbers, `(case_id, seq)` of events, primary keys are
//! constraints of the tables, not among these indexes), so an import still fails on a
//! duplicate at once.

use rusqlite::{Connection, OptionalExtension};

use gridloop_store::{Result, StoreError};

use crate::sql::Db;

/// The indexes an import defers: the secondary indexes of `cases` and `events` with an
/// entry for every (or nearly every) row, in an order other than time.
///
/// The partial ones stay: over open cases, due dates, sources and night visits, they hold
/// a fraction of a percent of historic cases (~50,000 of 10M seeded), so keeping them costs
/// an import next to nothing, while building each at the end was a scan of the whole table
/// all the same (~11 s apiece at 10M, eight of them). So do the indexes by time: of report
/// (`cases_created`), of event (`events_at`), of deadline (`cases_deadline`, days after the
/// report) and of last change (`cases_updated`, mostly days or weeks after it). History
/// comes in time order, so their entries go in at their end or close to it, on pages in
/// the cache, where building them took 35, 63, 29 and 16 s at 10M: each build scans the
/// whole table, whose pages lie among the events' and are read from disk again each time.
const DEFERRABLE: &[&str] = &[
    "cases_status_org_path",
    "cases_status_area_path",
    "cases_created_by",
    "cases_reporter_phone",
    "cases_lat_lng",
];

/// Sets the deferrable indexes aside. Only an empty store (no cases yet) may: a store in use
/// needs its indexes for every read.
pub(crate) fn begin(conn: &Connection) -> Result<usize> {
    let has_cases: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM cases)", [], |r| r.get(0))
        .db()?;
    if has_cases {
        return Err(StoreError::Backend(
            "a bulk import defers indexes only into a store without cases".into(),
        ));
    }
    let mut deferred = 0;
    for name in DEFERRABLE {
        let sql: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .db()?;
        let Some(sql) = sql else { continue };
        conn.execute(
            "INSERT INTO deferred_indexes (name, sql) VALUES (?1, ?2)",
            [name, &sql.as_str()],
        )
        .db()?;
        conn.execute_batch(&format!("DROP INDEX {name}")).db()?;
        deferred += 1;
    }
    Ok(deferred)
}

/// Builds every deferred index. Returns how many were built (0 when none were pending).
pub(crate) fn end(conn: &Connection) -> Result<usize> {
    // The days the import's jobs staged, before anything derived from them.
    crate::rollups::merge_staged_days(conn)?;
    let pending: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM deferred_indexes ORDER BY name")
            .db()?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?
    };
    if pending.is_empty() {
        return Ok(0);
    }
    // The import wrote only the daily rollups: the tables derived from them come first,
    // while the import is still marked as unfinished, so that a crash here redoes them.
    crate::rollups::rebuild_derived(conn)?;
    // Each index is a scan and a sort, on one thread unless SQLite may hand sorting runs to
    // helper threads; at the end of an import nothing else is running to use the other
    // cores (10M cases: 15 indexes, 14 minutes on one of two cores).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    set_sort_threads(conn, threads)?;
    let built = build(conn, &pending);
    set_sort_threads(conn, 0)?;
    built?;
    crate::search::merge_all(conn)?;
    Ok(pending.len())
}

fn build(conn: &Connection, pending: &[(String, String)]) -> Result<()> {
    for (name, sql) in pending {
        let started = std::time::Instant::now();
        conn.execute_batch(sql).db()?;
        tracing::info!(
            index = name.as_str(),
            ms = started.elapsed().as_millis() as u64,
            "bulk import: index built"
        );
        conn.execute("DELETE FROM deferred_indexes WHERE name = ?1", [name])
            .db()?;
    }
    Ok(())
}

/// `PRAGMA threads`: how many helper threads the connection's sorts may use (0: none).
fn set_sort_threads(conn: &Connection, n: usize) -> Result<i64> {
    conn.query_row(&format!("PRAGMA threads = {n}"), [], |r| r.get(0))
        .db()
}

/// Whether a bulk import is under way (its indexes are set aside).
pub(crate) fn active(conn: &Connection) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM deferred_indexes)")
        .db()?
        .query_row([], |r| r.get(0))
        .db()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare(
                "SELECT sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL
                 ORDER BY name",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn deferred_indexes_come_back_exactly() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let before = indexes(&conn);
        assert_eq!(begin(&conn).unwrap(), DEFERRABLE.len());
        assert!(indexes(&conn).len() < before.len());
        assert_eq!(end(&conn).unwrap(), DEFERRABLE.len());
        assert_eq!(indexes(&conn), before);
        let threads = |c: &Connection| c.query_row("PRAGMA threads", [], |r| r.get::<_, i64>(0));
        assert_eq!(
            threads(&conn).unwrap(),
            0,
            "sort threads end with the build"
        );
        // The bundled SQLite must allow helper threads, or the build sorts on one core.
        assert_eq!(set_sort_threads(&conn, 2).unwrap(), 2);
        assert_eq!(end(&conn).unwrap(), 0, "nothing left pending");
    }
}
