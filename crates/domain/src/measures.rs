//! Measures (GLOSSARY "Measures"): what is counted, when, and how rates are derived.
//!
//! Stores keep two kinds of rollup, both attributed to the case's area org (属地) and every
//! ancestor of it, and both updated in the same transaction as the case:
//! - **counters** per org and local day: received, closed, closed on time, rework, rated,
//!   satisfied — summed over any period;
//! - **gauges** per org: open cases by status and overdue cases, right now.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::case::{Case, Status};

/// Additive counters for one org and day (or summed over a period).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub received: i64,
    pub closed: i64,
    pub closed_on_time: i64,
    pub rework: i64,
    pub rated: i64,
    pub satisfied: i64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.received += o.received;
        self.closed += o.closed;
        self.closed_on_time += o.closed_on_time;
        self.rework += o.rework;
        self.rated += o.rated;
        self.satisfied += o.satisfied;
    }

    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

/// A change to the gauges: `+1`/`-1` on a status count, or on the overdue count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GaugeKey {
    Status(Status),
    Overdue,
}

impl GaugeKey {
    /// The stored key: the status name, or `overdue`.
    pub fn as_str(self) -> &'static str {
        match self {
            GaugeKey::Status(s) => s.as_str(),
            GaugeKey::Overdue => "overdue",
        }
    }
}

/// What one change to a case does to the rollups of its area (and the area's ancestors).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeasureDelta {
    pub counters: Vec<(NaiveDate, Counters)>,
    pub gauges: Vec<(GaugeKey, i64)>,
}

impl MeasureDelta {
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.gauges.is_empty()
    }

    /// Adds another delta to this one (several steps of one case, as a bulk import writes).
    pub fn extend(&mut self, other: MeasureDelta) {
        for (day, c) in other.counters {
            self.count(day, |x| x.add(&c));
        }
        for (k, n) in other.gauges {
            if let Some((_, m)) = self.gauges.iter_mut().find(|(g, _)| *g == k) {
                *m += n;
            } else {
                self.gauges.push((k, n));
            }
        }
    }

    fn count(&mut self, day: NaiveDate, f: impl FnOnce(&mut Counters)) {
        if let Some((_, c)) = self.counters.iter_mut().find(|(d, _)| *d == day) {
            f(c);
        } else {
            let mut c = Counters::default();
            f(&mut c);
            self.counters.push((day, c));
        }
    }
}

/// The rollup change between two versions of a case (`before` is `None` for a new case).
pub fn delta(before: Option<&Case>, after: &Case, cal: &Calendar) -> MeasureDelta {
    let mut d = MeasureDelta::default();
    let day = |t| cal.local_date(t);

    // Gauges: cases by status, and overdue open cases.
    let before_status = before.map(|b| b.status);
    if before_status != Some(after.status) {
        if let Some(s) = before_status {
            d.gauges.push((GaugeKey::Status(s), -1));
        }
        d.gauges.push((GaugeKey::Status(after.status), 1));
    }
    let was_overdue = before.is_some_and(|b| b.overdue && b.status.is_open());
    let is_overdue = after.overdue && after.status.is_open();
    if was_overdue != is_overdue {
        d.gauges
            .push((GaugeKey::Overdue, if is_overdue { 1 } else { -1 }));
    }

    // received: counted on the day the centre accepted it.
    if before.and_then(|b| b.accepted_at).is_none()
        && let Some(t) = after.accepted_at
    {
        d.count(day(t), |c| c.received += 1);
    }
    // closed: counted on the closing day; a reopened case gives its closure back.
    let was_closed = before.is_some_and(|b| b.status == Status::Closed);
    let is_closed = after.status == Status::Closed;
    if was_closed
        && !is_closed
        && let Some(b) = before
        && let Some(t) = b.closed_at
    {
        let on_time = b.closed_on_time == Some(true);
        d.count(day(t), |c| {
            c.closed -= 1;
            c.closed_on_time -= i64::from(on_time);
        });
    }
    if !was_closed
        && is_closed
        && let Some(t) = after.closed_at
    {
        let on_time = after.closed_on_time == Some(true);
        d.count(day(t), |c| {
            c.closed += 1;
            c.closed_on_time += i64::from(on_time);
        });
    }
    // rework and ratings: counted on the day they happen.
    let rework = i64::from(after.rework_count) - i64::from(before.map_or(0, |b| b.rework_count));
    if rework != 0 {
        d.count(day(after.updated_at), |c| c.rework += rework);
    }
    let rated = i64::from(after.feedback_count) - i64::from(before.map_or(0, |b| b.feedback_count));
    if rated > 0 {
        let satisfied = after.rating.is_some_and(|r| r.is_satisfied());
        d.count(day(after.updated_at), |c| {
            c.rated += rated;
            c.satisfied += i64::from(satisfied) * rated;
        });
    }
    d
}

/// The published measures of an org subtree over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Measures {
    pub received: i64,
    pub closed: i64,
    pub closure_rate: f64,
    pub on_time_rate: f64,
    pub overdue: i64,
    pub rework_rate: f64,
    pub satisfaction_rate: f64,
    pub closed_on_time: i64,
    pub rework: i64,
    pub rated: i64,
    pub satisfied: i64,
}

/// A ratio that stays within 0..=1 and is 0 when nothing was counted (the raw counts are
/// published beside every rate so that "0 of 0" can be told from "0 of 100").
fn ratio(n: i64, d: i64) -> f64 {
    if d <= 0 {
        0.0
    } else {
        (n as f64 / d as f64).clamp(0.0, 1.0)
    }
}

impl Measures {
    pub fn from_counters(c: &Counters, overdue: i64) -> Measures {
        Measures {
            received: c.received,
            closed: c.closed,
            closure_rate: ratio(c.closed, c.received),
            on_time_rate: ratio(c.closed_on_time, c.closed),
            overdue,
            rework_rate: ratio(c.rework, c.closed),
            satisfaction_rate: ratio(c.satisfied, c.rated),
            closed_on_time: c.closed_on_time,
            rework: c.rework,
            rated: c.rated,
            satisfied: c.satisfied,
        }
    }
}
