//! Measures: counters per org and local day, gauges per org.
//!
//! A decision's [`MeasureDelta`] counts at the case's area org and at every ancestor of it
//! (the codes on the area path), so the measures of any subtree are one primary-key read
//! of its root org, whatever its size.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::NaiveDate;
use gridloop_domain::measures::{Counters, MeasureDelta};
use gridloop_domain::org::path_codes;
use gridloop_store::Result;
use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::{Db, collect, get};

/// Deltas summed per row before they are written: a bulk import of thousands of cases in a
/// few orgs and days becomes a few hundred upserts.
///
/// Keyed by org first, so that adding looks an org up by `&str` and allocates its code once
/// per org, not once per case, day and level (a bulk import adds millions of entries).
#[derive(Debug, Default)]
pub(crate) struct RollupDelta {
    counters: BTreeMap<String, BTreeMap<NaiveDate, Counters>>,
    gauges: BTreeMap<String, BTreeMap<&'static str, i64>>,
    /// Orgs with counters that a path placed right under its root, with the root: their
    /// running totals are laid out side by side under it ([`write_by_parent`]).
    under_root: BTreeMap<String, String>,
    /// Orgs with counters added without a path ([`RollupDelta::add_day`]): whether they sit
    /// right under a root is asked of the org tree when written.
    without_path: BTreeSet<String>,
    /// Orgs with counters that a path placed near its root (above [`RUNNING_DEPTH`]): they
    /// keep running totals.
    near_root: BTreeSet<String>,
}

/// Orgs this near a root (the root itself and its children) keep running totals of their
/// counters (`rollup_running`) and gauges (`rollup_gauges`); the counters of deeper orgs are
/// summed from their days, and their gauges counted from their cases' index entries.
///
/// A root or its child has counters on nearly every day and a large share of all cases, and
/// the province's dashboard reads a thousand children at once: two lookups an org whatever
/// the period. A community, grid or unit has a few dozen to a few hundred days of counters in
/// all and a few hundred cases, a short range read of either, while keeping their rollups
/// cost every new case and every change of status three more scattered pages each
/// (migrations 0014 and 0016).
const RUNNING_DEPTH: usize = 2;

/// Whether an org with this path is near a root ([`RUNNING_DEPTH`]).
fn near_root_path(path: &str) -> bool {
    path_codes(path).nth(RUNNING_DEPTH).is_none()
}

impl RollupDelta {
    /// Adds a case's delta at its area and every ancestor.
    pub fn add(&mut self, area_path: &str, delta: &MeasureDelta) {
        if delta.is_empty() {
            return;
        }
        for (depth, org) in path_codes(area_path).enumerate() {
            if depth < RUNNING_DEPTH && !delta.counters.is_empty() && !self.near_root.contains(org)
            {
                self.near_root.insert(org.to_string());
            }
            if depth == 1
                && !delta.counters.is_empty()
                && !self.under_root.contains_key(org)
                && let Some(root) = path_codes(area_path).next()
            {
                self.under_root.insert(org.to_string(), root.to_string());
            }
            if !delta.counters.is_empty() {
                let days = match self.counters.get_mut(org) {
                    Some(days) => days,
                    None => self.counters.entry(org.to_string()).or_default(),
                };
                for (day, c) in &delta.counters {
                    days.entry(*day).or_default().add(c);
                }
            }
            if !delta.gauges.is_empty() && depth < RUNNING_DEPTH {
                let keys = match self.gauges.get_mut(org) {
                    Some(keys) => keys,
                    None => self.gauges.entry(org.to_string()).or_default(),
                };
                for (key, n) in &delta.gauges {
                    *keys.entry(key.as_str()).or_default() += n;
                }
            }
        }
    }

    /// Adds one org's counters of one day as they are (a row copied from another store).
    pub fn add_day(&mut self, org: &str, day: NaiveDate, c: &Counters) {
        if !self.without_path.contains(org) {
            self.without_path.insert(org.to_string());
        }
        self.counters
            .entry(org.to_string())
            .or_default()
            .entry(day)
            .or_default()
            .add(c);
    }

    /// For a job of a bulk import: the days are appended to `rollup_days_staged`
    /// (migration 0020) and summed into the daily counters at the import's end
    /// ([`merge_staged_days`]); the tables derived from the days (the running totals) are
    /// built then too ([`rebuild_derived`]), as the deferred indexes are: per row they were
    /// most of the import's writer time. The gauges, a few rows near the roots, are written
    /// as usual.
    pub fn stage_days(&self, conn: &Connection) -> Result<()> {
        bump_generation(conn)?;
        self.put_days(
            conn,
            "INSERT INTO rollup_days_staged
                 (org, day, received, closed, closed_on_time, rework, rated, satisfied)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        self.write_gauges(conn)
    }

    pub fn write(&self, conn: &Connection) -> Result<()> {
        // Even when empty: an import writes gauges itself, then calls this.
        bump_generation(conn)?;
        if !self.counters.is_empty() {
            self.put_days(
                conn,
                "INSERT INTO rollup_counters
                     (org, day, received, closed, closed_on_time, rework, rated, satisfied)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (org, day) DO UPDATE SET
                     received = received + excluded.received,
                     closed = closed + excluded.closed,
                     closed_on_time = closed_on_time + excluded.closed_on_time,
                     rework = rework + excluded.rework,
                     rated = rated + excluded.rated,
                     satisfied = satisfied + excluded.satisfied",
            )?;
            self.write_running(conn)?;
            self.write_by_parent(conn)?;
        }
        self.write_gauges(conn)
    }

    /// Runs `sql` (parameters: org, day, then the six counters) for each org's day with
    /// counters.
    fn put_days(&self, conn: &Connection, sql: &str) -> Result<()> {
        let mut put = conn.prepare_cached(sql).db()?;
        let rows = self
            .counters
            .iter()
            .flat_map(|(org, days)| days.iter().map(move |(day, c)| (org, day, c)));
        for (org, day, c) in rows.filter(|(_, _, c)| !c.is_zero()) {
            put.execute(params![
                org,
                day.to_string(),
                c.received,
                c.closed,
                c.closed_on_time,
                c.rework,
                c.rated,
                c.satisfied
            ])
            .db()?;
        }
        Ok(())
    }

    fn write_gauges(&self, conn: &Connection) -> Result<()> {
        if self.gauges.is_empty() {
            return Ok(());
        }
        let mut upsert = conn
            .prepare_cached(
                "INSERT INTO rollup_gauges (org, key, n) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org, key) DO UPDATE SET n = n + excluded.n",
            )
            .db()?;
        let rows = self
            .gauges
            .iter()
            .flat_map(|(org, keys)| keys.iter().map(move |(key, n)| (org, key, n)));
        for (org, key, n) in rows.filter(|(_, _, n)| **n != 0) {
            upsert.execute(params![org, key, n]).db()?;
        }
        Ok(())
    }
}

impl RollupDelta {
    /// Keeps the running totals of the orgs that have them: an org listed in
    /// `rollup_running_orgs` gains this delta's counters; an org placed near a root for the
    /// first time (by a path, or by the org tree for rows copied without one) is listed, with
    /// its totals built from all its days (this delta's among them, already written). Other
    /// orgs have none.
    fn write_running(&self, conn: &Connection) -> Result<()> {
        let mut kept = Vec::with_capacity(self.counters.len());
        for (org, days) in &self.counters {
            if keeps_running(conn, org)? {
                kept.push((org.as_str(), days));
            } else if self.near_root.contains(org)
                || (self.without_path.contains(org) && near_root_in_tree(conn, org)?)
            {
                start_running(conn, org)?;
            }
        }
        write_running(conn, kept)
    }

