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
use gridloop_store::period::{month, split};
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

    /// Adds one org's counters of one day as they are (a row copied from another store).
    pub fn add_day(&mut self, org: &str, day: NaiveDate, c: &Counters) {
        self.counters
            .entry(org.to_string())
            .or_default()
            .entry(day)
            .or_default()
            .add(c);
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
            // The same counters per month, summed here rather than by triggers: a trigger
            // gives every upsert a statement journal, which made bulk imports 5× slower.
            let mut months: BTreeMap<(&str, String), Counters> = BTreeMap::new();
            for (org, days) in &self.counters {
                for (day, c) in days {
                    months
                        .entry((org.as_str(), month(*day)))
                        .or_default()
                        .add(c);
                }
            }
            let mut upsert = conn
                .prepare_cached(
                    "INSERT INTO rollup_months
                         (org, month, received, closed, closed_on_time, rework, rated, satisfied)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (org, month) DO UPDATE SET
                         received = received + excluded.received,
                         closed = closed + excluded.closed,
                         closed_on_time = closed_on_time + excluded.closed_on_time,
                         rework = rework + excluded.rework,
                         rated = rated + excluded.rated,
                         satisfied = satisfied + excluded.satisfied",
                )
                .db()?;
            for ((org, month), c) in months.iter().filter(|(_, c)| !c.is_zero()) {
                upsert
                    .execute(params![
                        org,
                        month,
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
    // Three primary-key ranges per org (days before, months, days after): a fixed statement,
    // whatever the number of orgs, reading at most a month's worth of days at each end.
    let mut stmt = conn
        .prepare_cached(
            "SELECT coalesce(sum(received), 0), coalesce(sum(closed), 0),
                    coalesce(sum(closed_on_time), 0), coalesce(sum(rework), 0),
                    coalesce(sum(rated), 0), coalesce(sum(satisfied), 0)
             FROM (
                 SELECT received, closed, closed_on_time, rework, rated, satisfied
                 FROM rollup_counters WHERE org = ?1 AND day >= ?2 AND day < ?3
                 UNION ALL
                 SELECT received, closed, closed_on_time, rework, rated, satisfied
                 FROM rollup_months WHERE org = ?1 AND month >= ?4 AND month <= ?5
                 UNION ALL
                 SELECT received, closed, closed_on_time, rework, rated, satisfied
                 FROM rollup_counters WHERE org = ?1 AND day > ?6 AND day <= ?7
             )",
        )
        .db()?;
    if from > to {
        return Ok(orgs
            .iter()
            .map(|o| (o.clone(), Counters::default()))
            .collect());
    }
    let s = split(from, to);
    let (from, head_end, tail_start, to) = (
        from.to_string(),
        s.head_end.to_string(),
        s.tail_start.to_string(),
        to.to_string(),
    );
    let mut out = HashMap::with_capacity(orgs.len());
    for org in orgs {
        let c = stmt
            .query_row(
                params![org, from, head_end, s.months.0, s.months.1, tail_start, to],
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
            .db()?;
        out.insert(org.clone(), c);
    }
    Ok(out)
}

/// Fills `rollup_months` from the days when it is empty but the days are not: a store
/// whose days were written directly (`import_records`, copying from another store) gets its
/// months at the next open.
pub(crate) fn rebuild_months_if_missing(conn: &Connection) -> Result<()> {
    let missing: bool = conn
        .query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM rollup_months)
                 AND EXISTS (SELECT 1 FROM rollup_counters)",
            [],
            |r| r.get(0),
        )
        .db()?;
    if missing {
        conn.execute_batch(
            "INSERT INTO rollup_months
                 (org, month, received, closed, closed_on_time, rework, rated, satisfied)
             SELECT org, substr(day, 1, 7), sum(received), sum(closed), sum(closed_on_time),
                    sum(rework), sum(rated), sum(satisfied)
             FROM rollup_counters GROUP BY org, substr(day, 1, 7)",
        )
        .db()?;
        tracing::info!("rebuilt the monthly rollups from the daily ones");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Whatever the period, the months and days add up to the sum of the days, also after
    /// repeated writes of the same rows.
    #[test]
    fn month_sums_equal_day_sums() {
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
            // Twice, so that the months also follow updates.
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
}
