//! Text search (`q`) by index: every case's number, title and description as a set of terms
//! in `cases_search` (migration 0017), so that a search among millions of cases reads the
//! few that can match instead of every document.
//!
//! A term is a pair of adjacent letters or digits (a bigram, as CJK search engines index
//! Chinese, which has no spaces between words): `路灯不亮` holds `路灯 灯不 不亮`; a run of
//! digits also holds its runs of four (`0413`), which find a number. Any text
//! that contains the query contains every pair of the query, so the cases holding all the
//! query's pairs are a superset of the matches, and the list's substring condition (LIKE,
//! `list.rs`) then decides exactly as before. A query without a pair (one character, or
//! only punctuation) has no terms and reads the documents as it always did.
//!
//! Letters are folded to lower case for ASCII only, as LIKE does (and as FTS5's `ascii`
//! tokenizer, which keeps every non-ASCII character as part of a term).

use std::cell::{Cell, RefCell};

use gridloop_store::{Result, StoreError};
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;

use crate::codec::{self, Kind};
use crate::sql::Db;

/// Appends the terms of `text` to `out`, separated by spaces: pairs of adjacent letters or
/// digits, and runs of four ASCII digits as well, since pairs of digits are too common to
/// find a number by (every case number holds most of them).
fn push_terms(text: &str, out: &mut String) {
    let mut prev: Option<char> = None;
    // The last ASCII digits in a row, at most four.
    let mut digits: Vec<char> = Vec::with_capacity(4);
    let push = |term: &[char], out: &mut String| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(term);
    };
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if !c.is_alphanumeric() {
            prev = None;
            digits.clear();
            continue;
        }
        if let Some(p) = prev {
            push(&[p, c], out);
        }
        prev = Some(c);
        if c.is_ascii_digit() {
            if digits.len() == 4 {
                digits.remove(0);
            }
            digits.push(c);
            if digits.len() == 4 {
                push(&digits, out);
            }
        } else {
            digits.clear();
        }
    }
}

/// The terms of a case's searchable texts.
pub(crate) fn terms(texts: &[&str]) -> String {
    let mut out = String::new();
    for t in texts {
        push_terms(t, &mut out);
    }
    out
}

/// The FTS5 query for the cases that may contain `q`: all of its terms, each quoted (terms
/// hold letters and digits only). `None` when `q` has no term.
pub(crate) fn match_query(q: &str) -> Option<String> {
    let mut all = String::new();
    push_terms(q, &mut all);
    let mut seen: Vec<&str> = all.split(' ').filter(|t| !t.is_empty()).collect();
    seen.sort_unstable();
    seen.dedup();
    // Pairs of digits within a run of four add nothing to it, and each is held by nearly
    // every case (the numbers): reading their lists made a number's search slow.
    let runs: Vec<&str> = seen
        .iter()
        .copied()
        .filter(|t| t.len() == 4 && is_digits(t))
        .collect();
    seen.retain(|t| !(t.len() == 2 && is_digits(t) && runs.iter().any(|r| r.contains(t))));
    if seen.is_empty() {
        return None;
    }
    let quoted: Vec<String> = seen.iter().map(|t| format!("\"{t}\"")).collect();
    Some(quoted.join(" AND "))
}

fn is_digits(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_digit())
}

thread_local! {
    /// New cases' terms held back until the end of the write batch they belong to, while a
    /// [`DeferredTerms`] is alive on this thread.
    static DEFERRED: RefCell<Option<Vec<(i64, String)>>> = const { RefCell::new(None) };
    /// New cases indexed on this thread whose merge work no step has done yet
    /// ([`merge_step`]).
    static MERGE_BUDGET: Cell<usize> = const { Cell::new(0) };
}

/// A new case's search terms (migration 0017).
pub(crate) const INSERT: &str = "INSERT INTO cases_search (rowid, terms) VALUES (?1, ?2)";

/// A step of merging the index's segments: at most `?1` pages (4 KiB each) written,
/// continuing a merge under way or starting one on a level of 16 segments (migration 0022).
const MERGE_STEP: &str = "INSERT INTO cases_search (cases_search, rank) VALUES ('merge', ?1)";

/// New cases that earn a page of merge work. A case's terms take ~70 bytes of the index
/// and are rewritten about once per level (four or five at 10M cases): ~0.08 page a case.
/// A page per four cases keeps merges three times ahead of that, and merges the largest
/// level of a 10M store (160,000 pages) in the time 640,000 cases come in.
const CASES_PER_MERGE_PAGE: usize = 4;
/// The smallest step taken: a step costs ~0.4 ms before any page (finding its place in
/// every segment it merges), so batches of a few cases save their pages up for it.
const MERGE_STEP_MIN: usize = 16;
/// The largest step taken: ~5 ms (and up to ~20) of one batch's time; a bulk import's
/// batches of thousands of cases fall behind and leave the rest to crisis merges.
const MERGE_STEP_MAX: usize = 64;

