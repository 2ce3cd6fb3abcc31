//! Org boundaries a page at a time, for building the routing index: a province's 450,000
//! micro-grid boundaries read at once as JSON values took over a gigabyte.

use gridloop_domain::org::Org;
use gridloop_store::Result;
use rusqlite::{Connection, params};

use crate::directory::{ORG_COLUMNS, org_from_row};
use crate::sql::{Db, collect};

/// Orgs with a boundary after the code `after`, by code, at most `limit` of them.
pub(crate) fn boundaries_page(
    conn: &Connection,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Org>> {
    // Keyset on the primary key's index: each page is a seek, whatever its offset. The empty
    // string sorts before every code.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE code > ?1 AND boundary IS NOT NULL
             ORDER BY code LIMIT ?2"
        ))
        .db()?;
    collect(
        stmt.query(params![after.unwrap_or(""), limit]).db()?,
        org_from_row,
    )
}