    /// Keeps `rollup_running_by_parent` a copy of the running totals of the orgs in
    /// `rollup_siblings`, after [`write_running`] has written this delta's.
    ///
    /// An org laid out under a parent has the rows it just changed (those on or after its
    /// first day written) copied there. An org that a path places right under a root but
    /// that is not laid out there (new to that place, or moved from another parent) has all
    /// its rows copied under the root, after those under its old parent are removed. So
    /// every write of an org's running totals reaches its copy, wherever its paths put it
    /// since.
    fn write_by_parent(&self, conn: &Connection) -> Result<()> {
        let mut laid_out = conn
            .prepare_cached("SELECT parent FROM rollup_siblings WHERE org = ?1")
            .db()?;
        for (org, days) in &self.counters {
            let Some(first_day) = days.iter().find(|(_, c)| !c.is_zero()).map(|(d, _)| *d) else {
                continue;
            };
            let parent: Option<String> = laid_out.query_row([org], |r| r.get(0)).optional().db()?;
            let place = match self.under_root.get(org) {
                Some(root) => Some(root.clone()),
                None if self.without_path.contains(org) => root_above(conn, org)?,
                None => None,
            };
            match (parent, place) {
                (Some(parent), place) if place.as_ref().is_none_or(|p| *p == parent) => {
                    copy_running_rows(conn, &parent, org, &first_day.to_string())?;
                }
                (parent, Some(place)) => {
                    if let Some(old) = parent {
                        conn.prepare_cached(
                            "DELETE FROM rollup_running_by_parent WHERE parent = ?1 AND org = ?2",
                        )
                        .db()?
                        .execute(params![old, org])
                        .db()?;
                    }
                    conn.prepare_cached(
                        "INSERT INTO rollup_siblings (org, parent) VALUES (?1, ?2)
                         ON CONFLICT (org) DO UPDATE SET parent = excluded.parent",
                    )
                    .db()?
                    .execute(params![org, place])
                    .db()?;
                    // `OR IGNORE`: no row can conflict (the org has none under `place`), and
                    // it spares the many-row insert a statement journal (see
                    // `write_running`).
                    conn.prepare_cached(
                        "INSERT OR IGNORE INTO rollup_running_by_parent
                             (parent, day, org, received, closed, closed_on_time, rework, rated,
                              satisfied)
                         SELECT ?1, day, org, received, closed, closed_on_time, rework, rated,
                                satisfied
                         FROM rollup_running WHERE org = ?2",
                    )
                    .db()?
                    .execute(params![place, org])
                    .db()?;
                }
                (_, None) => {}
            }
        }
        Ok(())
    }
}

/// Whether `org`'s running totals are kept (`rollup_running_orgs`).
fn keeps_running(conn: &Connection, org: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM rollup_running_orgs WHERE org = ?1")
        .db()?
        .exists([org])
        .db()
}

/// Whether the org tree has `org` as a root or a root's child.
fn near_root_in_tree(conn: &Connection, org: &str) -> Result<bool> {
    let near: Option<bool> = conn
        .prepare_cached(
            "SELECT o.parent IS NULL OR EXISTS (
                 SELECT 1 FROM orgs AS p WHERE p.code = o.parent AND p.parent IS NULL)
             FROM orgs AS o WHERE o.code = ?1",
        )
        .db()?
        .query_row([org], |r| r.get(0))
        .optional()
        .db()?;
    Ok(near.unwrap_or(false))
}

/// The statement that builds the running totals of the orgs `which` selects (a condition on
/// `org`) from their days. `OR IGNORE`: their rows are gone first, so none conflicts, and
/// it spares the statement journal.
fn running_from_days(which: &str) -> String {
    format!(
        "INSERT OR IGNORE INTO rollup_running
             (org, day, received, closed, closed_on_time, rework, rated, satisfied)
         SELECT org, day, sum(received) OVER w, sum(closed) OVER w,
                sum(closed_on_time) OVER w, sum(rework) OVER w, sum(rated) OVER w,
                sum(satisfied) OVER w
         FROM rollup_counters WHERE {which}
         WINDOW w AS (PARTITION BY org ORDER BY day ROWS UNBOUNDED PRECEDING)"
    )
}

/// Lists `org` among those with running totals, built from all its days.
fn start_running(conn: &Connection, org: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO rollup_running_orgs (org) VALUES (?1)")
        .db()?
        .execute([org])
        .db()?;
    conn.prepare_cached("DELETE FROM rollup_running WHERE org = ?1")
        .db()?
        .execute([org])
        .db()?;
    conn.prepare_cached(&running_from_days("org = ?1"))
        .db()?
        .execute([org])
        .db()?;
    Ok(())
}

/// The root above `org` when `org` is a child of a root in the org tree.
fn root_above(conn: &Connection, org: &str) -> Result<Option<String>> {
    conn.prepare_cached(
        "SELECT o.parent FROM orgs AS o JOIN orgs AS p ON p.code = o.parent
         WHERE o.code = ?1 AND p.parent IS NULL",
    )
    .db()?
    .query_row([org], |r| r.get(0))
    .optional()
    .db()
}

/// Copies `org`'s running totals on and after `from` under `parent`, row by row: one row
/// for a write of today; single-row statements need no statement journal.
fn copy_running_rows(conn: &Connection, parent: &str, org: &str, from: &str) -> Result<()> {
    let mut rows = conn
        .prepare_cached(
            "SELECT day, received, closed, closed_on_time, rework, rated, satisfied
             FROM rollup_running WHERE org = ?1 AND day >= ?2",
        )
        .db()?;
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO rollup_running_by_parent
                 (parent, day, org, received, closed, closed_on_time, rework, rated, satisfied)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (parent, day, org) DO UPDATE SET
                 received = excluded.received,
                 closed = excluded.closed,
                 closed_on_time = excluded.closed_on_time,
                 rework = excluded.rework,
                 rated = excluded.rated,
                 satisfied = excluded.satisfied",
        )
        .db()?;
    let mut q = rows.query(params![org, from]).db()?;
    while let Some(r) = q.next().db()? {
        let day: String = get(r, 0)?;
        let c = counters_at(r, 1)?;
        upsert
            .execute(params![
                parent,
                day,
                org,
                c.received,
                c.closed,
                c.closed_on_time,
                c.rework,
                c.rated,
                c.satisfied
            ])
            .db()?;
    }
    Ok(())
}

/// A text column, borrowed from the row.
fn text<'r>(r: &'r rusqlite::Row<'_>, idx: usize) -> Result<&'r str> {
    r.get_ref(idx)
        .db()?
        .as_str()
        .map_err(|e| gridloop_store::StoreError::Backend(e.to_string()))
}

/// The six counters in columns `at..at + 6` of a row.
pub(crate) fn counters_at(r: &rusqlite::Row<'_>, at: usize) -> Result<Counters> {
    Ok(Counters {
        received: get(r, at)?,
        closed: get(r, at + 1)?,
        closed_on_time: get(r, at + 2)?,
        rework: get(r, at + 3)?,
        rated: get(r, at + 4)?,
        satisfied: get(r, at + 5)?,
    })
}