/// Merges as much of the index as the new cases written on this thread have earned, once
/// that is worth a step. Before, all merging waited for a level to fill up and then merged
/// it at once inside one batch: ~15 s for the level holding an import's large segment,
/// every writer held back. A fixed step in every batch cost batches of a few cases more
/// than their own writing while a large level merged (16 clients at 10M: 570–720 cases/s).
fn merge_step(conn: &Connection, cases: usize) -> Result<()> {
    let pages = MERGE_BUDGET.with(|b| {
        let earned = b.get() + cases;
        let pages = earned / CASES_PER_MERGE_PAGE;
        let spend = pages >= MERGE_STEP_MIN;
        b.set(if spend { 0 } else { earned });
        spend.then_some(pages.min(MERGE_STEP_MAX))
    });
    if let Some(pages) = pages {
        conn.prepare_cached(MERGE_STEP)
            .db()?
            .execute([pages as i64])
            .db()?;
    }
    Ok(())
}

/// Merges the whole index into one segment, at the end of a bulk import. An import's
/// batches are too large for the merge steps to keep up: at 10M cases they left ~100
/// segments, with merges of the largest levels pending that the first intake after the
/// seed had to finish, and once a level reached `crisismerge` it merged all at once (one
/// batch held for 6.3 s). Merging everything at once here took 13 s at 10M.
pub(crate) fn merge_all(conn: &Connection) -> Result<()> {
    conn.execute(
        "INSERT INTO cases_search (cases_search) VALUES ('optimize')",
        [],
    )
    .db()?;
    Ok(())
}

/// Writes a new case's terms with `insert` ([`INSERT`] prepared), or, inside a writer's
/// batch, holds them until [`DeferredTerms::write`].
pub(crate) fn index(insert: &mut rusqlite::Statement<'_>, id: i64, terms: String) -> Result<()> {
    let held = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(held) => {
            held.push((id, terms));
            None
        }
        None => Some(terms),
    });
    if let Some(terms) = held {
        insert.execute(rusqlite::params![id, terms]).db()?;
    }
    Ok(())
}

/// The search terms of a write batch's new cases, written once its jobs are done.
///
/// FTS5 writes the terms it holds in memory to disk as a new segment whenever a savepoint
/// opens or is released after them, and the writer runs each job of a batch in a savepoint
/// of its own. Indexed as each case went in, every new case became a segment of its own, and
/// writing and merging those (16 to a level) was ~23% of the writer's time under intake at
/// 10M, with stalls of ~25 s when a merge reached the large segments (issue #5). Written
/// after the batch's last savepoint, a batch's cases make one segment, and the batch then
/// merges segments in a bounded step.
/// Only the writer's batches hold terms back; elsewhere (a copy, a test) they go in at once.
pub(crate) struct DeferredTerms(());

impl DeferredTerms {
    pub fn start() -> DeferredTerms {
        DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
        DeferredTerms(())
    }

    /// How many terms are held: what a job that fails gives back to.
    pub fn mark(&self) -> usize {
        DEFERRED.with(|d| d.borrow().as_ref().map_or(0, Vec::len))
    }

    /// Forgets the terms of a job rolled back to its savepoint.
    pub fn forget_since(&self, mark: usize) {
        DEFERRED.with(|d| {
            if let Some(held) = d.borrow_mut().as_mut() {
                held.truncate(mark);
            }
        });
    }

    /// Writes the held terms, in case order, inside the batch's transaction, and merges as
    /// much of the index as they have earned ([`merge_step`]).
    pub fn write(&self, conn: &Connection) -> Result<()> {
        let held = DEFERRED.with(|d| d.borrow_mut().as_mut().map(std::mem::take));
        let mut held = held.unwrap_or_default();
        if held.is_empty() {
            return Ok(());
        }
        held.sort_unstable_by_key(|(id, _)| *id);
        let mut insert = conn.prepare_cached(INSERT).db()?;
        for (id, terms) in &held {
            insert.execute(rusqlite::params![id, terms]).db()?;
        }
        merge_step(conn, held.len())
    }
}

impl Drop for DeferredTerms {
    /// Whatever is still held belongs to a batch rolled back.
    fn drop(&mut self) {
        DEFERRED.with(|d| *d.borrow_mut() = None);
    }
}

/// The fields of a stored case document that are searched.
#[derive(serde::Deserialize)]
struct Searched<'a> {
    #[serde(borrow, default)]
    title: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    description: std::borrow::Cow<'a, str>,
}

