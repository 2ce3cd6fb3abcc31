//! Measures: counters per org and local day, gauges per org.
//!
//! A decision's [`MeasureDelta`] counts at the case's area org and at every ancestor of it
//! (the codes on the area path), so the measures of any subtree are one primary-key read
//! of its root org, whatever its size.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use gridloop_domain::measures::{Counters, MeasureDelta};
use gridloop_domain::org::path_codes;
use gridloop_store::Result;
use rusqlite::{Connection, params};

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
}

impl RollupDelta {
    /// Adds a case's delta at its area and every ancestor.
    pub fn add(&mut self, area_path: &str, delta: &MeasureDelta) {
        if delta.is_empty() {
            return;
        }
        for org in path_codes(area_path) {
            if !delta.counters.is_empty() {
                let days = match self.counters.get_mut(org) {
                    Some(days) => days,
                    None => self.counters.entry(org.to_string()).or_default(),
                };
                for (day, c) in &delta.counters {
                    days.entry(*day).or_default().add(c);
                }
            }
            if !delta.gauges.is_empty() {
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

    pub fn write(&self, conn: &Connection) -> Result<()> {
        if !self.counters.is_empty() {
            let mut upsert = conn
                .prepare_cached(
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
                )
                .db()?;
            let rows = self
                .counters
                .iter()
                .flat_map(|(org, days)| days.iter().map(move |(day, c)| (org, day, c)));
            for (org, day, c) in rows.filter(|(_, _, c)| !c.is_zero()) {
                upsert
                    .execute(params![
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
        }
        if !self.gauges.is_empty() {
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
        }
        Ok(())
    }
}

/// Counters summed per org over the days `from..=to`; zero for orgs without any.
pub(crate) fn counters(
    conn: &Connection,
    orgs: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<String, Counters>> {
    // One primary-key range per org: a fixed statement, whatever the number of orgs.
    let mut stmt = conn
        .prepare_cached(
            "SELECT coalesce(sum(received), 0), coalesce(sum(closed), 0),
                    coalesce(sum(closed_on_time), 0), coalesce(sum(rework), 0),
                    coalesce(sum(rated), 0), coalesce(sum(satisfied), 0)
             FROM rollup_counters WHERE org = ?1 AND day >= ?2 AND day <= ?3",
        )
        .db()?;
    let (from, to) = (from.to_string(), to.to_string());
    let mut out = HashMap::with_capacity(orgs.len());
    for org in orgs {
        let c = stmt
            .query_row(params![org, from, to], |r| {
                Ok(Counters {
                    received: r.get(0)?,
                    closed: r.get(1)?,
                    closed_on_time: r.get(2)?,
                    rework: r.get(3)?,
                    rated: r.get(4)?,
                    satisfied: r.get(5)?,
                })
            })
            .db()?;
        out.insert(org.clone(), c);
    }
    Ok(out)
}

/// Gauges per org, zero entries left out.
pub(crate) fn gauges(
    conn: &Connection,
    orgs: &[String],
) -> Result<HashMap<String, HashMap<String, i64>>> {
    let mut stmt = conn
        .prepare_cached("SELECT key, n FROM rollup_gauges WHERE org = ?1 AND n <> 0")
        .db()?;
    let mut out = HashMap::with_capacity(orgs.len());
    for org in orgs {
        let rows = collect(stmt.query([org]).db()?, |r| {
            Ok((get::<String>(r, 0)?, get::<i64>(r, 1)?))
        })?;
        out.insert(org.clone(), rows.into_iter().collect());
    }
    Ok(out)
}