/// Adds the days' counters to the running totals of their orgs (`rollup_running`): every
/// row of an org on or after a day gains that day's counters.
///
/// Per org, in two passes over its days in order: first a row is made at each day that has
/// none, holding the running total as it was on that day (the row before it, or zero), so
/// that the totals do not change; then each stretch of rows from one day of the write to
/// the next gains the sum of the write's counters up to that day. Every row is updated
/// once, and a write of today's counters (the live case) touches the one row of today.
///
/// Both statements may write several rows, and would then get a statement journal (a
/// savepoint per statement, whose release in a large import transaction walks its dirty
/// pages: it made bulk imports 28× slower) if a constraint could abort them midway; `OR
/// IGNORE` and `OR FAIL` say that none does (the insert skips an existing row, as it should;
/// no value written is ever NULL).
fn write_running<'a>(
    conn: &Connection,
    counters: impl IntoIterator<Item = (&'a str, &'a BTreeMap<NaiveDate, Counters>)>,
) -> Result<()> {
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO rollup_running
                 (org, day, received, closed, closed_on_time, rework, rated, satisfied)
             SELECT ?1, ?2, coalesce(p.received, 0), coalesce(p.closed, 0),
                    coalesce(p.closed_on_time, 0), coalesce(p.rework, 0), coalesce(p.rated, 0),
                    coalesce(p.satisfied, 0)
             FROM (SELECT 1) LEFT JOIN (
                 SELECT received, closed, closed_on_time, rework, rated, satisfied
                 FROM rollup_running WHERE org = ?1 AND day < ?2 ORDER BY day DESC LIMIT 1
             ) AS p",
        )
        .db()?;
    let mut add = conn
        .prepare_cached(
            "UPDATE OR FAIL rollup_running SET
                 received = received + ?4,
                 closed = closed + ?5,
                 closed_on_time = closed_on_time + ?6,
                 rework = rework + ?7,
                 rated = rated + ?8,
                 satisfied = satisfied + ?9
             WHERE org = ?1 AND day >= ?2 AND day < ?3",
        )
        .db()?;
    for (org, days) in counters {
        let days: Vec<(String, &Counters)> = days
            .iter()
            .filter(|(_, c)| !c.is_zero())
            .map(|(day, c)| (day.to_string(), c))
            .collect();
        for (day, _) in &days {
            insert.execute(params![org, day]).db()?;
        }
        let mut total = Counters::default();
        for (i, (day, c)) in days.iter().enumerate() {
            total.add(c);
            if total.is_zero() {
                continue;
            }
            // Up to the next day of the write; '9' sorts after every 'YYYY-MM-DD'.
            let until = days.get(i + 1).map_or("9", |(next, _)| next.as_str());
            add.execute(params![
                org,
                day,
                until,
                total.received,
                total.closed,
                total.closed_on_time,
                total.rework,
                total.rated,
                total.satisfied
            ])
            .db()?;
        }
    }
    Ok(())
}

/// Answers of reads of many orgs (a province's thousand children: ~10 ms of counters, ~2 ms
/// of gauges), kept while the rollups' generation is the one they were read at. A read
/// takes the generation in the same snapshot as the rollups, and every write of the
/// rollups sets a new one in its own transaction, so a kept answer is never older than
/// the database. Keyed by generation and not by store: equal generations mean equal
/// rollups, also across two stores in one process.
///
/// An answer is kept only when its question was asked before (in any generation): a
/// dashboard asks again for this month, while one-off periods would push it out.
struct Cache<Q, T> {
    entries: Mutex<Vec<Entry<Q, T>>>,
    /// Hashes of the questions asked, oldest first.
    asked: Mutex<VecDeque<u64>>,
}

struct Entry<Q, T> {
    generation: i64,
    /// What was asked of the orgs: a period, a gauge.
    question: Q,
    orgs: Vec<String>,
    value: Arc<T>,
}

/// Fewer orgs are read fast enough, and would only crowd the cache.
const CACHE_MIN_ORGS: usize = 64;
/// Entries kept: a few dozen periods of a few large parents (each ~150 KB for 1,000 orgs).
const CACHE_ENTRIES: usize = 48;
/// Questions remembered for admission (8 bytes each).
const CACHE_ASKED: usize = 4096;