/// `case_terms(number, doc)`: the terms of a case row, for the migration that indexed the
/// cases before it (0017). New cases are indexed by the store's insert (`cases.rs`).
pub(crate) fn register(conn: &Connection) -> Result<()> {
    conn.create_scalar_function(
        "case_terms",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let number = match ctx.get_raw(0) {
                ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or_default(),
                _ => "",
            };
            let json = codec::decode(Kind::Case, ctx.get_raw(1))
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            let doc: Searched<'_> = serde_json::from_slice(&json)
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            Ok(terms(&[number, &doc.title, &doc.description]))
        },
    )
    .map_err(|e| StoreError::Backend(format!("cannot register case_terms: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_of_letters_and_digits() {
        assert_eq!(terms(&["路灯不亮"]), "路灯 灯不 不亮");
        assert_eq!(terms(&["井盖，破损"]), "井盖 破损");
        assert_eq!(terms(&["No.12", "AB"]), "no 12 ab");
        assert_eq!(terms(&["0413-9"]), "04 41 13 0413");
        assert_eq!(terms(&["20240"]), "20 02 24 2024 40 0240");
        assert_eq!(terms(&["噪", "", "!!"]), "");
        assert_eq!(
            match_query("破损 井盖 井盖").as_deref(),
            Some("\"井盖\" AND \"破损\"")
        );
        assert_eq!(match_query("噪"), None);
        assert_eq!(
            match_query("0413-77").as_deref(),
            Some("\"0413\" AND \"77\"")
        );
        assert_eq!(match_query("A0413").as_deref(), Some("\"0413\" AND \"a0\""));
        assert_eq!(match_query("%_ -"), None);
    }

    /// Every substring of a text has its terms among the text's: the index never loses a
    /// match of the substring condition.
    #[test]
    fn every_substring_has_its_terms_in_the_text() {
        let texts = [
            "小区门口路灯不亮已经三天了，晚上出行不便，请尽快修复。",
            "Case 20250301-000123: 垃圾桶满溢 (No.5 楼)",
            "噪音扰民 ABC-def 12号",
        ];
        for text in texts {
            let all: std::collections::HashSet<String> =
                terms(&[text]).split(' ').map(str::to_string).collect();
            let chars: Vec<char> = text.chars().collect();
            for i in 0..chars.len() {
                for j in i + 1..=chars.len() {
                    let q: String = chars[i..j].iter().collect();
                    let mut qt = String::new();
                    push_terms(&q, &mut qt);
                    for t in qt.split(' ').filter(|t| !t.is_empty()) {
                        assert!(all.contains(t), "{q:?} in {text:?}: {t}");
                    }
                }
            }
        }
    }

    fn config(conn: &Connection, key: &str) -> i64 {
        conn.query_row(
            "SELECT v FROM cases_search_config WHERE k = ?1",
            [key],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// The number of segments in the index, from the header of FTS5's structure record
    /// (a 4-byte cookie, then the number of levels and of segments as varints).
    fn segments(conn: &Connection) -> u64 {
        let block: Vec<u8> = conn
            .query_row(
                "SELECT block FROM cases_search_data WHERE id = 10",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut at = 4;
        let mut varint = || {
            let mut v = 0u64;
            loop {
                let b = block[at];
                at += 1;
                v = (v << 7) | u64::from(b & 0x7f);
                if b & 0x80 == 0 {
                    return v;
                }
            }
        };
        let _levels = varint();
        varint()
    }

    /// How many cases the index finds for `q`.
    fn found(conn: &Connection, q: &str) -> i64 {
        conn.query_row(
            "SELECT count(*) FROM cases_search WHERE cases_search MATCH ?1",
            [match_query(q).unwrap()],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// The index merges in steps taken by write batches, never on its own (migrations 0017
    /// and 0022).
    #[test]
    fn the_index_merges_only_in_steps() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        assert_eq!(config(&conn, "automerge"), 0);
        assert_eq!(config(&conn, "usermerge"), 16);
        assert_eq!(config(&conn, "crisismerge"), 64);
    }

    /// Each batch adds a segment; the steps its cases earn keep their number near 16 (here a
    /// step every 16 batches of four cases), where without them 40 batches would leave 40
    /// (the crisis merge waits for 64).
    #[test]
    fn batches_merge_the_segments_they_add() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let mut id = 0;
        for _batch in 0..40 {
            conn.execute_batch("BEGIN").unwrap();
            let held = DeferredTerms::start();
            let mut insert = conn.prepare_cached(INSERT).unwrap();
            for _case in 0..4 {
                id += 1;
                index(&mut insert, id, terms(&[&format!("路灯不亮{id}")])).unwrap();
            }
            held.write(&conn).unwrap();
            drop(insert);
            conn.execute_batch("COMMIT").unwrap();
        }
        let n = segments(&conn);
        assert!((1..=17).contains(&n), "{n} segments after 40 batches");
        // Merged, every case is still found.
        assert_eq!(found(&conn, "路灯"), 160);
    }

    /// What a bulk import leaves merges into one segment, every case still found.
    #[test]
    fn an_import_leaves_one_segment() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let mut insert = conn.prepare(INSERT).unwrap();
        for id in 1..=20 {
            // One segment each: every insert is its own transaction, outside a batch.
            index(&mut insert, id, terms(&[&format!("井盖缺失{id}")])).unwrap();
        }
        drop(insert);
        assert_eq!(segments(&conn), 20);
        merge_all(&conn).unwrap();
        assert_eq!(segments(&conn), 1);
        assert_eq!(found(&conn, "井盖"), 20);
    }
}
