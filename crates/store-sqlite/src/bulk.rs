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
//! The same holds for the rollup table derived from the daily counters (the running
//! totals): an import writes the days only, and the end builds the totals from them in one
//! sorted pass. Until then stats leave out what the import wrote.
//!
//! Uniqueness is never deferred (case numbers, `(case_id, seq)` of events, primary keys are
//! constraints of the tables, not among these indexes), so an import still fails on a
//! duplicate at once.

use rusqlite::{Connection, OptionalExtension};

use gridloop_store::{Result, StoreError};

use crate::sql::Db;

/// The indexes an import defers: the secondary indexes of `cases` and `events` that hold
/// most rows.
///
/// Partial indexes over the few rows history leaves open or marked (`cases_open_*`,
/// `cases_due_at`, `cases_source_key`, `cases_visit_id`) are kept while the rows go in:
/// each costs an import next to nothing, as only those few rows enter it, while building it
/// at the end is a scan of the whole table like any other (at 10M cases the build of 17
/// indexes took 450 s, ~26 s each, most of it reading the table).
const DEFERRABLE: &[&str] = &[
    "cases_status_org_path",
    "cases_status_area_path",
    "cases_created_by",
    "cases_reporter_phone",
    "cases_deadline",
    "cases_updated",
    "cases_lat_lng",
    "cases_created",
    "events_at",
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
    // Each index is a scan and a sort, on one thread unless SQLite may hand sorting runs to
    // helper threads; at the end of an import nothing else is running to use the other
    // cores (10M cases: 15 indexes, 14 minutes on one of two cores). Moving the days sorts
    // too.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    set_sort_threads(conn, threads)?;
    let built = finish(conn, &pending);
    set_sort_threads(conn, 0)?;
    built?;
    Ok(pending.len())
}

/// The import's end, while it is still marked as unfinished (its indexes pending), so that
/// a crash here redoes all of it: its daily rollups into place, the tables derived from
/// them, then the indexes.
fn finish(conn: &Connection, pending: &[(String, String)]) -> Result<()> {
    crate::rollups::merge_imported_days(conn)?;
    crate::rollups::rebuild_derived(conn)?;
    build(conn, pending)
}

fn build(conn: &Connection, pending: &[(String, String)]) -> Result<()> {
    for (name, sql) in pending {
        conn.execute_batch(sql).db()?;
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

    #[test]
    fn an_imports_days_wait_day_first_and_join_the_counters_at_its_end() {
        use chrono::NaiveDate;
        use gridloop_domain::measures::Counters;

        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let day = NaiveDate::from_ymd_opt(2025, 3, 4).unwrap();
        let counted = |received, closed| Counters {
            received,
            closed,
            ..Counters::default()
        };
        // A day the store already counts, from before.
        let mut before = crate::rollups::RollupDelta::default();
        before.add_day("330001", day, &counted(1, 0));
        before.write(&conn).unwrap();
        begin(&conn).unwrap();
        // Two jobs of the import count the same org and day, and another day.
        for (d, c) in [(day, counted(2, 1)), (day, counted(3, 0))] {
            let mut delta = crate::rollups::RollupDelta::default();
            delta.add_day("330001", d, &c);
            delta.add_day("330001", d.succ_opt().unwrap(), &counted(1, 1));
            delta.write_days(&conn).unwrap();
        }
        let rows = |table: &str| -> Vec<(String, String, i64, i64)> {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT org, day, received, closed FROM {table} ORDER BY org, day"
                ))
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let row =
            |d: NaiveDate, received, closed| ("330001".into(), d.to_string(), received, closed);
        let next = day.succ_opt().unwrap();
        assert_eq!(
            rows("rollup_counters"),
            [row(day, 1, 0)],
            "untouched until the end"
        );
        assert_eq!(
            rows("rollup_counters_imported"),
            [row(day, 5, 1), row(next, 2, 2)]
        );
        end(&conn).unwrap();
        assert_eq!(rows("rollup_counters"), [row(day, 6, 1), row(next, 2, 2)]);
        assert!(rows("rollup_counters_imported").is_empty());
    }
}