impl<Q: Hash + Eq + Clone, T: Clone> Cache<Q, T> {
    const fn new() -> Cache<Q, T> {
        Cache {
            entries: Mutex::new(Vec::new()),
            asked: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry<Q, T>>> {
        // Entries are whole values; a panic elsewhere cannot leave one half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the question was asked before; remembers it if not.
    fn asked_before(&self, question: &Q, orgs: &[String]) -> bool {
        let mut h = DefaultHasher::new();
        (question, orgs).hash(&mut h);
        let h = h.finish();
        let mut asked = self.asked.lock().unwrap_or_else(PoisonError::into_inner);
        if asked.contains(&h) {
            return true;
        }
        if asked.len() >= CACHE_ASKED {
            asked.pop_front();
        }
        asked.push_back(h);
        false
    }

    /// The kept answer for `orgs` and `question`, or `read`'s, kept for the next caller.
    fn get_or_read(
        &self,
        conn: &Connection,
        question: &Q,
        orgs: &[String],
        read: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        if orgs.len() < CACHE_MIN_ORGS {
            return read(conn);
        }
        // One snapshot for the generation and the rollups it stands for.
        let tx = conn.unchecked_transaction().db()?;
        let generation: i64 = tx
            .prepare_cached("SELECT n FROM rollup_generation WHERE singleton = 1")
            .db()?
            .query_row([], |r| r.get(0))
            .db()?;
        let hit = self
            .lock()
            .iter()
            .find(|e| e.generation == generation && e.question == *question && e.orgs == orgs)
            .map(|e| e.value.clone());
        if let Some(value) = hit {
            return Ok(T::clone(&value));
        }
        let value = read(&tx)?;
        drop(tx);
        if !self.asked_before(question, orgs) {
            return Ok(value);
        }
        let mut entries = self.lock();
        // Answers of an older generation will never be asked for again.
        entries.retain(|e| e.generation == generation);
        if entries.len() >= CACHE_ENTRIES {
            entries.remove(0);
        }
        entries.push(Entry {
            generation,
            question: question.clone(),
            orgs: orgs.to_vec(),
            value: Arc::new(value.clone()),
        });
        Ok(value)
    }
}

static COUNTERS: Cache<(NaiveDate, NaiveDate), HashMap<String, Counters>> = Cache::new();
static GAUGES: Cache<(), HashMap<String, HashMap<String, i64>>> = Cache::new();
static GAUGE: Cache<String, HashMap<String, i64>> = Cache::new();

/// A new rollups generation: answers kept for the one before are not used again.
fn bump_generation(conn: &Connection) -> Result<()> {
    conn.prepare_cached("UPDATE rollup_generation SET n = random() WHERE singleton = 1")
        .db()?
        .execute([])
        .db()?;
    Ok(())
}

/// Counters summed per org over the days `from..=to`; zero for orgs without any.
pub(crate) fn counters(
    conn: &Connection,
    orgs: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<String, Counters>> {
    COUNTERS.get_or_read(conn, &(from, to), orgs, |conn| {
        read_counters(conn, orgs, from, to)
    })
}

/// Per org with running totals, the running total at or before `to` minus the one before
/// `from`: two key lookups, whatever the period's length (the others sum the period's days,
/// see [`RUNNING_DEPTH`]). A statement per lookup, because finding the day
/// first and then its row (as one statement for all the orgs must) descends the B-tree
/// twice as often. Orgs laid out side by side under a parent (a province's streets) are
/// read first from two range reads of `rollup_running_by_parent` instead ([`Siblings`]);
/// lookups are left for the others.
fn read_counters(
    conn: &Connection,
    orgs: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<String, Counters>> {
    let mut out: HashMap<String, Counters> = HashMap::with_capacity(orgs.len());
    if from > to {
        out.extend(orgs.iter().map(|o| (o.clone(), Counters::default())));
        return Ok(out);
    }
    const COLUMNS: &str = "received, closed, closed_on_time, rework, rated, satisfied";
    let (from, to) = (from.to_string(), to.to_string());
    // Per org: `None` while unknown, then the running total (or none) at or before `to`,
    // and before `from`.
    let mut at_to: Vec<Option<Option<Counters>>> = vec![None; orgs.len()];
    let mut before_from: Vec<Option<Option<Counters>>> = vec![None; orgs.len()];
    if let Some(siblings) = Siblings::of(conn, orgs)? {
        siblings.read(conn, &to, true, |_| true, &mut at_to)?;
        siblings.read(
            conn,
            &from,
            false,
            |i| matches!(at_to[i], Some(Some(_))),
            &mut before_from,
        )?;
    }
    let mut at_or_before = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, day FROM rollup_running WHERE org = ?1 AND day <= ?2
             ORDER BY day DESC LIMIT 1"
        ))
        .db()?;
    let mut before = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM rollup_running WHERE org = ?1 AND day < ?2
             ORDER BY day DESC LIMIT 1"
        ))
        .db()?;
    let mut days = conn
        .prepare_cached(&format!(
            "SELECT {}
             FROM rollup_counters WHERE org = ?1 AND day >= ?2 AND day <= ?3",
            "coalesce(sum(received), 0), coalesce(sum(closed), 0),
             coalesce(sum(closed_on_time), 0), coalesce(sum(rework), 0),
             coalesce(sum(rated), 0), coalesce(sum(satisfied), 0)"
        ))
        .db()?;
    for (i, org) in orgs.iter().enumerate() {
        if at_to[i].is_none() && !keeps_running(conn, org)? {
            // An org without running totals has few days: the period's are summed.
            let mut rows = days.query(params![org, &from, &to]).db()?;
            let c = match rows.next().db()? {
                Some(r) => counters_at(r, 0)?,
                None => Counters::default(),
            };
            out.insert(org.clone(), c);
            continue;
        }
        let t = match at_to[i] {
            Some(t) => t,
            None => {
                let mut rows = at_or_before.query(params![org, &to]).db()?;
                match rows.next().db()? {
                    None => None,
                    // The latest row is before the period: nothing in it, and the same
                    // row is the one before `from`.
                    Some(r) if text(r, 6)? < from.as_str() => {
                        before_from[i] = Some(None);
                        None
                    }
                    Some(r) => Some(counters_at(r, 0)?),
                }
            }
        };
        let mut c = Counters::default();
        if let Some(t) = t {
            let f = match before_from[i] {
                Some(f) => f,
                None => {
                    let mut rows = before.query(params![org, &from]).db()?;
                    match rows.next().db()? {
                        None => None,
                        Some(r) => Some(counters_at(r, 0)?),
                    }
                }
            }
            .unwrap_or_default();
            c = Counters {
                received: t.received - f.received,
                closed: t.closed - f.closed,
                closed_on_time: t.closed_on_time - f.closed_on_time,
                rework: t.rework - f.rework,
                rated: t.rated - f.rated,
                satisfied: t.satisfied - f.satisfied,
            };
        }
        out.insert(org.clone(), c);
    }
    Ok(out)
}

/// Reads of fewer orgs look each one up: finding their parent would cost as much.
const SIBLINGS_MIN_ORGS: usize = 32;

/// The orgs of a read laid out side by side under one parent in `rollup_running_by_parent`.
struct Siblings<'a> {
    parent: String,
    /// Position in the read by code.
    asked: HashMap<&'a str, usize>,
    /// Positions in the read of the parent's laid-out orgs.
    members: Vec<usize>,
    /// By position in the read: whether the org is one of them.
    is_member: Vec<bool>,
}

