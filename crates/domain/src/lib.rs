//! gridloop's pure domain core.
//!
//! Everything here is a rule of the closed case loop (件件有回应) and nothing else: no I/O, no
//! async, no storage. The store persists what these functions decide; the HTTP layer only
//! translates. A newcomer looking for a rule should find it in exactly one of these modules:
//!
//! | module | rules |
//! |---|---|
//! | [`org`] | org codes, levels, the materialized path of the jurisdiction tree |
//! | [`org_import`] | importing orgs and boundaries from GeoJSON: validation and parent-first order |
//! | [`role`] | roles, who may do which action, jurisdiction (subtree) checks |
//! | [`calendar`] | working days, holidays and 调休 make-up days, working hours |
//! | [`policy`] | the 135 deadlines, claim deadline, supervision and escalation ladder |
//! | [`case`] | the case, its statuses and the state machine ([`case::decide`]) |
//! | [`sweep`] | what the overdue sweep does to a case that fell due |
//! | [`timeline`] | events and the hash chain that makes the timeline tamper-evident |
//! | [`measures`] | counters, gauges and the published rates (GLOSSARY "Measures") |
//! | [`privacy`] | masking of personal data |
//! | [`category`] | the case categories (数字城管 classes plus community affairs) |
//! | [`geo`] | point-in-polygon routing, coordinate systems (GCJ-02, BD-09), distances |
//! | [`duplicates`] | likely duplicates: nearby open cases saying the same (jieba words) |

pub mod calendar;
pub mod case;
pub mod category;
pub mod duplicates;
pub mod error;
pub mod geo;
pub mod measures;
pub mod org;
pub mod org_import;
pub mod policy;
pub mod privacy;
pub mod role;
pub mod sweep;
pub mod timeline;

pub use error::DomainError;

use chrono::{DateTime, Utc};

/// Truncates a timestamp to whole milliseconds: the precision every store keeps, so that a
/// value read back hashes the same as the value written.
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
