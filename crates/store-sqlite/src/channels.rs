//! Channel records beside the cases: night visits (夜访日记) and hotline calls
//! (热线受理记录). Plain rows; the writer assigns their ids.

use gridloop_domain::org::subtree_end;
use gridloop_store::{HotlineCall, NightVisit, Result, StoreError};
use rusqlite::{Connection, Row, params};

use crate::list::MAX_LIMIT;
use crate::sql::{Db, collect, first, from_ms, get, is_foreign_key_violation, ms};

const VISIT_COLUMNS: &str = "id, org, org_path, group_name, leader, visited_at, place, \
    households, people_met, notes, created_by, created_at";

const CALL_COLUMNS: &str = "id, phone, operator, org_path, at, summary, case_id";

fn visit_from_row(r: &Row<'_>) -> Result<NightVisit> {
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

fn call_from_row(r: &Row<'_>) -> Result<HotlineCall> {
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

/// Visits in the subtree at `path`, newest (highest id) first, before `before_id` if given.
pub(crate) fn night_visits(
    conn: &Connection,
    path: &str,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<NightVisit>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {VISIT_COLUMNS} FROM night_visits
             WHERE org_path >= ?1 AND org_path < ?2 AND id < ?3
             ORDER BY id DESC LIMIT ?4"
        ))
        .db()?;
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

/// Calls from a number, newest first.
pub(crate) fn calls_from(conn: &Connection, phone: &str, limit: u32) -> Result<Vec<HotlineCall>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {CALL_COLUMNS} FROM hotline_calls WHERE phone = ?1
             ORDER BY id DESC LIMIT ?2"
        ))
        .db()?;
    collect(
        stmt.query(params![phone, clamp(limit)]).db()?,
        call_from_row,
    )
}