impl<'a> Siblings<'a> {
    /// The parent of the first laid-out org among the first few of a read of many orgs (a
    /// parent and its children), with those of its children that the read asks for.
    fn of(conn: &Connection, orgs: &'a [String]) -> Result<Option<Siblings<'a>>> {
        if orgs.len() < SIBLINGS_MIN_ORGS {
            return Ok(None);
        }
        let mut laid_out = conn
            .prepare_cached("SELECT parent FROM rollup_siblings WHERE org = ?1")
            .db()?;
        let mut parent: Option<String> = None;
        for org in orgs.iter().take(3) {
            parent = laid_out.query_row([org], |r| r.get(0)).optional().db()?;
            if parent.is_some() {
                break;
            }
        }
        let Some(parent) = parent else {
            return Ok(None);
        };
        let asked: HashMap<&str, usize> = orgs
            .iter()
            .enumerate()
            .map(|(i, o)| (o.as_str(), i))
            .collect();
        let mut stmt = conn
            .prepare_cached("SELECT org FROM rollup_siblings WHERE parent = ?1")
            .db()?;
        let mut rows = stmt.query([&parent]).db()?;
        let mut members = Vec::new();
        let mut is_member = vec![false; orgs.len()];
        while let Some(r) = rows.next().db()? {
            if let Some(&i) = asked.get(text(r, 0)?) {
                members.push(i);
                is_member[i] = true;
            }
        }
        drop(rows);
        Ok(Some(Siblings {
            parent,
            asked,
            members,
            is_member,
        }))
    }

    /// For each member `i` with `wanted(i)`, its running total at or before `day`
    /// (`inclusive`) or before it, into `out[i]`: the rows of the parent's orgs from `day`
    /// back, the latest of each org. Members whose latest row is further back than a few
    /// days of the others are left unknown (`None`), for a lookup of their own.
    fn read(
        &self,
        conn: &Connection,
        day: &str,
        inclusive: bool,
        wanted: impl Fn(usize) -> bool,
        out: &mut [Option<Option<Counters>>],
    ) -> Result<()> {
        let mut left = self.members.iter().filter(|&&i| wanted(i)).count();
        if left == 0 {
            return Ok(());
        }
        // About four days of all the members' rows.
        let mut budget = 4 * self.members.len() + 64;
        let sql = if inclusive {
            "SELECT org, received, closed, closed_on_time, rework, rated, satisfied
             FROM rollup_running_by_parent WHERE parent = ?1 AND day <= ?2
             ORDER BY day DESC"
        } else {
            "SELECT org, received, closed, closed_on_time, rework, rated, satisfied
             FROM rollup_running_by_parent WHERE parent = ?1 AND day < ?2
             ORDER BY day DESC"
        };
        let mut stmt = conn.prepare_cached(sql).db()?;
        let mut rows = stmt.query(params![self.parent, day]).db()?;
        while left > 0 && budget > 0 {
            let Some(r) = rows.next().db()? else {
                // Every row of the parent's orgs is read: the members not seen have none.
                for &i in &self.members {
                    if wanted(i) && out[i].is_none() {
                        out[i] = Some(None);
                    }
                }
                break;
            };
            budget -= 1;
            let org = text(r, 0)?;
            if let Some(&i) = self.asked.get(org)
                && self.is_member[i]
                && out[i].is_none()
                && wanted(i)
            {
                out[i] = Some(Some(counters_at(r, 1)?));
                left -= 1;
            }
        }
        Ok(())
    }
}

/// Fills `rollup_running` (and its copy by parent) from the days when it is empty but the
/// days are not: after migration 0005, or in a store whose days were written directly.
pub(crate) fn rebuild_running_if_missing(conn: &Connection) -> Result<()> {
    if fill_running_if_missing(conn)? {
        rebuild_by_parent(conn)?;
    }
    Ok(())
}

/// The totals are built for the orgs listed as keeping them, and the roots of the org tree
/// and their children, listed first (only here, where all their rows are built too).
fn fill_running_if_missing(conn: &Connection) -> Result<bool> {
    rebuild_from_days(
        conn,
        "rollup_running",
        &format!(
            "INSERT OR IGNORE INTO rollup_running_orgs (org)
             SELECT code FROM orgs WHERE parent IS NULL
             UNION
             SELECT o.code FROM orgs AS o JOIN orgs AS p ON p.code = o.parent
             WHERE p.parent IS NULL;
             {};",
            running_from_days("org IN (SELECT org FROM rollup_running_orgs)")
        ),
    )
}

/// Builds the tables derived from the daily rollups (the running totals and their copy by
/// parent) anew from the days: at the end of a bulk import, which wrote only the days.
/// Sums the days a bulk import staged ([`RollupDelta::stage_days`]) into the daily
/// counters: one sort, then rows appended in key order (into an empty table, as an import
/// starts from a store without cases). Returns how many staged rows there were.
pub(crate) fn merge_staged_days(conn: &Connection) -> Result<usize> {
    // `WHERE true`: SQLite's grammar needs a WHERE before an upsert's ON CONFLICT.
    conn.execute(
        "INSERT INTO rollup_counters
             (org, day, received, closed, closed_on_time, rework, rated, satisfied)
         SELECT org, day, sum(received), sum(closed), sum(closed_on_time), sum(rework),
                sum(rated), sum(satisfied)
         FROM rollup_days_staged WHERE true GROUP BY org, day ORDER BY org, day
         ON CONFLICT (org, day) DO UPDATE SET
             received = received + excluded.received,
             closed = closed + excluded.closed,
             closed_on_time = closed_on_time + excluded.closed_on_time,
             rework = rework + excluded.rework,
             rated = rated + excluded.rated,
             satisfied = satisfied + excluded.satisfied",
        [],
    )
    .db()?;
    let staged = conn.execute("DELETE FROM rollup_days_staged", []).db()?;
    if staged > 0 {
        bump_generation(conn)?;
    }
    Ok(staged)
}

pub(crate) fn rebuild_derived(conn: &Connection) -> Result<()> {
    conn.execute_batch("DELETE FROM rollup_running").db()?;
    fill_running_if_missing(conn)?;
    rebuild_by_parent(conn)
}

/// Lays out the running totals of the children of root orgs (as the org tree has them now)
/// side by side under their parent, anew (as migration 0011 did first).
fn rebuild_by_parent(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM rollup_running_by_parent;
         DELETE FROM rollup_siblings;
         INSERT INTO rollup_siblings (org, parent)
         SELECT o.code, o.parent FROM orgs AS o JOIN orgs AS p ON p.code = o.parent
         WHERE p.parent IS NULL;
         INSERT INTO rollup_running_by_parent
             (parent, day, org, received, closed, closed_on_time, rework, rated, satisfied)
         SELECT s.parent, r.day, r.org, r.received, r.closed, r.closed_on_time, r.rework,
                r.rated, r.satisfied
         FROM rollup_siblings AS s JOIN rollup_running AS r ON r.org = s.org
         ORDER BY s.parent, r.day, r.org;",
    )
    .db()?;
    bump_generation(conn)
}

/// Runs `fill` when `table` (derived from the daily rollups) is empty but the days are not;
/// whether it did.
fn rebuild_from_days(conn: &Connection, table: &str, fill: &str) -> Result<bool> {
    let missing: bool = conn
        .query_row(
            &format!(
                "SELECT NOT EXISTS (SELECT 1 FROM {table})
                     AND EXISTS (SELECT 1 FROM rollup_counters)"
            ),
            [],
            |r| r.get(0),
        )
        .db()?;
    if missing {
        conn.execute_batch(fill).db()?;
        // What a reader kept may predate the rebuild (a bulk import's end).
        bump_generation(conn)?;
        tracing::info!(table, "rebuilt from the daily rollups");
    }
    Ok(missing)
}

/// Which of a subtree's cases a count of gauges reads.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Open,
    Closed,
    Both,
}

/// The gauges of the subtree at `path` counted from its cases' index entries (the keys of
/// open cases, the paths of closed ones), as the rollups would hold them: cases by status,
/// and the overdue open ones. No `INDEXED BY`: a bulk import sets those indexes aside for a
/// while, and reads in the meantime are slow rather than failing (the plans are tested).
fn count_gauges(conn: &Connection, path: &str, part: Part) -> Result<HashMap<String, i64>> {
    use crate::list::{CLOSED, OPEN};
    let end = gridloop_domain::org::subtree_end(path);
    let mut out = HashMap::new();
    if part != Part::Closed {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT status, count(*), sum(overdue) FROM cases
                 WHERE {OPEN} AND area_path >= ?1 AND area_path < ?2 GROUP BY status"
            ))
            .db()?;
        let mut rows = stmt.query(params![path, end]).db()?;
        let mut overdue = 0;
        while let Some(r) = rows.next().db()? {
            out.insert(get::<String>(r, 0)?, get::<i64>(r, 1)?);
            overdue += get::<i64>(r, 2)?;
        }
        if overdue != 0 {
            out.insert("overdue".to_string(), overdue);
        }
    }
    if part != Part::Open {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT status, count(*) FROM cases
                 WHERE {CLOSED} AND area_path >= ?1 AND area_path < ?2 GROUP BY status"
            ))
            .db()?;
        let mut rows = stmt.query(params![path, end]).db()?;
        while let Some(r) = rows.next().db()? {
            out.insert(get::<String>(r, 0)?, get::<i64>(r, 1)?);
        }
    }
    Ok(out)
}

/// The paths of those of `orgs` that are deeper than [`RUNNING_DEPTH`] in the org tree, by
/// position in `orgs`: their gauges are counted, not kept. Orgs not in the tree have none.
fn deep_paths(conn: &Connection, orgs: &[String]) -> Result<Vec<Option<String>>> {
    let mut stmt = conn
        .prepare_cached("SELECT path FROM orgs WHERE code = ?1")
        .db()?;
    let mut out = Vec::with_capacity(orgs.len());
    for org in orgs {
        let path: Option<String> = stmt.query_row([org], |r| r.get(0)).optional().db()?;
        out.push(path.filter(|p| !near_root_path(p)));
    }
    Ok(out)
}

/// Whether `org` keeps its gauges as rows: an org near a root in the tree.
pub(crate) fn keeps_gauges(conn: &Connection, org: &str) -> Result<bool> {
    Ok(deep_paths(conn, &[org.to_string()])?[0].is_none())
}

