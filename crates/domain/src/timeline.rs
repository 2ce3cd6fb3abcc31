//! The tamper-evident timeline (事事留痕).
//!
//! Every change to a case is an append-only event. Events form one hash chain over the
//! whole store: each event's hash covers its content and the previous event's hash, so
//! editing, deleting or reordering any stored event breaks the chain at that point, and
//! [`verify_chain`] names the first bad event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::role::Actor;

/// The hash before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as decided, before the store gives it a place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub details: Value,
}

impl NewEvent {
    pub fn new(action: &str, actor: &Actor, at: DateTime<Utc>, details: Value) -> Self {
        NewEvent {
            action: action.to_string(),
            actor: actor.name(),
            at,
            details,
        }
    }
}

/// An event as stored: `id` is its place in the global chain, `seq` its place in its case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub case_id: i64,
    pub seq: i64,
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an event given the previous one. The content is serialized canonically
/// (serde_json sorts object keys), with time in whole milliseconds.
// Each argument is one hashed field; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    prev_hash: &str,
    id: i64,
    case_id: i64,
    seq: i64,
    action: &str,
    actor: &str,
    at: DateTime<Utc>,
    details: &Value,
) -> String {
    let body = serde_json::json!([
        id,
        case_id,
        seq,
        action,
        actor,
        at.timestamp_millis(),
        details
    ]);
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

impl Event {
    pub fn compute_hash(&self) -> String {
        event_hash(
            &self.prev_hash,
            self.id,
            self.case_id,
            self.seq,
            &self.action,
            &self.actor,
            self.at,
            &self.details,
        )
    }
}

/// Where a chain check stands after some events; feed events in `id` order.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev_hash: String,
    prev_id: i64,
    pub checked: u64,
}

/// The first bad event and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub event_id: i64,
    pub case_id: i64,
    pub reason: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            prev_hash: GENESIS.to_string(),
            prev_id: 0,
            checked: 0,
        }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, e: &Event) -> Result<(), ChainBreak> {
        let bad = |reason: String| ChainBreak {
            event_id: e.id,
            case_id: e.case_id,
            reason,
        };
        if e.id != self.prev_id + 1 {
            return Err(bad(format!(
                "event {} follows event {}: events {}..{} are missing",
                e.id,
                self.prev_id,
                self.prev_id + 1,
                e.id - 1
            )));
        }
        if e.prev_hash != self.prev_hash {
            return Err(bad("its link to the previous event does not match".into()));
        }
        if e.compute_hash() != e.hash {
            return Err(bad("its content does not match its hash (edited)".into()));
        }
        self.prev_hash = e.hash.clone();
        self.prev_id = e.id;
        self.checked += 1;
        Ok(())
    }

    /// After the last event: the chain must end where the store's recorded head says, so
    /// that deleting the newest events is detected too.
    pub fn finish(&self, head_id: i64, head_hash: &str) -> Result<(), ChainBreak> {
        if head_id != self.prev_id || head_hash != self.prev_hash {
            return Err(ChainBreak {
                event_id: self.prev_id + 1,
                case_id: 0,
                reason: format!(
                    "the chain ends at event {} but the recorded head is event {}",
                    self.prev_id, head_id
                ),
            });
        }
        Ok(())
    }

    pub fn last(&self) -> (i64, &str) {
        (self.prev_id, &self.prev_hash)
    }
}

/// Convenience: verify a complete list of events against the recorded head.
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    head: (i64, &str),
) -> Result<u64, ChainBreak> {
    let mut v = ChainVerifier::default();
    for e in events {
        v.check(e)?;
    }
    v.finish(head.0, head.1)?;
    Ok(v.checked)
}
