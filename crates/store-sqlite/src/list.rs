//! The case list: filters, visibility and keyset pagination.
//!
//! A page is ordered by one of three keys, each served by an index: `id` (the table itself)
//! for newest first, `(deadline_key, id)` for earliest deadline first (the generated column
//! puts cases without a deadline last, by id), `(updated_at, id)` for most recently changed
//! first. The cursor is the last row's key; the next page starts strictly after it, so
//! pages stay stable while cases are added.
//!
//! The hard part is the subtree filter (visibility, org, area) at scale: a city-wide user
//! sees nearly every case, a grid handler one in ten thousand. Walking the sort index and
//! filtering is ideal for the first and hopeless for the second; collecting the subtree
//! from the path indexes and sorting it is the opposite. So a list with a subtree filter
//! first walks the sort order, and gives up on the walk as soon as the share of matching
//! rows says that the page would take more than a bounded number of rows ([`WALK_BUDGET`]).
//! Only then does it collect the rest of the subtree from the `(status, path)` indexes
//! (index entries only) and sort just those. Dense subtrees never reach the second step,
//! sparse ones pay a short probe for it. Those indexes are partial, one pair over open
//! cases and one over closed ones (so that a new case inserts into two path indexes, not
//! four): a subtree of both is collected in two parts ([`subtree_ids`]).
//!
//! Lists of open cases only (work queues) walk partial indexes that hold nothing but open
//! cases, so they do not wade through the closed history first.
//!
//! The other range filters drive the same two steps: a nearby box (the `(lat, lng)` index)
//! before any subtree, as it is meant to hold a few cases; a period (`(created_at, id)`)
//! when there is no subtree. Filters that pin a list to a handful of rows, whatever else is
//! asked (a list of ids, a night visit, a source, a reporter's phone), skip the walk: their
//! index (the table itself for ids) is named and its few rows sorted ([`choose`]).

use gridloop_domain::case::{Case, Status};
use gridloop_domain::org::subtree_end;
use gridloop_store::cursor::{ListCursor as Cursor, SortKey as Key};
use gridloop_store::{BBox, CaseFilter, CaseSort, Page, Result, StoreError, Visibility};
use rusqlite::Connection;
use rusqlite::types::{Value, ValueRef};

use crate::codec::{self, Kind};
use crate::sql::{Db, Sql, get};

pub(crate) const MAX_LIMIT: u32 = 200;

/// Rows a walk reads per wanted row before it judges whether walking on pays.
const WALK_PROBE: usize = 32;
/// The most rows a walk may read (more for pages larger than this allows at full density).
/// Reading rows costs a few microseconds each, so a walk stays within tens of milliseconds.
const WALK_BUDGET: usize = 8192;
/// Rows per wanted row a [`Keyed`] list walks before judging the rate of matches.
const KEYED_WALK_PROBE: usize = 4;
/// The most rows a search without index terms (one character) reads for one page. It tests
/// the substring on every row, decompressing the document (~20 us a row): a rare character
/// across a province read every case, for minutes. A page cut short by this bound carries
/// a cursor to go on from where it stopped.
const UNINDEXED_SEARCH_BUDGET: usize = 10_000;
/// A subtree with fewer cases than this (a street's, ~12,000 at 10M) is searched in full
/// by one character instead (~0.1–0.5 s): its cases are a small share of the sort order
/// the bounded walk follows, which found few of them.
const UNINDEXED_SEARCH_COLLECT: usize = 4 * UNINDEXED_SEARCH_BUDGET;
/// A search whose terms are held by fewer cases than this drives its list from them (see
/// [`with_search`]); more, and the list's other bounds (a subtree) are narrower.
const SEARCH_DRIVES: usize = 10_000;

/// The statuses of open cases, exactly as the partial indexes `cases_open_*` spell their
/// condition: a query must repeat it verbatim for SQLite to use them. Equalities joined by
/// OR, not `IN (...)`: SQLite tests a partial index's condition on every row written, and a
/// list of more than two values by building a temporary index of it each time (migration
/// 0021).
pub(crate) const OPEN: &str = "(status = 'reported' OR status = 'accepted' \
     OR status = 'dispatched' OR status = 'in_progress' OR status = 'replied')";

/// The final statuses (every status not open), exactly as the partial path indexes of
/// closed cases `cases_status_org_path` and `cases_status_area_path` (migrations 0015 and
/// 0021) spell their condition: a query must repeat it verbatim for SQLite to use them.
pub(crate) const CLOSED: &str = "(status = 'closed' OR status = 'rejected' OR status = 'merged')";

/// The deadline sort key as stored in the generated column `deadline_key`, and the same
/// computed from `deadline` and the id: SQLite reads the table row for a virtual column
/// even when the index at hand holds it, so index-only reads spell it out.
const DEADLINE_KEY: &str = "deadline_key";
const DEADLINE_KEY_EXPR: &str = "coalesce(deadline, 4611686018427387904 + id)";

fn key_expr(sort: CaseSort) -> &'static str {
    key_expr_with(sort, DEADLINE_KEY)
}

fn key_expr_with(sort: CaseSort, deadline_key: &'static str) -> &'static str {
    match sort {
        CaseSort::Newest => "id",
        CaseSort::Deadline => deadline_key,
        CaseSort::Updated => "updated_at",
    }
}

fn order_by(sort: CaseSort, deadline_key: &str) -> String {
    match sort {
        CaseSort::Newest => "id DESC".into(),
        CaseSort::Deadline => format!("{deadline_key}, id"),
        CaseSort::Updated => "updated_at DESC, id DESC".into(),
    }
}

/// Rows strictly after `k` in the sort order. SQLite seeks on the first column of the row
/// value and filters the rest, which is why every sort value is (nearly) unique: a seek then
/// lands on the next page instead of in front of a long run of equal values.
fn after(sort: CaseSort, k: Key, deadline_key: &str) -> Sql {
    match sort {
        CaseSort::Newest => Sql::new("id < ").bind(k.id),
        CaseSort::Deadline => Sql::new(&format!("({deadline_key}, id) > ("))
            .bind(k.value)
            .push(", ")
            .bind(k.id)
            .push(")"),
        CaseSort::Updated => Sql::new("(updated_at, id) < (")
            .bind(k.value)
            .push(", ")
            .bind(k.id)
            .push(")"),
    }
}

/// `col` in the subtree at `path`, as an index range.
fn subtree(col: &str, path: &str) -> Sql {
    Sql::new(&format!("{col} >= "))
        .bind(path.to_string())
        .push(&format!(" AND {col} < "))
        .bind(subtree_end(path))
}

fn visibility(v: &Visibility) -> Sql {
    Sql::join(
        &[
            subtree("org_path", &v.path),
            subtree("area_path", &v.path),
            Sql::new("created_by = ").bind(v.username.clone()),
        ],
        " OR ",
        "0",
    )
}

fn status_in(statuses: &[Status]) -> Option<Sql> {
    if statuses.is_empty() {
        return None;
    }
    let mut s = Sql::new("status IN (");
    for (i, st) in statuses.iter().enumerate() {
        if i > 0 {
            s = s.push(", ");
        }
        s = s.bind(st.as_str().to_string());
    }
    Some(s.push(")"))
}

/// Whether the list searches by a text without index terms (a single character): every
/// candidate's text is then tested ([`UNINDEXED_SEARCH_BUDGET`]).
fn unindexed_search(f: &CaseFilter) -> bool {
    f.q.as_deref()
        .map(str::trim)
        .is_some_and(|q| !q.is_empty() && crate::search::match_query(q).is_none())
}

/// Whether the list asks for open cases only, so that it may walk the `cases_open_*` indexes.
fn open_only(f: &CaseFilter) -> bool {
    !f.statuses.is_empty() && f.statuses.iter().all(|s| s.is_open())
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

/// Every filter of the request, to be ANDed.
fn conditions(f: &CaseFilter) -> Vec<Sql> {
    let mut out = Vec::new();
    if let Some(v) = &f.visible_to {
        out.push(visibility(v));
    }
    out.extend(status_in(&f.statuses));
    if let Some(p) = &f.org_path {
        out.push(subtree("org_path", p));
    }
    if let Some(p) = &f.area_path {
        out.push(subtree("area_path", p));
    }
    if let Some(o) = f.overdue {
        out.push(Sql::new("overdue = ").bind(o));
    }
    if let Some(c) = f.channel {
        out.push(Sql::new("channel = ").bind(c.as_str().to_string()));
    }
    if let Some(c) = &f.category {
        out.push(Sql::new("category = ").bind(c.clone()));
    }
    if let Some(p) = &f.reporter_phone {
        out.push(Sql::new("reporter_phone = ").bind(p.clone()));
    }
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        out.push(search(q));
    }
    if !f.ids.is_empty() {
        out.push(
            Sql::new("id IN (SELECT value FROM json_each(")
                .bind(json_ids(&f.ids))
                .push("))"),
        );
    }
    if !f.categories.is_empty() {
        out.push(
            Sql::new("category IN (SELECT value FROM json_each(")
                .bind(json_strings(&f.categories))
                .push("))"),
        );
    }
    out.extend(created_range(f));
    if let Some(k) = &f.source_key {
        out.push(Sql::new("source_key = ").bind(k.clone()));
    }
    if let Some(v) = f.visit_id {
        out.push(Sql::new("visit_id = ").bind(v));
    }
    if let Some(b) = &f.within {
        out.push(bbox(b));
    }
    out
}

/// The ids as a JSON array, for `json_each`: one statement shape for any number of them.
fn json_ids(ids: &[i64]) -> String {
    let items: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(","))
}