/// Keeps an org's gauges right when the tree moves it from below the orgs near a root to
/// among them (its rows counted from the cases of its subtree, as they were read until
/// now), or back (its rows dropped). A move that keeps it near a root leaves its rows as
/// they are; below, its gauges are counted under the new path anyway.
pub(crate) fn org_moved(conn: &Connection, org: &str, from: &str, to: &str) -> Result<()> {
    // Counted gauges follow the new path: answers kept for reads of many orgs are stale.
    bump_generation(conn)?;
    if near_root_path(from) == near_root_path(to) {
        return Ok(());
    }
    conn.prepare_cached("DELETE FROM rollup_gauges WHERE org = ?1")
        .db()?
        .execute([org])
        .db()?;
    if near_root_path(to) {
        let mut insert = conn
            .prepare_cached("INSERT INTO rollup_gauges (org, key, n) VALUES (?1, ?2, ?3)")
            .db()?;
        for (key, n) in count_gauges(conn, to, Part::Both)? {
            if n != 0 {
                insert.execute(params![org, key, n]).db()?;
            }
        }
    }
    Ok(())
}

/// Gauges per org, zero entries left out.
pub(crate) fn gauges(
    conn: &Connection,
    orgs: &[String],
) -> Result<HashMap<String, HashMap<String, i64>>> {
    GAUGES.get_or_read(conn, &(), orgs, |conn| read_gauges(conn, orgs))
}

pub(crate) fn read_gauges(
    conn: &Connection,
    orgs: &[String],
) -> Result<HashMap<String, HashMap<String, i64>>> {
    let mut out: HashMap<String, HashMap<String, i64>> =
        orgs.iter().map(|o| (o.clone(), HashMap::new())).collect();
    if orgs.is_empty() {
        return Ok(out);
    }
    // One statement for all the orgs, from the covering index `(org, key, n)`.
    let mut stmt = conn
        .prepare_cached(
            "SELECT g.org, g.key, g.n FROM json_each(?1) AS j
             JOIN rollup_gauges AS g ON g.org = j.value
             WHERE g.n <> 0",
        )
        .db()?;
    let codes = serde_json::to_string(orgs)
        .map_err(|e| gridloop_store::StoreError::Backend(e.to_string()))?;
    let rows = collect(stmt.query([codes]).db()?, |r| {
        Ok((
            get::<String>(r, 0)?,
            get::<String>(r, 1)?,
            get::<i64>(r, 2)?,
        ))
    })?;
    let deep = deep_paths(conn, orgs)?;
    for (org, key, n) in rows {
        out.entry(org).or_default().insert(key, n);
    }
    for (org, path) in orgs.iter().zip(deep) {
        if let Some(path) = path {
            let mut counted = count_gauges(conn, &path, Part::Both)?;
            counted.retain(|_, n| *n != 0);
            out.insert(org.clone(), counted);
        }
    }
    Ok(out)
}

/// One gauge per org, zero for orgs without it: a key lookup per org, where
/// [`gauges`] reads every gauge of each org (nine a street) to be picked from.
pub(crate) fn gauge(conn: &Connection, orgs: &[String], key: &str) -> Result<HashMap<String, i64>> {
    GAUGE.get_or_read(conn, &key.to_string(), orgs, |conn| {
        read_gauge(conn, orgs, key)
    })
}

