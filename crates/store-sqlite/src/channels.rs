//! Channel records beside the cases: night visits (夜访日记) and hotline calls
//! (热线受理记录). Plain rows; the writer assigns their ids.

use gridloop_domain::org::subtree_end;
use gridloop_store::{HotlineCall, NightVisit, Result, StoreError};
use rusqlite::{Connection, Row, params};

use crate::list::MAX_LIMIT;
use crate::sql::{Db, collect, first, from_ms, get, is_foreign_key_violation, ms};

pub(crate) const VISIT_COLUMNS: &str = "id, org, org_path, group_name, leader, visited_at, place, \
    households, people_met, notes, created_by, created_at";

pub(crate) const CALL_COLUMNS: &str = "id, phone, operator, org_path, at, summary, case_id";

pub(crate) fn visit_from_row(r: &Row<'_>) -> Result<NightVisit> {
    Ok(NightVisit {
        id: get(r, 0)?,
        org: get(r, 1)?,
        org_path: get(r, 2)?,
        group_name: get(r, 3)?,
        leader: get(r, 4)?,
        visited_at: from_ms(get(r, 5)?)?,
        place: get(r, 6)?,
        households: get(r, 7)?,
        people_met: get(r, 8)?,
        notes: get(r, 9)?,
        created_by: get(r, 10)?,
        created_at: from_ms(get(r, 11)?)?,
    })
}

pub(crate) fn call_from_row(r: &Row<'_>) -> Result<HotlineCall> {
    Ok(HotlineCall {
        id: get(r, 0)?,
        phone: get(r, 1)?,
        operator: get(r, 2)?,
        org_path: get(r, 3)?,
        at: from_ms(get(r, 4)?)?,
        summary: get(r, 5)?,
        case_id: get(r, 6)?,
    })
}

/// A page size within 1..=[`MAX_LIMIT`].
fn clamp(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_LIMIT))
}

/// Stores a new visit under a fresh id (whatever `visit.id` says).
pub(crate) fn create_night_visit(conn: &Connection, mut visit: NightVisit) -> Result<NightVisit> {
    let v = &visit;
    visit.id = conn
        .prepare_cached(
            "INSERT INTO night_visits (org, org_path, group_name, leader, visited_at, place,
                 households, people_met, notes, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             RETURNING id",
        )
        .db()?
        .query_row(
            params![
                v.org,
                v.org_path,
                v.group_name,
                v.leader,
                ms(v.visited_at),
                v.place,
                v.households,
                v.people_met,
                v.notes,
                v.created_by,
                ms(v.created_at)
            ],
            |r| r.get(0),
        )
        .db()?;
    Ok(visit)
}

pub(crate) fn night_visit(conn: &Connection, id: i64) -> Result<Option<NightVisit>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {VISIT_COLUMNS} FROM night_visits WHERE id = ?1"
        ))
        .db()?;
    first(stmt.query([id]).db()?, visit_from_row)
}

/// The page's ids from the subtree's range of the `(org_path, id)` index (index entries
/// only, sorted by id: a subtree's visits are few beside its cases), then just their rows.
fn night_visits_sql() -> String {
    format!(
        "SELECT {VISIT_COLUMNS} FROM night_visits WHERE id IN (
             SELECT id FROM night_visits
             WHERE org_path >= ?1 AND org_path < ?2 AND id < ?3
             ORDER BY id DESC LIMIT ?4)
         ORDER BY id DESC"
    )
}

/// Visits in the subtree at `path`, newest (highest id) first, before `before_id` if given.
pub(crate) fn night_visits(
    conn: &Connection,
    path: &str,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<NightVisit>> {
    let mut stmt = conn.prepare_cached(&night_visits_sql()).db()?;
    let before = before_id.unwrap_or(i64::MAX);
    let rows = stmt
        .query(params![path, subtree_end(path), before, clamp(limit)])
        .db()?;
    collect(rows, visit_from_row)
}

/// Logs a call under a fresh id. A call about a case that does not exist is `NotFound`.
pub(crate) fn record_call(conn: &Connection, mut call: HotlineCall) -> Result<HotlineCall> {
    let c = &call;
    let id = conn
        .prepare_cached(
            "INSERT INTO hotline_calls (phone, operator, org_path, at, summary, case_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             RETURNING id",
        )
        .db()?
        .query_row(
            params![
                c.phone,
                c.operator,
                c.org_path,
                ms(c.at),
                c.summary,
                c.case_id
            ],
            |r| r.get(0),
        );
    call.id = match id {
        Ok(id) => id,
        Err(e) if is_foreign_key_violation(&e) => return Err(StoreError::NotFound),
        Err(e) => return Err(StoreError::Backend(e.to_string())),
    };
    Ok(call)
}

/// One number's stretch of the `(phone, id)` index, read backwards: no sort.
fn calls_from_sql() -> String {
    format!(
        "SELECT {CALL_COLUMNS} FROM hotline_calls WHERE phone = ?1
         ORDER BY id DESC LIMIT ?2"
    )
}

/// Calls from a number, newest first.
pub(crate) fn calls_from(conn: &Connection, phone: &str, limit: u32) -> Result<Vec<HotlineCall>> {
    let mut stmt = conn.prepare_cached(&calls_from_sql()).db()?;
    collect(
        stmt.query(params![phone, clamp(limit)]).db()?,
        call_from_row,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let params = vec![1_i64; stmt.parameter_count()];
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join(" | ")
    }

    /// Pages read index entries for the range and rows for the page only; a number's calls
    /// come off its stretch of the index in order.
    #[test]
    fn lists_use_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let page_of = |table: &str, range: &str| {
            format!(
                "SEARCH {table} USING INTEGER PRIMARY KEY (rowid=?) | LIST SUBQUERY 1 | \
                 SEARCH {table} USING COVERING INDEX {range} | USE TEMP B-TREE FOR ORDER BY"
            )
        };
        assert_eq!(
            plan(&conn, &night_visits_sql()),
            page_of(
                "night_visits",
                "night_visits_org_path (org_path>? AND org_path<?)"
            )
        );
        assert_eq!(
            plan(&conn, &crate::chain::events_between_sql()),
            page_of("events", "events_at (at>? AND at<?)")
        );
        assert_eq!(
            plan(&conn, &calls_from_sql()),
            "SEARCH hotline_calls USING INDEX hotline_calls_phone (phone=?)"
        );
    }
}