fn json_strings(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Located within the box, bounds included: a range of the `(lat, lng)` index.
fn bbox(b: &BBox) -> Sql {
    Sql::new("lat >= ")
        .bind(b.min_lat)
        .push(" AND lat <= ")
        .bind(b.max_lat)
        .push(" AND lng >= ")
        .bind(b.min_lng)
        .push(" AND lng <= ")
        .bind(b.max_lng)
}

/// A listed case's document (`case_docs`, migration 0023), in a query over `cases`. In the
/// select list SQLite looks it up only for the rows it returns.
const DOC: &str = "(SELECT doc FROM case_docs WHERE case_docs.id = cases.id)";

/// `q` as a substring of the number, title or description. Title and description are read
/// from the document rather than kept twice: SQLite parses JSON about as fast as it
/// compares the text, and a substring search reads every candidate row either way.
fn search(q: &str) -> Sql {
    let pattern = like_pattern(q);
    let like = |expr: &str| {
        Sql::new(&format!("{expr} LIKE "))
            .bind(pattern.clone())
            .push(" ESCAPE '\\'")
    };
    let in_doc = Sql::join(
        &[
            like("json_extract(doc_json(d.doc), '$.title')"),
            like("json_extract(doc_json(d.doc), '$.description')"),
        ],
        " OR ",
        "0",
    );
    Sql::join(
        &[
            like("number"),
            Sql::new("EXISTS (SELECT 1 FROM case_docs AS d WHERE d.id = cases.id AND (")
                .append(&in_doc)
                .push("))"),
        ],
        " OR ",
        "0",
    )
}

/// How a list is answered.
#[derive(Debug)]
enum Plan {
    /// One statement following the sort order's index, the filters checked on the way.
    Sorted,
    /// One statement from a selective index (`FROM cases` and this hint) whose few rows are
    /// then sorted.
    Lookup(&'static str),
    /// A walk of the sort order that, when matches turn out sparse, collects the rest of the
    /// page from this index-only id set, or from the keys of open cases when they decide
    /// the whole filter.
    Adaptive(Sql, Option<Keyed>),
    /// Newest first along a search's candidates (these terms, `search.rs`): the index
    /// yields them by id from the newest down, so the page stops at its last match.
    SearchedNewest(String),
}

/// A list of open cases in one subtree (org or area) and otherwise filtered only by status
/// and the overdue flag, whose visibility follows from that subtree: the `cases_open_*_keys`
/// indexes (migration 0012) hold every column it is decided and sorted on, so its
/// candidates are counted, filtered and sorted on index entries, and only the rows of the
/// page are read. A street's overdue list read the row of every open case in its area before.
#[derive(Debug)]
struct Keyed {
    /// `FROM cases INDEXED BY … WHERE …`: every condition of the list.
    from: Sql,
}

impl Keyed {
    /// The candidates as an id set, to count.
    fn ids(&self) -> Sql {
        Sql::new("SELECT id").append(&self.from)
    }

    /// The first `limit` keys after `after`, in the list's order.
    fn keys(&self, sort: CaseSort, after: Option<Key>, limit: usize) -> Sql {
        let q = Sql::new("SELECT id, ")
            .push(key_expr_with(sort, DEADLINE_KEY_EXPR))
            .append(&self.from);
        finish_query_with(q, sort, after, limit, DEADLINE_KEY_EXPR)
    }
}

/// The [`Keyed`] form of a list, if it has one.
fn keyed(f: &CaseFilter) -> Option<Keyed> {
    // Every field, so that a new filter is not answered from these indexes unseen.
    let CaseFilter {
        visible_to,
        statuses,
        org_path,
        area_path,
        overdue,
        channel,
        category,
        q,
        reporter_phone,
        ids,
        categories,
        created_from,
        created_to,
        source_key,
        visit_id,
        within,
        sort: _,
        limit: _,
        cursor: _,
    } = f;
    let searched = q.as_deref().map(str::trim).is_some_and(|q| !q.is_empty());
    if !open_only(f)
        || channel.is_some()
        || category.is_some()
        || searched
        || reporter_phone.is_some()
        || !ids.is_empty()
        || !categories.is_empty()
        || created_from.is_some()
        || created_to.is_some()
        || source_key.is_some()
        || visit_id.is_some()
        || within.is_some()
    {
        return None;
    }
    let (index, col, path) = match (org_path, area_path) {
        (Some(p), None) => ("cases_open_org_keys", "org_path", p),
        (None, Some(p)) => ("cases_open_area_keys", "area_path", p),
        _ => return None,
    };
    // The subtree must lie within the caller's: then every candidate is visible.
    if visible_to
        .as_ref()
        .is_some_and(|v| !subtree_within(path, &v.path))
    {
        return None;
    }
    let mut from = Sql::new(&format!(" FROM cases INDEXED BY {index} WHERE {OPEN} AND "))
        .append(&status_in(statuses)?)
        .push(" AND ")
        .append(&subtree(col, path));
    if let Some(o) = overdue {
        from = from.push(" AND overdue = ").bind(*o);
    }
    Some(Keyed { from })
}

/// Whether the subtree at `inner` (as [`subtree`] bounds it) lies within the one at `outer`.
fn subtree_within(inner: &str, outer: &str) -> bool {
    inner >= outer && subtree_end(inner) <= subtree_end(outer)
}

/// Picks the plan of a list. A filter by equality on a partial index (or a list of ids)
/// bounds the list to a handful of rows whatever else is asked, so it wins outright; then
/// a filter that bounds the list by a range of an index drives the adaptive plan; without
/// one the sort order is walked.
fn choose(f: &CaseFilter) -> Plan {
    if !f.ids.is_empty() {
        // The listed rows by rowid; no index may tempt the planner into a scan.
        return Plan::Lookup("NOT INDEXED");
    }
    if f.visit_id.is_some() {
        return Plan::Lookup("INDEXED BY cases_visit_id");
    }
    if f.source_key.is_some() {
        return Plan::Lookup("INDEXED BY cases_source_key");
    }
    if f.reporter_phone.is_some() {
        // One reporter's cases: the phone index beats any subtree.
        return Plan::Lookup("INDEXED BY cases_reporter_phone");
    }
    match driver(f) {
        Some(ids) => Plan::Adaptive(ids, keyed(f)),
        None => Plan::Sorted,
    }
}

/// The plan with a search's candidates (`search.rs`) as the id set to collect from, when the
/// request searches by terms and they are held by fewer than `drives` cases
/// ([`SEARCH_DRIVES`]): a rare word among a province's cases is then a few lookups, where
/// the walk of the sort order or the caller's subtree read every document. Common words
/// newest first walk their candidates from the newest down; in another order they keep the
/// plan (the subtree may be the narrower set).
fn with_search(conn: &Connection, f: &CaseFilter, plan: Plan, drives: usize) -> Result<Plan> {
    let Some(terms) =
        f.q.as_deref()
            .map(str::trim)
            .and_then(crate::search::match_query)
    else {
        return Ok(plan);
    };
    let searched = Sql::new("SELECT rowid AS id FROM cases_search WHERE cases_search MATCH ")
        .bind(terms.clone());
    Ok(match plan {
        Plan::Sorted | Plan::Adaptive(_, None) => {
            if fewer_than(conn, &searched, drives)? {
                Plan::Adaptive(searched, None)
            } else if f.sort == CaseSort::Newest {
                // Common words: nearly every candidate matches, but the newest cases (or
                // the caller's subtree) may hold none of them for a long way.
                Plan::SearchedNewest(terms)
            } else {
                plan
            }
        }
        plan => plan,
    })
}

/// The index-only id set a sparse list is collected from, if the request has a range
/// filter to drive it: a box, a subtree or a period. `None` when an ordered walk is the
/// only plan.
fn driver(f: &CaseFilter) -> Option<Sql> {
    // A nearby box is the narrowest of them: it is meant to hold a few cases at most.
    if let Some(b) = &f.within {
        return Some(Sql::new("SELECT id FROM cases WHERE ").append(&bbox(b)));
    }
    // Every status when none is asked for: status leads the path indexes, so the subtree
    // is one range per status.
    let statuses = if f.statuses.is_empty() {
        Status::ALL
    } else {
        &f.statuses[..]
    };
    let with_status = |s: Sql| match status_in(statuses) {
        Some(st) => s.push(" AND ").append(&st),
        None => s,
    };
    let range = |col: &str, path: &str| subtree_ids(col, path, statuses);
    // An explicit org or area filter is ANDed with everything, so it alone bounds the set
    // and is usually narrower than the caller's whole jurisdiction.
    if let Some(p) = &f.org_path {
        return Some(range("org_path", p));
    }
    if let Some(p) = &f.area_path {
        return Some(range("area_path", p));
    }
    if let Some(v) = &f.visible_to {
        let mine = with_status(
            Sql::new("SELECT id FROM cases WHERE created_by = ").bind(v.username.clone()),
        );
        return Some(
            range("org_path", &v.path)
                .push(" UNION ALL ")
                .append(&range("area_path", &v.path))
                .push(" UNION ALL ")
                .append(&mine),
        );
    }
    // A period: a range of `cases_created`.
    created_range(f).map(|r| Sql::new("SELECT id FROM cases WHERE ").append(&r))
}

/// The ids of the cases with one of `statuses` in the subtree at `path` of `col`, from the
/// path indexes' entries alone. Those of open cases are the keys of open cases
/// (`cases_open_org_keys`, `cases_open_area_keys`), those of closed cases `(status, path)`
/// over the final statuses (`cases_status_org_path`, `cases_status_area_path`, migration
/// 0015), so a subtree of both is one part per index, joined by UNION ALL. Each part
/// repeats its index's condition verbatim, or SQLite would not use it, and names the
/// statuses asked for only when they are fewer than the part's: the index's own list is
/// then one seek per status.
fn subtree_ids(col: &str, path: &str, statuses: &[Status]) -> Sql {
    let mut out: Option<Sql> = None;
    for (condition, open) in [(OPEN, true), (CLOSED, false)] {
        let asked: Vec<Status> = statuses
            .iter()
            .copied()
            .filter(|s| s.is_open() == open)
            .collect();
        if asked.is_empty() {
            continue;
        }
        let mut part = Sql::new(&format!("SELECT id FROM cases WHERE {condition} AND "))
            .append(&subtree(col, path));
        let every = Status::ALL
            .iter()
            .filter(|s| s.is_open() == open)
            .all(|s| asked.contains(s));
        if !every && let Some(st) = status_in(&asked) {
            part = part.push(" AND ").append(&st);
        }
        out = Some(match out {
            Some(q) => q.push(" UNION ALL ").append(&part),
            None => part,
        });
    }
    // No statuses at all is no case; callers ask for every status rather than none.
    out.unwrap_or_else(|| Sql::new("SELECT id FROM cases WHERE 0"))
}

/// `created_from <= created_at < created_to`, either bound optional.
fn created_range(f: &CaseFilter) -> Option<Sql> {
    let from = f
        .created_from
        .map(|t| Sql::new("created_at >= ").bind(t.timestamp_millis()));
    let to = f
        .created_to
        .map(|t| Sql::new("created_at < ").bind(t.timestamp_millis()));
    match (from, to) {
        (None, None) => None,
        (Some(a), None) | (None, Some(a)) => Some(a),
        (Some(a), Some(b)) => Some(a.push(" AND ").append(&b)),
    }
}

pub(crate) fn list_cases(conn: &Connection, f: &CaseFilter) -> Result<Page<Case>> {
    list_narrowed(conn, f, WALK_BUDGET)
}

/// [`list_cases`] with the walk's budget as a parameter (see [`list_with_budget`]).
fn list_narrowed(conn: &Connection, f: &CaseFilter, walk_budget: usize) -> Result<Page<Case>> {
    // Only accepted open cases can be overdue (`Status::may_be_overdue`), so an overdue
    // list is a list of those statuses. Saying so lets it walk the open-case indexes and
    // collect from their path ranges, not from years of history nor from a street's backlog
    // of unaccepted reports (which it read entry by entry to find the few overdue ones).
    if f.overdue == Some(true) {
        let asked = if f.statuses.is_empty() {
            Status::ALL
        } else {
            &f.statuses[..]
        };
        let statuses: Vec<Status> = asked
            .iter()
            .copied()
            .filter(|s| s.may_be_overdue())
            .collect();
        if statuses.is_empty() {
            // No status asked for can be overdue (an empty list would mean every status).
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        if statuses != f.statuses {
            let narrowed = CaseFilter {
                statuses,
                ..f.clone()
            };
            return list_with_budget(conn, &narrowed, walk_budget);
        }
    }
    list_with_budget(conn, f, walk_budget)
}

/// [`list_cases`] with the walk's budget as a parameter, for tests that must reach the
/// collecting step with a handful of cases.
fn list_with_budget(conn: &Connection, f: &CaseFilter, walk_budget: usize) -> Result<Page<Case>> {
    let limit = f.limit.clamp(1, MAX_LIMIT) as usize;
    // One row more than the page tells whether there is a next page.
    let want = limit + 1;
    let cursor = f
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(f.sort, c))
        .transpose()?;
    let after = cursor.map(|c| c.after);
    let conds = Sql::join(&conditions(f), " AND ", "1");
    let mut rows = Vec::with_capacity(want);
    let open = open_only(f);
    let mut sparse = false;
    // Where a bounded search stopped before the page was full, if it did.
    let mut stopped: Option<Key> = None;
    // (rows walked, candidates collected) at most.
    let unindexed_bound = unindexed_search(f).then(|| {
        if walk_budget == 0 {
            (want.max(7), want.max(7))
        } else {
            (want.max(UNINDEXED_SEARCH_BUDGET), UNINDEXED_SEARCH_COLLECT)
        }
    });
    let mut snapshot: Option<rusqlite::Transaction<'_>> = None;
    // A walk without budget (tests reaching every fallback) also takes a search's walk of
    // the newest candidates whatever their number.
    let drives = if walk_budget == 0 { 0 } else { SEARCH_DRIVES };
    match with_search(conn, f, choose(f), drives)? {
        Plan::Sorted => match unindexed_bound {
            Some((bound, _)) => {
                let walk = walk_query(f.sort, open, &conds, after, bound);
                stopped = run_walk(conn, &walk, want, bound, bound, &mut rows)?;
            }
            None => {
                let q = direct_query(f.sort, &from_sorted(f.sort, open), &conds, after, want);
                fetch(conn, &q, true, &mut rows)?;
            }
        },
        Plan::SearchedNewest(terms) => {
            let q = searched_newest_query(terms, &conds, after, want);
            fetch(conn, &q, true, &mut rows)?;
        }
        Plan::Lookup(hint) => {
            // Whatever their status: the open-case indexes hold no lookup columns.
            let from = Sql::new(&format!(" FROM cases {hint} WHERE 1"));
            let q = direct_query(f.sort, &from, &conds, after, want);
            fetch(conn, &q, true, &mut rows)?;
        }
        Plan::Adaptive(ids, keyed) => {
            if keyed.is_some() {
                // The rows of the page are read after their keys: from the same snapshot.
                snapshot = Some(conn.unchecked_transaction().db()?);
            }
            let ids = keyed.as_ref().map_or(ids, Keyed::ids);
            // Some(start) when the rest of the page is to be collected from `ids`.
            let probe = want * WALK_PROBE;
            let collect_after = if cursor.is_some_and(|c| c.sparse) {
                Some(after)
            } else if let Some((bound, collect)) = unindexed_bound {
                if fewer_than(conn, &ids, collect)? {
                    // A subtree small enough to test every case of (a street's).
                    Some(after)
                } else {
                    let walk = walk_query(f.sort, open, &conds, after, bound);
                    stopped = run_walk(conn, &walk, want, bound, bound, &mut rows)?;
                    None
                }
            } else if fewer_than(conn, &ids, probe)? {
                // The candidates are fewer than the walk would probe before giving up
                // (a street's queue among a province's open cases): collect them at once.
                Some(after)
            } else {
                let budget = walk_budget.max(want * WALK_PROBE);
                // Collecting a keyed list sorts index entries only (~0.25 us each at 10M,
                // against ~0.5 us a walked row): its walk gives up after a short probe.
                // A street's queue among a province's open cases walked 1,632 rows to
                // find one or two of its own before collecting anyway.
                let walk_probe = want
                    * if keyed.is_some() {
                        KEYED_WALK_PROBE
                    } else {
                        WALK_PROBE
                    };
                let walk = walk_query(f.sort, open, &conds, after, budget);
                run_walk(conn, &walk, want, walk_probe, budget, &mut rows)?.map(Some)
            };
            if let Some(from) = collect_after {
                sparse = true;
                // Up to a whole page, not just the rest, so that the statement's text (its
                // LIMIT) is one per page size; the surplus is cut below.
                match &keyed {
                    Some(k) => fetch(conn, &k.keys(f.sort, from, want), false, &mut rows)?,
                    None => {
                        let q = collect_query(f.sort, &ids, &conds, from, want);
                        fetch(conn, &q, true, &mut rows)?;
                    }
                }
            }
        }
    }

    let more = rows.len() > limit;
    rows.truncate(limit);
    read_docs(conn, &mut rows)?;
    drop(snapshot);
    let next_cursor = if more {
        rows.last()
            .map(|(k, _)| Cursor { after: *k, sparse }.encode(f.sort))
    } else {
        stopped.map(|k| {
            Cursor {
                after: k,
                sparse: false,
            }
            .encode(f.sort)
        })
    };
    Ok(Page {
        items: rows
            .into_iter()
            .map(|(k, doc)| match doc {
                Some(doc) => decode_doc(k.id, doc),
                None => Err(StoreError::Backend(format!("case {} was not read", k.id))),
            })
            .collect::<Result<_>>()?,
        next_cursor,
    })
}

/// Appends the keyset condition, the order and the limit.
fn finish_query(q: Sql, sort: CaseSort, cursor: Option<Key>, limit: usize) -> Sql {
    finish_query_with(q, sort, cursor, limit, DEADLINE_KEY)
}

/// [`finish_query`] with the deadline key spelt `deadline_key`.
fn finish_query_with(
    q: Sql,
    sort: CaseSort,
    cursor: Option<Key>,
    limit: usize,
    deadline_key: &str,
) -> Sql {
    let q = match cursor {
        Some(k) => q.push(" AND ").append(&after(sort, k, deadline_key)),
        None => q,
    };
    q.push(" ORDER BY ")
        .push(&order_by(sort, deadline_key))
        .push(&limit_clause(limit))
}

/// ` LIMIT n`, the number written out: SQLite plans with a bound LIMIT's value and so
/// re-prepares the statement whenever it is bound again, which was every list (a parse
/// and plan each time). The few distinct limits (page size + 1, the probe, the budget)
/// make a few more cached statements.
fn limit_clause(limit: usize) -> String {
    format!(" LIMIT {limit}")
}

/// `FROM cases` following the sort order: over the partial index of open cases when only
/// open cases are asked for. Named explicitly, as the status indexes would tempt the planner
/// into collecting and sorting instead, which is the walk's whole point not to do.
fn from_sorted(sort: CaseSort, open: bool) -> Sql {
    if !open {
        return Sql::new(" FROM cases WHERE 1");
    }
    let index = match sort {
        CaseSort::Newest => "cases_open_newest",
        CaseSort::Deadline => "cases_open_deadline",
        CaseSort::Updated => "cases_open_updated",
    };
    Sql::new(&format!(" FROM cases INDEXED BY {index} WHERE {OPEN}"))
}

/// Everything in one statement over `from` (` FROM cases … WHERE …`): the sort order's
/// index with the filters checked on the way ([`Plan::Sorted`]), or a selective index
/// ([`Plan::Lookup`]).
fn direct_query(sort: CaseSort, from: &Sql, conds: &Sql, cursor: Option<Key>, limit: usize) -> Sql {
    let q = Sql::new("SELECT id, ")
        .push(key_expr(sort))
        .push(", ")
        .push(DOC)
        .append(from)
        .push(" AND ")
        .append(conds);
    finish_query(q, sort, cursor, limit)
}

/// Newest first along a search's candidates, from the newest down: ordered by the search
/// index's own rowid, which it yields in that order (ordered by `cases.id`, SQLite would
/// sort them all first).
fn searched_newest_query(terms: String, conds: &Sql, cursor: Option<Key>, limit: usize) -> Sql {
    let mut q = Sql::new(&format!(
        "SELECT cases.id, cases.id, {DOC} FROM cases_search
         JOIN cases ON cases.id = cases_search.rowid WHERE cases_search MATCH "
    ))
    .bind(terms)
    .push(" AND ")
    .append(conds);
    if let Some(k) = cursor {
        q = q.push(" AND cases_search.rowid < ").bind(k.id);
    }
    q.push(" ORDER BY cases_search.rowid DESC")
        .push(&limit_clause(limit))
}

/// The walk of the sort order. The filters are evaluated in the select list, not in the
/// WHERE clause, so that the planner has nothing to use but the sort order's index, and the
/// walk learns where it stopped even when the last rows did not match. The document is asked
/// for only when the row matches: when the index holds every column the filters need (the
/// open-case indexes hold those of visibility), SQLite then never reads the other rows.
fn walk_query(sort: CaseSort, open: bool, conds: &Sql, cursor: Option<Key>, limit: usize) -> Sql {
    let q = Sql::new("SELECT id, ")
        .push(key_expr(sort))
        .push(", ")
        .append(conds)
        .push(" AS hit, CASE WHEN ")
        .append(conds)
        .push(" THEN ")
        .push(DOC)
        .push(" END")
        .append(&from_sorted(sort, open));
    finish_query(q, sort, cursor, limit)
}

/// The rest of a sparse list: the candidates from the path indexes, after the walked rows.
fn collect_query(sort: CaseSort, ids: &Sql, conds: &Sql, after: Option<Key>, limit: usize) -> Sql {
    let q = Sql::new("SELECT id, ")
        .push(key_expr(sort))
        // NOT INDEXED: the candidates drive by rowid; no other index may tempt the planner.
        .push(", ")
        .push(DOC)
        .push(" FROM cases NOT INDEXED WHERE id IN (")
        .append(ids)
        .push(") AND ")
        .append(conds);
    finish_query(q, sort, after, limit)
}

/// Whether the id set holds fewer than `n` entries: counted on its indexes alone, stopping
/// at `n`, so a dense set costs no more than a short walk.
fn fewer_than(conn: &Connection, ids: &Sql, n: usize) -> Result<bool> {
    let q = Sql::new("SELECT count(*) FROM (")
        .append(ids)
        .push(&limit_clause(n))
        .push(")");
    let mut stmt = conn.prepare_cached(&q.text).db()?;
    let count: i64 = stmt
        .query_row(rusqlite::params_from_iter(&q.params), |r| r.get(0))
        .db()?;
    Ok((count as usize) < n)
}

/// A row of a list: its key and its document as stored, `None` until read (the keys of a
/// [`Keyed`] list come first). Only the rows on the page are decoded (decompressed and
/// parsed, the bulk of a list's work), not the one that tells whether there is a next page
/// nor any surplus of a collected page.
type Listed = (Key, Option<Value>);

/// Reads the documents of the rows that have none yet, by id.
fn read_docs(conn: &Connection, rows: &mut [Listed]) -> Result<()> {
    if rows.iter().all(|(_, doc)| doc.is_some()) {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached("SELECT doc FROM case_docs WHERE id = ?1")
        .db()?;
    for (k, doc) in rows.iter_mut().filter(|(_, doc)| doc.is_none()) {
        *doc = Some(stmt.query_row([k.id], |r| r.get(0)).db()?);
    }
    Ok(())
}

fn decode_doc(id: i64, doc: Value) -> Result<Case> {
    let corrupt = |e: &dyn std::fmt::Display| {
        StoreError::Backend(format!("the stored case {id} is corrupt: {e}"))
    };
    let json = codec::decode(Kind::Case, ValueRef::from(&doc))?;
    // The document checked as UTF-8 at once: parsing bytes checks every string on its own,
    // which was a sixth of the parse (a document holds ~40 short strings).
    let text = std::str::from_utf8(&json).map_err(|e| corrupt(&e))?;
    serde_json::from_str(text).map_err(|e| corrupt(&e))
}

/// Runs a `SELECT id, key, doc` query (`SELECT id, key` without `with_doc`) and appends
/// its rows.
fn fetch(conn: &Connection, q: &Sql, with_doc: bool, out: &mut Vec<Listed>) -> Result<()> {
    let mut stmt = conn.prepare_cached(&q.text).db()?;
    let mut rows = stmt.query(rusqlite::params_from_iter(&q.params)).db()?;
    while let Some(r) = rows.next().db()? {
        let id: i64 = get(r, 0)?;
        let key = Key {
            id,
            value: get(r, 1)?,
        };
        let doc = if with_doc { Some(get(r, 2)?) } else { None };
        out.push((key, doc));
    }
    Ok(())
}

/// Runs a [`walk_query`] of at most `budget` rows, keeping the matching ones, until `want`
/// are found. After the first `probe` rows it stops as soon as the
/// share of matches so far says the page would not be full within the budget. Returns the
/// key of the last row walked when it stopped early (there may be more matches after it),
/// `None` when the walk is complete.
fn run_walk(
    conn: &Connection,
    q: &Sql,
    want: usize,
    probe: usize,
    budget: usize,
    out: &mut Vec<Listed>,
) -> Result<Option<Key>> {
    let mut stmt = conn.prepare_cached(&q.text).db()?;
    let mut rows = stmt.query(rusqlite::params_from_iter(&q.params)).db()?;
    let (mut walked, mut hits) = (0, 0);
    let mut last = None;
    while let Some(r) = rows.next().db()? {
        walked += 1;
        let id: i64 = get(r, 0)?;
        let key = Key {
            id,
            value: get(r, 1)?,
        };
        last = Some(key);
        // NULL when an OR branch compared with a NULL column and none matched.
        if get::<Option<bool>>(r, 2)?.unwrap_or(false) {
            hits += 1;
            out.push((key, Some(get(r, 3)?)));
            if out.len() >= want {
                return Ok(None);
            }
        }
        // At this rate, `want` matches take walked * want / hits rows.
        if walked >= probe && walked * want > budget * hits {
            return Ok(last);
        }
    }
    Ok(if walked == budget { last } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, q: &Sql) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", q.text))
            .unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(&q.params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join(" | ")
    }

    /// The plans the design relies on: every walk follows its sort index (never a sort of
    /// the whole table), a cursor seeks instead of scanning from the start, and the rest of
    /// a sparse list comes from the path indexes alone. Plans come from SQLite's fixed
    /// heuristics (the store never runs ANALYZE), so an empty database shows them.
    #[test]
    fn lists_use_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::codec::register_functions(&conn).unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let k = Key { value: 5, id: 5 };
        let vis = Some(Visibility {
            path: "/1/2/".into(),
            username: "u".into(),
        });
        let filters = [
            CaseFilter::default(),
            CaseFilter {
                q: Some("x".into()),
                overdue: Some(true),
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                statuses: vec![Status::Reported, Status::Accepted],
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                statuses: vec![Status::Closed, Status::Accepted],
                q: Some("井盖".into()),
                ..CaseFilter::default()
            },
            CaseFilter {
                statuses: vec![Status::Dispatched],
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                org_path: Some("/1/2/3/".into()),
                ..CaseFilter::default()
            },
            CaseFilter {
                area_path: Some("/1/2/3/".into()),
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                reporter_phone: Some("138".into()),
                ..CaseFilter::default()
            },
            CaseFilter {
                reporter_phone: Some("138".into()),
                statuses: vec![Status::Accepted],
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                statuses: vec![Status::Reported],
                ids: vec![3, 1, 2],
                reporter_phone: Some("138".into()),
                ..CaseFilter::default()
            },
            CaseFilter {
                ids: vec![7],
                categories: vec!["a".into(), "b".into()],
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                statuses: vec![Status::Reported],
                visit_id: Some(4),
                ..CaseFilter::default()
            },
            CaseFilter {
                source_key: Some("cam-1:fire".into()),
                statuses: vec![Status::Reported, Status::Accepted],
                created_from: Some(chrono::DateTime::UNIX_EPOCH),
                ..CaseFilter::default()
            },
            CaseFilter {
                within: Some(BBox::around(29.3, 120.07, 200.0)),
                statuses: vec![Status::Reported, Status::Accepted],
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                within: Some(BBox::around(29.3, 120.07, 200.0)),
                category: Some("c".into()),
                ..CaseFilter::default()
            },
            CaseFilter {
                created_from: Some(chrono::DateTime::UNIX_EPOCH),
                created_to: Some(chrono::DateTime::UNIX_EPOCH),
                categories: vec!["a".into()],
                ..CaseFilter::default()
            },
            CaseFilter {
                created_to: Some(chrono::DateTime::UNIX_EPOCH),
                statuses: vec![Status::Closed],
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                created_from: Some(chrono::DateTime::UNIX_EPOCH),
                ..CaseFilter::default()
            },
            CaseFilter {
                categories: vec!["a".into(), "b".into()],
                statuses: vec![Status::Dispatched],
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                area_path: Some("/1/2/3/".into()),
                statuses: Status::ALL
                    .iter()
                    .copied()
                    .filter(|s| s.is_open())
                    .collect(),
                overdue: Some(true),
                ..CaseFilter::default()
            },
            CaseFilter {
                org_path: Some("/1/".into()),
                statuses: vec![Status::Reported, Status::Accepted],
                ..CaseFilter::default()
            },
            // Closed only, mixed and every status, by org, area and jurisdiction: a part per
            // index (open keys, closed paths).
            CaseFilter {
                org_path: Some("/1/2/3/".into()),
                statuses: vec![Status::Closed],
                ..CaseFilter::default()
            },
            CaseFilter {
                area_path: Some("/1/2/3/".into()),
                statuses: vec![Status::Closed, Status::Rejected, Status::Merged],
                ..CaseFilter::default()
            },
            CaseFilter {
                org_path: Some("/1/2/".into()),
                statuses: vec![Status::Reported, Status::Closed],
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                area_path: Some("/1/2/3/".into()),
                statuses: vec![Status::Merged, Status::Accepted],
                ..CaseFilter::default()
            },
            CaseFilter {
                org_path: Some("/1/2/".into()),
                overdue: Some(false),
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                statuses: vec![Status::Rejected],
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                statuses: Status::ALL
                    .iter()
                    .copied()
                    .filter(|s| s.is_open())
                    .collect(),
                ..CaseFilter::default()
            },
            CaseFilter {
                visible_to: vis.clone(),
                statuses: vec![Status::InProgress, Status::Closed, Status::Merged],
                ..CaseFilter::default()
            },
        ];
        let mut parts_checked = [0; 2];
        for f in &filters {
            for sort in [CaseSort::Newest, CaseSort::Deadline, CaseSort::Updated] {
                let conds = Sql::join(&conditions(f), " AND ", "1");
                let open = open_only(f);
                let ctx = format!("{sort:?} {f:?}");
                let sort_index = match (sort, open) {
                    (CaseSort::Newest, false) => "INTEGER PRIMARY KEY",
                    (CaseSort::Newest, true) => "INDEX cases_open_newest",
                    (CaseSort::Deadline, false) => "INDEX cases_deadline",
                    (CaseSort::Deadline, true) => "INDEX cases_open_deadline",
                    (CaseSort::Updated, false) => "INDEX cases_updated",
                    (CaseSort::Updated, true) => "INDEX cases_open_updated",
                };
                let ordered = |q: &Sql| {
                    let p = plan(&conn, q);
                    assert!(!p.contains("TEMP B-TREE"), "{ctx}: {p}");
                    // Newest first without a cursor is the table's own order.
                    let table = sort_index == "INTEGER PRIMARY KEY"
                        && p.split(" | ").next() == Some("SCAN cases");
                    assert!(p.contains(sort_index) || table, "{ctx}: {p}");
                    p
                };
                match choose(f) {
                    Plan::SearchedNewest(_) => unreachable!("only searches plan this"),
                    Plan::Lookup(hint) => {
                        let from = Sql::new(&format!(" FROM cases {hint} WHERE 1"));
                        let p = plan(&conn, &direct_query(sort, &from, &conds, Some(k), 51));
                        let want = match hint.strip_prefix("INDEXED BY ") {
                            Some(index) => format!("INDEX {index} ("),
                            None => "USING INTEGER PRIMARY KEY (rowid=?)".to_string(),
                        };
                        assert!(p.starts_with("SEARCH cases"), "{ctx}: {p}");
                        assert!(p.contains(&want), "{ctx}: {p}");
                        assert!(!p.contains("SCAN cases"), "{ctx}: {p}");
                    }
                    Plan::Sorted => {
                        let from = from_sorted(sort, open);
                        ordered(&direct_query(sort, &from, &conds, None, 51));
                        let p = ordered(&direct_query(sort, &from, &conds, Some(k), 51));
                        assert!(p.starts_with("SEARCH"), "{ctx}: {p}");
                    }
                    Plan::Adaptive(ids, keyed) => {
                        if let Some(kd) = &keyed {
                            let index = if f.org_path.is_some() {
                                "COVERING INDEX cases_open_org_keys ("
                            } else {
                                "COVERING INDEX cases_open_area_keys ("
                            };
                            for q in [
                                kd.ids(),
                                kd.keys(sort, None, 51),
                                kd.keys(sort, Some(k), 51),
                            ] {
                                let p = plan(&conn, &q);
                                assert!(p.starts_with("SEARCH cases USING"), "{ctx}: {p}");
                                assert!(p.contains(index), "{ctx}: {p}");
                                assert!(!p.contains("SCAN"), "{ctx}: {p}");
                            }
                        }
                        ordered(&walk_query(sort, open, &conds, None, 51));
                        let p = ordered(&walk_query(sort, open, &conds, Some(k), 51));
                        assert!(p.starts_with("SEARCH"), "{ctx}: {p}");
                        let p = plan(&conn, &collect_query(sort, &ids, &conds, Some(k), 51));
                        assert!(
                            p.starts_with("SEARCH cases USING INTEGER PRIMARY KEY (rowid=?)"),
                            "{ctx}: {p}"
                        );
                        let parts = driver_parts(f);
                        for part in &parts {
                            assert!(p.contains(part), "{ctx}: {part} in {p}");
                        }
                        // Only the list of categories, if any, is scanned.
                        assert!(!p.contains("SCAN cases"), "{ctx}: {p}");
                        // The id set alone (as counted): one search per part, each on its
                        // index, in order.
                        let p = plan(&conn, &ids);
                        let searches: Vec<&str> = p
                            .split(" | ")
                            .filter(|l| l.starts_with("SEARCH") || l.starts_with("SCAN"))
                            .collect();
                        assert_eq!(searches.len(), parts.len(), "{ctx}: {p}");
                        for (search, part) in searches.iter().zip(&parts) {
                            assert!(search.starts_with("SEARCH cases USING"), "{ctx}: {p}");
                            assert!(search.contains(part), "{ctx}: {part} in {p}");
                            if part.contains("cases_open_") {
                                parts_checked[0] += 1;
                            } else if part.contains("cases_status_") {
                                parts_checked[1] += 1;
                            }
                        }
                    }
                }
            }
        }
        // Both kinds of part were seen, for org, area and jurisdiction lists alike.
        assert!(parts_checked.iter().all(|&n| n > 50), "{parts_checked:?}");
    }

    /// What the id set of a sparse list searches, part by part: the box, a subtree's open
    /// keys and closed paths (by org, area, or both and the caller's own cases for a
    /// jurisdiction), or the period.
    fn driver_parts(f: &CaseFilter) -> Vec<String> {
        if f.within.is_some() {
            return vec!["COVERING INDEX cases_lat_lng (".into()];
        }
        let cols: &[&str] = match (&f.org_path, &f.area_path, &f.visible_to) {
            (Some(_), _, _) => &["org"],
            (None, Some(_), _) => &["area"],
            (None, None, Some(_)) => &["org", "area"],
            (None, None, None) => return vec!["COVERING INDEX cases_created (".into()],
        };
        let statuses = if f.statuses.is_empty() {
            Status::ALL
        } else {
            &f.statuses[..]
        };
        let mut out = Vec::new();
        for col in cols {
            let range = format!("(status=? AND {col}_path>? AND {col}_path<?)");
            if statuses.iter().any(|s| s.is_open()) {
                out.push(format!("COVERING INDEX cases_open_{col}_keys {range}"));
            }
            if statuses.iter().any(|s| !s.is_open()) {
                out.push(format!("COVERING INDEX cases_status_{col}_path {range}"));
            }
        }
        if f.org_path.is_none() && f.area_path.is_none() {
            out.push("INDEX cases_created_by (created_by=?)".into());
        }
        out
    }

    /// The partial indexes of subtrees, spelt as the statements that must use them repeat
    /// their conditions, and between them every status once.
    #[test]
    fn subtree_indexes_split_the_statuses() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let sql = |name: &str| -> String {
            conn.query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
        };
        for col in ["org", "area"] {
            assert!(sql(&format!("cases_open_{col}_keys")).ends_with(&format!("WHERE {OPEN}")));
            assert!(sql(&format!("cases_status_{col}_path")).ends_with(&format!("WHERE {CLOSED}")));
        }
        let closed: Vec<String> = Status::ALL
            .iter()
            .filter(|s| !s.is_open())
            .map(|s| format!("status = '{s}'"))
            .collect();
        assert_eq!(CLOSED, format!("({})", closed.join(" OR ")));
    }

    #[test]
    fn the_deadline_key_is_spelt_as_its_column_is_defined() {
        let init = include_str!("../../../migrations/sqlite/0001_init.sql");
        let def =
            format!("deadline_key   INTEGER GENERATED ALWAYS AS ({DEADLINE_KEY_EXPR}) VIRTUAL");
        assert!(init.contains(&def));
    }

    #[test]
    fn subtrees_within_subtrees() {
        assert!(subtree_within("/1/2/", "/1/"));
        assert!(subtree_within("/1/2/", "/1/2/"));
        assert!(subtree_within("/1/2/3/", "/1/2/"));
        assert!(!subtree_within("/1/", "/1/2/"));
        assert!(!subtree_within("/1/23/", "/1/2/"));
        assert!(!subtree_within("/1/3/", "/1/2/"));
        // A caller's path without its slash bounds more than its subtree, never less.
        assert!(!subtree_within("/1/23/", "/1/2"));
        assert!(subtree_within("/1/2/", "/1/2"));
    }

    #[test]
    fn open_condition_matches_the_domain() {
        let open: Vec<String> = Status::ALL
            .iter()
            .filter(|s| s.is_open())
            .map(|s| format!("status = '{s}'"))
            .collect();
        assert_eq!(OPEN, format!("({})", open.join(" OR ")));
    }

    /// Ends a share of the contract's cases (which it leaves open) in each final status, as
    /// history does, and returns every case as stored: lists of closed and of mixed statuses
    /// then collect from both kinds of path index.
    async fn finish_some(store: &crate::SqliteStore, n: i64) -> Vec<Case> {
        use gridloop_domain::calendar::Calendar;
        use gridloop_domain::case::Decision;
        use gridloop_store::Store;

        for id in 1..=n {
            let status = match id % 10 {
                0 | 3 | 7 => Status::Closed,
                5 => Status::Rejected,
                8 => Status::Merged,
                _ => continue,
            };
            store
                .update_case(
                    id,
                    None,
                    Box::new(move |case| {
                        let mut done = case.clone();
                        done.status = status;
                        done.overdue = false;
                        done.version += 1;
                        done.updated_at = case.updated_at + chrono::Duration::minutes(id % 17);
                        Ok(Decision::new(
                            Some(case),
                            done,
                            Vec::new(),
                            &Calendar::default(),
                        ))
                    }),
                )
                .await
                .unwrap();
        }
        let mut all = Vec::new();
        for id in 1..=n {
            all.push(store.case(id).await.unwrap().unwrap());
        }
        all
    }

    /// Lists of closed cases only and of open and closed ones, by org, area and jurisdiction,
    /// on top of the contract's matrix.
    fn closed_and_mixed_filters() -> Vec<CaseFilter> {
        let vis = |path: &str| {
            Some(Visibility {
                path: path.into(),
                username: "u".into(),
            })
        };
        let mut out = Vec::new();
        for (org, area, visible_to) in [
            (None, None, vis("/1/2/")),
            (None, None, vis("/1/")),
            (Some("/1/2/4/"), None, None),
            (Some("/1/"), None, vis("/1/2/")),
            (None, Some("/1/2/3/"), None),
            (None, Some("/1/5/"), vis("/1/")),
        ] {
            for statuses in [
                vec![],
                vec![Status::Closed],
                vec![Status::Closed, Status::Rejected, Status::Merged],
                vec![Status::Reported, Status::Closed],
                vec![
                    Status::Accepted,
                    Status::Dispatched,
                    Status::Merged,
                    Status::Rejected,
                ],
            ] {
                for overdue in [None, Some(false)] {
                    out.push(CaseFilter {
                        visible_to: visible_to.clone(),
                        org_path: org.map(str::to_string),
                        area_path: area.map(str::to_string),
                        statuses: statuses.clone(),
                        overdue,
                        ..CaseFilter::default()
                    });
                }
            }
        }
        out
    }

    /// The contract's list matrix (`gridloop_store_contract::lists`, which every store runs
    /// through `Store::list_cases`, so with the walk's default budget) with the budget at its
    /// minimum: sparse lists are collected from the path indexes. A share of the cases is
    /// closed, and lists of closed and of mixed statuses are added.
    #[tokio::test]
    async fn pages_match_a_plain_filter_and_sort() {
        use gridloop_store_contract::lists::{expected, filters, populate};

        let dir = gridloop_store_contract::TempDir::new("sqlite-list-budget");
        let store = crate::SqliteStore::open(dir.path()).unwrap();
        let all = populate(&store).await;
        let all = finish_some(&store, all.len() as i64).await;
        assert!(all.iter().any(|c| c.status == Status::Merged));
        let conn = Connection::open(dir.path().join("gridloop.db")).unwrap();
        crate::codec::register_functions(&conn).unwrap();
        for f in filters().into_iter().chain(closed_and_mixed_filters()) {
            for sort in [CaseSort::Newest, CaseSort::Deadline, CaseSort::Updated] {
                let f = CaseFilter { sort, ..f.clone() };
                let want = expected(&all, &f);
                for limit in [3, 200] {
                    let got = paged(&conn, &f, limit, 0);
                    assert_eq!(got, want, "budget 0, limit {limit}, {f:?}");
                }
            }
        }
    }

    /// Searches are collected from the cases holding the query's terms when those are few,
    /// and give what a plain substring filter gives: words of the title and the number,
    /// Chinese and ASCII, LIKE's wildcards, one character (no term), within a
    /// subtree and a status, over any page size.
    #[tokio::test]
    async fn searches_match_a_plain_filter_and_sort() {
        use gridloop_store_contract::lists::{expected, populate};

        let dir = gridloop_store_contract::TempDir::new("sqlite-list-search");
        let store = crate::SqliteStore::open(dir.path()).unwrap();
        let all = populate(&store).await;
        let all = finish_some(&store, all.len() as i64).await;
        let conn = Connection::open(dir.path().join("gridloop.db")).unwrap();
        crate::codec::register_functions(&conn).unwrap();
        let number = all[17].number[4..10].to_string();
        let mut searched = 0;
        for q in [
            "case 29",
            "ase 2",
            "50%_",
            "%_x",
            "x",
            "2",
            &number,
            "不存在",
            "",
        ] {
            for (org_path, statuses) in [
                (None, vec![]),
                (Some("/1/2/"), vec![]),
                (None, vec![Status::Reported, Status::Accepted]),
            ] {
                for sort in [CaseSort::Newest, CaseSort::Deadline] {
                    let f = CaseFilter {
                        q: Some(q.to_string()),
                        org_path: org_path.map(str::to_string),
                        statuses: statuses.clone(),
                        sort,
                        ..CaseFilter::default()
                    };
                    if matches!(with_search(&conn, &f, choose(&f), SEARCH_DRIVES).unwrap(), Plan::Adaptive(ref ids, None) if ids.text.contains("cases_search"))
                    {
                        searched += 1;
                    }
                    let want = expected(&all, &f);
                    for limit in [3, 200] {
                        for budget in [0, WALK_BUDGET] {
                            let got = paged(&conn, &f, limit, budget);
                            assert_eq!(got, want, "limit {limit}, budget {budget}, {f:?}");
                        }
                    }
                }
            }
        }
        assert!(searched >= 30, "{searched}");
        // Every case is indexed, by the store's insert rather than a trigger (0018).
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(
            count("SELECT count(*) FROM cases_search"),
            count("SELECT count(*) FROM cases")
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'cases'"
            ),
            0
        );
        // A character held by no case: the bounded walk stops with an empty page and a
        // cursor to go on, instead of reading every case.
        let none = CaseFilter {
            q: Some("龘".into()),
            limit: 3,
            ..CaseFilter::default()
        };
        let page = list_narrowed(&conn, &none, 0).unwrap();
        assert!(page.items.is_empty() && page.next_cursor.is_some());
        assert!(paged(&conn, &none, 3, 0).is_empty());
        // Common words newest first: the candidates in the index's order, no sort.
        for (q, cursor) in [("case 1", None), ("ase", Some(Key { id: 90, value: 90 }))] {
            let f = CaseFilter {
                q: Some(q.into()),
                visible_to: Some(Visibility {
                    path: "/1/2/".into(),
                    username: "u".into(),
                }),
                ..CaseFilter::default()
            };
            let conds = Sql::join(&conditions(&f), " AND ", "1");
            let terms = crate::search::match_query(q).unwrap();
            let p = plan(&conn, &searched_newest_query(terms, &conds, cursor, 51));
            assert!(p.starts_with("SCAN cases_search VIRTUAL TABLE"), "{p}");
            assert!(!p.contains("TEMP B-TREE"), "{p}");
        }
    }

    /// Lists decided on the keys of open cases (a queue, an overdue list of a subtree) give
    /// exactly the plain filter's pages, overdue or not, in every order, collected at once or
    /// after a walk, within the caller's subtree or not (then visibility is checked on the rows).
    #[tokio::test]
    async fn keyed_lists_match_a_plain_filter_and_sort() {
        use gridloop_domain::calendar::Calendar;
        use gridloop_domain::case::Ctx;
        use gridloop_domain::policy::Policy;
        use gridloop_store::Store;
        use gridloop_store_contract::lists::{expected, populate};

        let dir = gridloop_store_contract::TempDir::new("sqlite-list-keyed");
        let store = crate::SqliteStore::open(dir.path()).unwrap();
        populate(&store).await;
        // Some closed, the rest of the lists' candidates in every subtree.
        let all = finish_some(&store, 300).await;
        // Some open cases past their deadline, as the sweep leaves them.
        let mut swept = 0;
        for c in &all {
            if !(c.status.is_open() && c.deadline.is_some() && c.id % 3 != 0) {
                continue;
            }
            store
                .update_case(
                    c.id,
                    None,
                    Box::new(|case| {
                        let (calendar, policy) = (Calendar::default(), Policy::default());
                        let ctx = Ctx {
                            now: case.created_at + chrono::Duration::days(400),
                            calendar: &calendar,
                            policy: &policy,
                        };
                        gridloop_domain::sweep::sweep(case, &ctx)
                            .ok_or_else(|| panic!("case {} is not due", case.id))
                    }),
                )
                .await
                .unwrap();
            swept += 1;
        }
        let mut all = Vec::new();
        for id in 1..=300 {
            all.push(store.case(id).await.unwrap().unwrap());
        }
        let overdue = all.iter().filter(|c| c.overdue).count();
        assert!(overdue > 10 && overdue == swept, "{overdue} of {swept}");
        let open: Vec<Status> = Status::ALL
            .iter()
            .copied()
            .filter(|s| s.is_open())
            .collect();
        let vis = |path: &str| {
            Some(Visibility {
                path: path.into(),
                username: "u".into(),
            })
        };
        let mut filters = Vec::new();
        for (org, area) in [
            (Some("/1/2/4/"), None),
            (None, Some("/1/2/3/")),
            (None, Some("/1/5/")),
            (Some("/1/"), None),
            (None, Some("/1/")),
        ] {
            for visible_to in [None, vis("/1/2/"), vis("/1/5/")] {
                for statuses in [
                    open.clone(),
                    vec![Status::Reported, Status::Accepted],
                    // Not keyed: collected from both kinds of path index.
                    vec![Status::Closed],
                    vec![Status::Reported, Status::Closed, Status::Merged],
                    vec![],
                ] {
                    for o in [None, Some(true), Some(false)] {
                        filters.push(CaseFilter {
                            visible_to: visible_to.clone(),
                            org_path: org.map(str::to_string),
                            area_path: area.map(str::to_string),
                            statuses: statuses.clone(),
                            overdue: o,
                            ..CaseFilter::default()
                        });
                    }
                }
            }
        }
        // As the cases list asks for an overdue list: no status.
        filters.push(CaseFilter {
            visible_to: vis("/1/"),
            area_path: Some("/1/2/3/".into()),
            overdue: Some(true),
            ..CaseFilter::default()
        });
        let conn = Connection::open(dir.path().join("gridloop.db")).unwrap();
        crate::codec::register_functions(&conn).unwrap();
        let mut keyed_lists = 0;
        for f in filters {
            for sort in [CaseSort::Newest, CaseSort::Deadline, CaseSort::Updated] {
                let f = CaseFilter { sort, ..f.clone() };
                let want = expected(&all, &f);
                if keyed(&f).is_some() {
                    keyed_lists += 1;
                }
                for budget in [0, WALK_BUDGET] {
                    for limit in [3, 200] {
                        let got = paged(&conn, &f, limit, budget);
                        assert_eq!(got, want, "budget {budget}, limit {limit}, {f:?}");
                    }
                }
            }
        }
        assert!(keyed_lists > 100, "{keyed_lists}");
    }

    /// A street's queue (the common list) runs the same statements page after page: SQLite
    /// re-prepares one whose plan depended on a bound value at every new binding.
    #[tokio::test]
    async fn a_queue_reuses_its_statements() {
        use gridloop_store_contract::lists::populate;
        use rusqlite::StatementStatus;

        let dir = gridloop_store_contract::TempDir::new("sqlite-list-reprepare");
        let store = crate::SqliteStore::open(dir.path()).unwrap();
        populate(&store).await;
        let conn = Connection::open(dir.path().join("gridloop.db")).unwrap();
        crate::codec::register_functions(&conn).unwrap();
        let f = CaseFilter {
            visible_to: Some(Visibility {
                path: "/1/2/".into(),
                username: "u".into(),
            }),
            org_path: Some("/1/2/4/".into()),
            statuses: vec![Status::Reported, Status::Accepted],
            sort: CaseSort::Deadline,
            limit: 50,
            ..CaseFilter::default()
        };
        for _ in 0..3 {
            list_cases(&conn, &f).unwrap();
        }
        let Plan::Adaptive(_, Some(keyed)) = choose(&f) else {
            panic!("a queue is collected from the keys of its subtree")
        };
        let count = Sql::new("SELECT count(*) FROM (")
            .append(&keyed.ids())
            .push(&limit_clause(51 * WALK_PROBE))
            .push(")");
        for q in [count, keyed.keys(f.sort, None, 51)] {
            // Taken from the cache: the statements the lists ran.
            let stmt = conn.prepare_cached(&q.text).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::Run), 3, "{}", q.text);
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{}", q.text);
        }
        let docs = conn
            .prepare_cached("SELECT doc FROM case_docs WHERE id = ?1")
            .unwrap();
        assert!(docs.get_status(StatementStatus::Run) >= 3);
        assert_eq!(docs.get_status(StatementStatus::RePrepare), 0);

        // Nor does a subtree of open and closed statuses: as many bound statuses in a part
        // as the other part's index lists (three) must not make its plan depend on them.
        for statuses in [
            vec![Status::Reported, Status::Accepted, Status::Dispatched],
            vec![Status::Accepted, Status::InProgress, Status::Replied],
        ] {
            let f = CaseFilter {
                org_path: Some("/1/2/".into()),
                statuses: [statuses, vec![Status::Closed, Status::Rejected]].concat(),
                ..f.clone()
            };
            let Plan::Adaptive(ids, None) = choose(&f) else {
                panic!("a list of mixed statuses is not keyed")
            };
            for _ in 0..3 {
                list_with_budget(&conn, &f, 0).unwrap();
            }
            let count = Sql::new("SELECT count(*) FROM (")
                .append(&ids)
                .push(&limit_clause(51 * WALK_PROBE))
                .push(")");
            let stmt = conn.prepare_cached(&count.text).unwrap();
            assert!(stmt.get_status(StatementStatus::Run) >= 3, "{}", count.text);
            assert_eq!(
                stmt.get_status(StatementStatus::RePrepare),
                0,
                "{}",
                count.text
            );
        }
    }

    fn paged(conn: &Connection, f: &CaseFilter, limit: u32, budget: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = list_narrowed(
                conn,
                &CaseFilter {
                    limit,
                    cursor,
                    ..f.clone()
                },
                budget,
            )
            .unwrap();
            assert!(page.items.len() <= limit as usize);
            out.extend(page.items.iter().map(|c| c.id));
            match page.next_cursor {
                Some(c) => {
                    // Only a bounded search stops short of a full page.
                    if !unindexed_search(f) {
                        assert_eq!(page.items.len(), limit as usize);
                    }
                    cursor = Some(c);
                }
                None => return out,
            }
        }
    }

    /// Thread CPU time in nanoseconds (Linux), for the bench below.
    fn thread_cpu_ns() -> u64 {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// CPU per list of the load's two street lists on a seeded store, read-only:
    /// `GRIDLOOP_LIST_BENCH=/work/p10m cargo test --release -p gridloop-store-sqlite
    /// list_bench -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn list_bench() {
        let Ok(dir) = std::env::var("GRIDLOOP_LIST_BENCH") else {
            return;
        };
        let conn =
            crate::schema::open_reader(&std::path::Path::new(&dir).join("gridloop.db")).unwrap();
        let streets: Vec<String> = conn
            .prepare("SELECT path FROM orgs WHERE code >= '330001' AND code <= '331000' AND length(code) = 6 ORDER BY code")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let env = |k: &str, d: usize| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        // The load logs in as 16 street dispatchers: their lists stay in the page cache.
        let (rounds, n) = (env("ROUNDS", 3), env("STREETS", 16));
        let step = (streets.len() / n.max(1)).max(1);
        let streets: Vec<String> = streets.into_iter().step_by(step).take(n).collect();
        let repeat = env("REPEAT", 50);
        let only = std::env::var("ONLY").unwrap_or_default();
        for (name, overdue) in [("overdue", true), ("queue", false)] {
            if !only.is_empty() && only != name {
                continue;
            }
            let filters: Vec<CaseFilter> = streets
                .iter()
                .map(|p| CaseFilter {
                    visible_to: Some(Visibility {
                        path: p.clone(),
                        username: "x-dispatcher".into(),
                    }),
                    area_path: overdue.then(|| p.clone()),
                    org_path: (!overdue).then(|| p.clone()),
                    overdue: overdue.then_some(true),
                    statuses: if overdue {
                        vec![]
                    } else {
                        vec![Status::Reported, Status::Accepted]
                    },
                    sort: CaseSort::Deadline,
                    limit: 50,
                    ..CaseFilter::default()
                })
                .collect();
            for round in 0..rounds {
                let (t0, w0) = (thread_cpu_ns(), std::time::Instant::now());
                let mut items = 0;
                for _ in 0..repeat {
                    for f in &filters {
                        items += list_cases(&conn, f).unwrap().items.len();
                    }
                }
                let lists = (filters.len() * repeat) as f64;
                let cpu = (thread_cpu_ns() - t0) as f64 / lists / 1000.0;
                let wall = w0.elapsed().as_secs_f64() * 1e6 / lists;
                println!(
                    "{name} round {round}: {lists} lists, {items} items, {cpu:.0} µs CPU, {wall:.0} µs wall a list"
                );
            }
        }
    }

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(like_pattern("井盖"), "%井盖%");
    }
}
