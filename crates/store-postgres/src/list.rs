//! The case list: filters, visibility and keyset pagination.
//!
//! A page is ordered by one of three keys, each served by an index: `id` (the primary key)
//! for newest first, `(deadline_key, id)` for earliest deadline first (the generated column
//! puts cases without a deadline last, by id), `(updated_at, id)` for most recently changed
//! first. The cursor is the last row's key; the next page starts strictly after it, so
//! pages stay stable while cases are added. Unlike SQLite, PostgreSQL plans with statistics
//! and each statement with its actual parameters, so one statement per list is enough: the
//! planner chooses between walking the sort index and collecting the subtree from the path
//! indexes (a bitmap OR for visibility) by itself. Lists of open cases only repeat the
//! partial indexes' condition literally, so that those indexes can serve them.

use gridloop_domain::case::Case;
use gridloop_domain::org::subtree_end;
use gridloop_store::cursor::{ListCursor, SortKey as Key};
use gridloop_store::{BBox, CaseFilter, CaseSort, Page, Visibility};
use tokio_postgres::GenericClient;

use crate::cases::parse_doc;
use crate::db::{R, Sql, get};

pub(crate) const MAX_LIMIT: u32 = 200;

/// The statuses of open cases, exactly as the partial indexes `cases_open_*` spell them.
const OPEN: &str = "status IN ('reported', 'accepted', 'dispatched', 'in_progress', 'replied')";

fn key_expr(sort: CaseSort) -> &'static str {
    match sort {
        CaseSort::Newest => "id",
        CaseSort::Deadline => "deadline_key",
        CaseSort::Updated => "updated_at",
    }
}

fn order_by(sort: CaseSort) -> &'static str {
    match sort {
        CaseSort::Newest => "id DESC",
        CaseSort::Deadline => "deadline_key, id",
        CaseSort::Updated => "updated_at DESC, id DESC",
    }
}

/// `col` in the subtree at `path`, as an index range.
fn subtree(q: &mut Sql, col: &str, path: &str) {
    q.push(&format!("({col} >= "))
        .bind(path.to_string())
        .push(&format!(" AND {col} < "))
        .bind(subtree_end(path))
        .push(")");
}

fn visibility(q: &mut Sql, v: &Visibility) {
    q.push("(");
    subtree(q, "org_path", &v.path);
    q.push(" OR ");
    subtree(q, "area_path", &v.path);
    q.push(" OR created_by = ")
        .bind(v.username.clone())
        .push(")");
}

/// `%q%` with LIKE's wildcards in `q` matched literally.
fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn bbox(q: &mut Sql, b: &BBox) {
    q.push("lat >= ")
        .bind(b.min_lat)
        .push(" AND lat <= ")
        .bind(b.max_lat)
        .push(" AND lng >= ")
        .bind(b.min_lng)
        .push(" AND lng <= ")
        .bind(b.max_lng);
}

/// Appends every filter of the request, each as ` AND (…)`.
fn conditions(q: &mut Sql, f: &CaseFilter) {
    if let Some(v) = &f.visible_to {
        q.push(" AND ");
        visibility(q, v);
    }
    if !f.statuses.is_empty() {
        let st: Vec<String> = f.statuses.iter().map(|s| s.as_str().to_string()).collect();
        q.push(" AND status = ANY(").bind(st).push(")");
        // Spelled out as well when every status asked for is open, so that the planner
        // may use the partial indexes of open cases.
        if f.statuses.iter().all(|s| s.is_open()) {
            q.push(" AND ").push(OPEN);
        }
    }
    if let Some(p) = &f.org_path {
        q.push(" AND ");
        subtree(q, "org_path", p);
    }
    if let Some(p) = &f.area_path {
        q.push(" AND ");
        subtree(q, "area_path", p);
    }
    if let Some(o) = f.overdue {
        q.push(" AND overdue = ").bind(o);
    }
    if let Some(c) = f.channel {
        q.push(" AND channel = ").bind(c.as_str().to_string());
    }
    if let Some(c) = &f.category {
        q.push(" AND category = ").bind(c.clone());
    }
    if let Some(p) = &f.reporter_phone {
        q.push(" AND reporter_phone = ").bind(p.clone());
    }
    if let Some(s) = f.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // ILIKE on "C"-collated columns folds ASCII case only, exactly like SQLite's LIKE;
        // Chinese text is matched as it is.
        let pattern = like_pattern(s);
        q.push(" AND (");
        for (i, col) in ["number", "title", "description"].iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push(&format!("{col} ILIKE "))
                .bind(pattern.clone())
                .push(" ESCAPE '\\'");
        }
        q.push(")");
    }
    if !f.ids.is_empty() {
        q.push(" AND id = ANY(").bind(f.ids.clone()).push(")");
    }
    if !f.categories.is_empty() {
        q.push(" AND category = ANY(")
            .bind(f.categories.clone())
            .push(")");
    }
    if let Some(t) = f.created_from {
        q.push(" AND created_at >= ").bind(t.timestamp_millis());
    }
    if let Some(t) = f.created_to {
        q.push(" AND created_at < ").bind(t.timestamp_millis());
    }
    if let Some(k) = &f.source_key {
        q.push(" AND source_key = ").bind(k.clone());
    }
    if let Some(v) = f.visit_id {
        q.push(" AND visit_id = ").bind(v);
    }
    if let Some(b) = &f.within {
        q.push(" AND ");
        bbox(q, b);
    }
}

/// Rows strictly after `k` in the sort order.
fn after(q: &mut Sql, sort: CaseSort, k: Key) {
    match sort {
        CaseSort::Newest => {
            q.push(" AND id < ").bind(k.id);
        }
        CaseSort::Deadline => {
            q.push(" AND (deadline_key, id) > (")
                .bind(k.value)
                .push(", ")
                .bind(k.id)
                .push(")");
        }
        CaseSort::Updated => {
            q.push(" AND (updated_at, id) < (")
                .bind(k.value)
                .push(", ")
                .bind(k.id)
                .push(")");
        }
    }
}

pub(crate) async fn list_cases(c: &impl GenericClient, f: &CaseFilter) -> R<Page<Case>> {
    let limit = f.limit.clamp(1, MAX_LIMIT) as usize;
    let cursor = f
        .cursor
        .as_deref()
        .map(|s| ListCursor::decode(f.sort, s).map(|c| c.after))
        .transpose()?;
    let mut q = Sql::default();
    q.push("SELECT id, ")
        .push(key_expr(f.sort))
        .push(", doc FROM cases WHERE TRUE");
    conditions(&mut q, f);
    if let Some(k) = cursor {
        after(&mut q, f.sort, k);
    }
    // One row more than the page tells whether there is a next page.
    q.push(" ORDER BY ")
        .push(order_by(f.sort))
        .push(" LIMIT ")
        .bind((limit + 1) as i64);
    let rows = c.query(&q.text, &q.refs()).await?;
    let mut items = Vec::with_capacity(limit);
    let mut last = None;
    for r in rows.iter().take(limit) {
        let id: i64 = get(r, 0)?;
        last = Some(Key {
            id,
            value: get(r, 1)?,
        });
        items.push(parse_doc(id, &get::<String>(r, 2)?)?);
    }
    let next_cursor = if rows.len() > limit {
        last.map(|k| {
            ListCursor {
                after: k,
                sparse: false,
            }
            .encode(f.sort)
        })
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(like_pattern("井盖"), "%井盖%");
    }
}
