//! Org boundaries a page at a time, for building the routing index: a province's 450,000
//! micro-grid boundaries read at once as JSON values took over a gigabyte.

use gridloop_domain::org::Org;
use tokio_postgres::GenericClient;

use crate::db::{R, int};
use crate::directory::{ORG_COLUMNS, org_from_row};

/// Orgs with a boundary after the code `after`, by code, at most `limit` of them.
pub(crate) async fn boundaries_page(
    c: &impl GenericClient,
    after: Option<&str>,
    limit: u32,
) -> R<Vec<Org>> {
    // Keyset on the primary key (`COLLATE "C"`: the same order as SQLite's). The empty
    // string sorts before every code.
    let rows = c
        .query(
            &format!(
                "SELECT {ORG_COLUMNS} FROM orgs WHERE code > $1 AND boundary IS NOT NULL
                 ORDER BY code LIMIT $2"
            ),
            &[&after.unwrap_or(""), &int(limit)],
        )
        .await?;
    rows.iter().map(org_from_row).collect()
}