fn read_gauge(conn: &Connection, orgs: &[String], key: &str) -> Result<HashMap<String, i64>> {
    let mut stmt = conn
        .prepare_cached("SELECT n FROM rollup_gauges WHERE org = ?1 AND key = ?2")
        .db()?;
    let part = match gridloop_domain::case::Status::parse(key) {
        Some(s) if !s.is_open() => Part::Closed,
        _ => Part::Open,
    };
    let mut out = HashMap::with_capacity(orgs.len());
    for (org, path) in orgs.iter().zip(deep_paths(conn, orgs)?) {
        let n = match path {
            Some(path) => count_gauges(conn, &path, part)?.get(key).copied(),
            None => stmt
                .query_row(params![org, key], |r| r.get(0))
                .optional()
                .db()?,
        };
        out.insert(org.clone(), n.unwrap_or(0));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Running totals written in any order of days (several days per write, earlier days
    /// after later ones, negative counters as a reopened case gives back its closure) give
    /// every period the sum of its days, and equal the totals rebuilt from the days.
    #[test]
    fn running_totals_follow_writes_in_any_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let first = d("2023-11-20");
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let paths = [
            "/330000/330001/330001001/",
            "/330000/330002/",
            "/330000/330001/",
        ];
        for _ in 0..300 {
            let mut delta = RollupDelta::default();
            for _ in 0..=next(3) {
                let mut counters = Vec::new();
                for _ in 0..=next(4) {
                    let day = first + chrono::Days::new(next(500));
                    let sign = if next(5) == 0 { -1 } else { 1 };
                    let c = Counters {
                        received: 1,
                        closed: sign * (next(3) as i64),
                        closed_on_time: sign * (next(2) as i64),
                        rework: next(2) as i64,
                        rated: next(3) as i64,
                        satisfied: next(2) as i64,
                    };
                    counters.push((day, c));
                }
                let m = MeasureDelta {
                    counters,
                    gauges: vec![],
                };
                delta.add(paths[next(3) as usize], &m);
            }
            delta.write(&conn).unwrap();
        }
        let orgs: Vec<String> = ["330000", "330001", "330002", "330001001", "339999"]
            .map(String::from)
            .to_vec();
        let naive = |org: &str, from: NaiveDate, to: NaiveDate| -> Counters {
            conn.query_row(
                "SELECT coalesce(sum(received), 0), coalesce(sum(closed), 0),
                        coalesce(sum(closed_on_time), 0), coalesce(sum(rework), 0),
                        coalesce(sum(rated), 0), coalesce(sum(satisfied), 0)
                 FROM rollup_counters WHERE org = ?1 AND day >= ?2 AND day <= ?3",
                params![org, from.to_string(), to.to_string()],
                |r| {
                    Ok(Counters {
                        received: r.get(0)?,
                        closed: r.get(1)?,
                        closed_on_time: r.get(2)?,
                        rework: r.get(3)?,
                        rated: r.get(4)?,
                        satisfied: r.get(5)?,
                    })
                },
            )
            .unwrap()
        };
        let mut check = |conn: &Connection| {
            for _ in 0..200 {
                let from = first + chrono::Days::new(next(540)) - chrono::Days::new(20);
                let to = from + chrono::Days::new(next(400));
                let got = counters(conn, &orgs, from, to).unwrap();
                assert_eq!(got.len(), orgs.len());
                for org in &orgs {
                    assert_eq!(got[org], naive(org, from, to), "{org} {from}..={to}");
                }
            }
        };
        check(&conn);
        let table = |conn: &Connection| -> Vec<(String, String, i64, i64, i64)> {
            let mut stmt = conn
                .prepare(
                    "SELECT org, day, received, closed, satisfied FROM rollup_running
                     ORDER BY org, day",
                )
                .unwrap();
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
        };
        let written = table(&conn);
        conn.execute("DELETE FROM rollup_running", []).unwrap();
        rebuild_running_if_missing(&conn).unwrap();
        assert_eq!(table(&conn), written);
        check(&conn);
    }

    /// Whatever the period, across months and years, the counters read add up to the sum
    /// of the days, also after repeated writes of the same rows.
    #[test]
    fn period_sums_equal_day_sums() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let org = "330001".to_string();
        let mut day = d("2024-12-20");
        let mut n = 0;
        while day <= d("2025-03-10") {
            n += 1;
            let mut delta = RollupDelta::default();
            let c = Counters {
                received: n % 3,
                closed: n % 5,
                ..Counters::default()
            };
            let m = MeasureDelta {
                counters: vec![(day, c)],
                gauges: vec![],
            };
            delta.add("/330000/330001/", &m);
            delta.write(&conn).unwrap();
            // Twice, so that the totals also follow updates.
            delta.write(&conn).unwrap();
            day = day.succ_opt().unwrap();
        }
        let naive = |from: &str, to: &str| -> (i64, i64) {
            conn.query_row(
                "SELECT coalesce(sum(received), 0), coalesce(sum(closed), 0) FROM rollup_counters
                 WHERE org = ?1 AND day >= ?2 AND day <= ?3",
                params![org, from, to],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        for (from, to) in [
            ("2024-12-01", "2025-03-31"),
            ("2024-12-25", "2025-02-28"),
            ("2025-01-01", "2025-01-31"),
            ("2025-01-05", "2025-01-06"),
            ("2025-02-28", "2025-03-01"),
            ("2024-11-01", "2024-12-21"),
        ] {
            let got = &counters(&conn, std::slice::from_ref(&org), d(from), d(to)).unwrap()[&org];
            assert_eq!((got.received, got.closed), naive(from, to), "{from}..={to}");
        }
    }
    /// The running totals of a root's children, laid out side by side, stay a copy of
    /// theirs through writes with paths at any depth, rows copied without a path, and
    /// children moved between roots and back; reads of many orgs from them equal the sums
    /// of the days, also after the layout is rebuilt from the tree.
    #[test]
    fn running_totals_by_parent_follow_every_write() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let put = |code: &str, parent: Option<&str>, path: &str| {
            conn.execute(
                "INSERT INTO orgs (code, name, level, parent, path) VALUES (?1, ?1, 'street', ?2, ?3)",
                params![code, parent, path],
            )
            .unwrap();
        };
        put("330000", None, "/330000/");
        put("440000", None, "/440000/");
        let streets: Vec<String> = (1..=40).map(|i| format!("33{i:04}")).collect();
        for s in &streets {
            put(s, Some("330000"), &format!("/330000/{s}/"));
            put(&format!("{s}001"), Some(s), &format!("/330000/{s}/{s}001/"));
        }
        put("440001", Some("440000"), "/440000/440001/");
        // The migration ran before the tree existed; rebuilt as a bulk import's end does.
        rebuild_derived(&conn).unwrap();

        let first = d("2023-11-20");
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let counters_of = |next: &mut dyn FnMut(u64) -> u64| {
            let mut counters = Vec::new();
            for _ in 0..=next(3) {
                let day = first + chrono::Days::new(next(400));
                let sign = if next(5) == 0 { -1 } else { 1 };
                counters.push((
                    day,
                    Counters {
                        received: 1,
                        closed: sign * (next(3) as i64),
                        closed_on_time: sign * (next(2) as i64),
                        rework: next(2) as i64,
                        rated: next(3) as i64,
                        satisfied: next(2) as i64,
                    },
                ));
            }
            counters
        };
        // Streets 5 and 6 move to the other root and back, and are written deeper too.
        let path_of = |s: &str, round: u64, pick: u64| -> String {
            match (s, round, pick) {
                ("330005", 1, _) => "/440000/330005/".into(),
                ("330006", 1..=2, _) => "/440000/330006/".into(),
                ("330007", _, 0) => "/440000/440001/330007/".into(),
                (s, _, 1) => format!("/330000/{s}/{s}001/"),
                (s, _, _) => format!("/330000/{s}/"),
            }
        };
        let mut rounds_read = 0;
        let orgs: Vec<String> = std::iter::once("330000".to_string())
            .chain(streets.iter().cloned())
            .chain(["330001001", "339999", "440001"].map(String::from))
            .collect();
        let naive = |conn: &Connection, org: &str, from: NaiveDate, to: NaiveDate| -> Counters {
            conn.query_row(
                "SELECT coalesce(sum(received), 0), coalesce(sum(closed), 0),
                        coalesce(sum(closed_on_time), 0), coalesce(sum(rework), 0),
                        coalesce(sum(rated), 0), coalesce(sum(satisfied), 0)
                 FROM rollup_counters WHERE org = ?1 AND day >= ?2 AND day <= ?3",
                params![org, from.to_string(), to.to_string()],
                |r| counters_at(r, 0).map_err(|_| rusqlite::Error::InvalidQuery),
            )
            .unwrap()
        };
        let check = |conn: &Connection, next: &mut dyn FnMut(u64) -> u64| {
            let mut periods = vec![
                (d("2020-01-01"), d("2023-11-19")),
                (d("2023-01-01"), d("2030-01-01")),
                (d("2025-01-01"), d("2030-01-01")),
            ];
            for _ in 0..40 {
                let from = first + chrono::Days::new(next(420)) - chrono::Days::new(10);
                periods.push((from, from + chrono::Days::new(next(200))));
            }
            for (from, to) in periods {
                let got = read_counters(conn, &orgs, from, to).unwrap();
                assert_eq!(got.len(), orgs.len());
                for org in &orgs {
                    assert_eq!(got[org], naive(conn, org, from, to), "{org} {from}..={to}");
                }
            }
            // The copy holds exactly the rows of the orgs laid out, under their parent.
            let copy: Vec<(String, String, String, i64, i64)> = conn
                .prepare(
                    "SELECT parent, org, day, received, satisfied FROM rollup_running_by_parent
                     ORDER BY parent, org, day",
                )
                .unwrap()
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            let original: Vec<(String, String, String, i64, i64)> = conn
                .prepare(
                    "SELECT s.parent, r.org, r.day, r.received, r.satisfied
                     FROM rollup_siblings AS s JOIN rollup_running AS r ON r.org = s.org
                     ORDER BY s.parent, r.org, r.day",
                )
                .unwrap()
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(copy, original);
            assert!(!copy.is_empty());
        };
        for round in 0..4 {
            for _ in 0..60 {
                let mut delta = RollupDelta::default();
                for _ in 0..=next(4) {
                    let street = &streets[next(streets.len() as u64) as usize];
                    let counters = counters_of(&mut next);
                    if next(8) == 0 {
                        // A row copied from another store: no path.
                        for (day, c) in &counters {
                            delta.add_day(street, *day, c);
                        }
                    } else {
                        let path = path_of(street, round, next(3));
                        delta.add(
                            &path,
                            &MeasureDelta {
                                counters,
                                gauges: vec![],
                            },
                        );
                    }
                }
                delta.write(&conn).unwrap();
            }
            check(&conn, &mut next);
            rounds_read += 1;
        }
        let moved: String = conn
            .query_row(
                "SELECT parent FROM rollup_siblings WHERE org = '330006'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(moved, "330000", "moved back");
        rebuild_derived(&conn).unwrap();
        check(&conn, &mut next);
        assert_eq!(rounds_read, 4);
    }
    /// One gauge read alone (and kept for reads of many orgs) follows every write, as
    /// all of them do: zero for orgs without it.
    #[test]
    fn one_gauge_equals_that_of_all_gauges() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let paths: Vec<String> = (1..=80).map(|i| format!("/330000/33{i:04}/")).collect();
        let mut orgs: Vec<String> = vec!["330000".into()];
        orgs.extend((1..=80).map(|i| format!("33{i:04}")));
        orgs.push("339999".into());
        for round in 0..6_i64 {
            let mut delta = RollupDelta::default();
            for (i, path) in paths.iter().enumerate() {
                let i = i as i64;
                use gridloop_domain::case::Status;
                use gridloop_domain::measures::GaugeKey;
                let gauges = vec![
                    (GaugeKey::Overdue, (i + round) % 3 - 1),
                    (GaugeKey::Status(Status::Reported), (i * round) % 2),
                ];
                delta.add(
                    path,
                    &MeasureDelta {
                        counters: vec![],
                        gauges,
                    },
                );
            }
            delta.write(&conn).unwrap();
            // Twice: the second read may be a kept answer.
            for _ in 0..2 {
                let all = gauges(&conn, &orgs).unwrap();
                for key in ["overdue", "reported", "closed"] {
                    let one = gauge(&conn, &orgs, key).unwrap();
                    assert_eq!(one.len(), orgs.len());
                    for org in &orgs {
                        let n = all[org].get(key).copied().unwrap_or(0);
                        assert_eq!(one[org], n, "{org} {key} round {round}");
                    }
                }
            }
        }
        assert_eq!(gauge(&conn, &orgs, "reported").unwrap()["330002"], 3);
    }

    /// Counters of one day at `path`, as a case's write adds them.
    fn write_at(conn: &Connection, path: &str, day: &str, received: i64, closed: i64) {
        let mut delta = RollupDelta::default();
        let c = Counters {
            received,
            closed,
            ..Counters::default()
        };
        let m = MeasureDelta {
            counters: vec![(d(day), c)],
            gauges: vec![],
        };
        delta.add(path, &m);
        delta.write(conn).unwrap();
    }

    fn day_sums(conn: &Connection, org: &str, from: &str, to: &str) -> Counters {
        conn.query_row(
            "SELECT coalesce(sum(received), 0), coalesce(sum(closed), 0),
                    coalesce(sum(closed_on_time), 0), coalesce(sum(rework), 0),
                    coalesce(sum(rated), 0), coalesce(sum(satisfied), 0)
             FROM rollup_counters WHERE org = ?1 AND day >= ?2 AND day <= ?3",
            params![org, from, to],
            |r| counters_at(r, 0).map_err(|_| rusqlite::Error::InvalidQuery),
        )
        .unwrap()
    }

    fn running_orgs(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT DISTINCT org FROM rollup_running ORDER BY org")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Only orgs near a root keep running totals; deeper ones are read from their days. An
    /// org that a later path places near a root gets totals built from all its days,
    /// including those written while it was deeper.
    #[test]
    fn only_orgs_near_a_root_keep_running_totals() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let deep = "/330000/330001/330001001/33000100101/";
        write_at(&conn, deep, "2025-01-03", 2, 0);
        write_at(&conn, deep, "2025-01-09", 1, 1);
        assert_eq!(running_orgs(&conn), ["330000", "330001"]);
        // 330001001 moves right under the root: its earlier days count in its totals.
        write_at(&conn, "/330000/330001001/", "2025-01-05", 4, 2);
        write_at(&conn, "/330000/330001001/", "2025-01-12", 1, 0);
        assert_eq!(running_orgs(&conn), ["330000", "330001", "330001001"]);
        let orgs: Vec<String> = ["330000", "330001", "330001001", "33000100101", "339999"]
            .map(String::from)
            .to_vec();
        for (from, to) in [
            ("2025-01-01", "2025-01-31"),
            ("2025-01-04", "2025-01-09"),
            ("2025-01-06", "2025-01-08"),
            ("2025-01-10", "2025-02-01"),
            ("2024-12-01", "2025-01-03"),
        ] {
            let got = counters(&conn, &orgs, d(from), d(to)).unwrap();
            for org in &orgs {
                assert_eq!(
                    got[org],
                    day_sums(&conn, org, from, to),
                    "{org} {from}..={to}"
                );
            }
        }
        let got = counters(&conn, &orgs, d("2025-01-01"), d("2025-01-31")).unwrap();
        assert_eq!(got["330001001"].received, 8);
        assert_eq!(got["33000100101"].received, 3);
    }

    /// Migration 0014 keeps the running totals of the orgs near a root (of the tree, or laid
    /// out under one) and drops the others', and the reads still equal the days' sums;
    /// run again, it drops nothing more and lists no org whose rows it dropped.
    #[test]
    fn the_migration_keeps_the_totals_near_roots() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        for (code, parent, path) in [
            ("330000", None, "/330000/"),
            ("330001", Some("330000"), "/330000/330001/"),
            ("330001001", Some("330001"), "/330000/330001/330001001/"),
        ] {
            conn.execute(
                "INSERT INTO orgs (code, name, level, parent, path) VALUES (?1, ?1, 'street', ?2, ?3)",
                params![code, parent, path],
            )
            .unwrap();
        }
        let deep = "/330000/330001/330001001/33000100101/";
        for (i, day) in ["2025-03-01", "2025-03-04", "2025-04-02"]
            .iter()
            .enumerate()
        {
            write_at(&conn, deep, day, 1 + i as i64, i as i64);
        }
        // The store before the migration: every org with counters had its totals.
        conn.execute_batch(
            "DELETE FROM rollup_running; DELETE FROM rollup_running_orgs;
             INSERT INTO rollup_running
                 (org, day, received, closed, closed_on_time, rework, rated, satisfied)
             SELECT org, day, sum(received) OVER w, sum(closed) OVER w,
                    sum(closed_on_time) OVER w, sum(rework) OVER w, sum(rated) OVER w,
                    sum(satisfied) OVER w
             FROM rollup_counters
             WINDOW w AS (PARTITION BY org ORDER BY day ROWS UNBOUNDED PRECEDING);",
        )
        .unwrap();
        assert_eq!(running_orgs(&conn).len(), 4);
        let migration =
            include_str!("../../../migrations/sqlite/0014_running_totals_near_roots.sql");
        conn.execute_batch(migration).unwrap();
        assert_eq!(running_orgs(&conn), ["330000", "330001"]);
        // Now 330001001 is placed under the root by the tree; a second run must not list it
        // without its rows.
        conn.execute(
            "UPDATE orgs SET parent = '330000', path = '/330000/330001001/' WHERE code = '330001001'",
            [],
        )
        .unwrap();
        conn.execute_batch(migration).unwrap();
        assert_eq!(running_orgs(&conn), ["330000", "330001"]);
        let orgs: Vec<String> = ["330000", "330001", "330001001", "33000100101"]
            .map(String::from)
            .to_vec();
        for (from, to) in [("2025-03-01", "2025-03-31"), ("2025-03-02", "2025-04-30")] {
            let got = counters(&conn, &orgs, d(from), d(to)).unwrap();
            for org in &orgs {
                assert_eq!(
                    got[org],
                    day_sums(&conn, org, from, to),
                    "{org} {from}..={to}"
                );
            }
        }
    }

    /// The counts of a deeper org's gauges read index entries only, from the keys of open
    /// cases and the paths of closed ones.
    #[test]
    fn gauges_are_counted_from_index_entries() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        use crate::list::{CLOSED, OPEN};
        for (columns, cond, index) in [
            (
                "count(*), sum(overdue)",
                OPEN,
                "COVERING INDEX cases_open_area_keys",
            ),
            ("count(*)", CLOSED, "COVERING INDEX cases_status_area_path"),
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!(
                    "EXPLAIN QUERY PLAN SELECT status, {columns} FROM cases
                     WHERE {cond} AND area_path >= ?1 AND area_path < ?2 GROUP BY status"
                ))
                .unwrap()
                .query_map(params!["/1/2/3/", "/1/2/30"], |r| r.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().any(|p| p.contains(index)) && !plan.iter().any(|p| p.contains("SCAN")),
                "{plan:?}"
            );
        }
    }
}
