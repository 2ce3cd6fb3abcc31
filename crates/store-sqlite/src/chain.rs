//! The event hash chain: appending (writer side) and verifying (reader side).

use std::cell::RefCell;

use chrono::{DateTime, Utc};
use gridloop_domain::timeline::{ChainBreak, ChainVerifier, Event, GENESIS, NewEvent, event_hash};
use gridloop_store::{ChainReport, Result, StoreError};
use rusqlite::{Connection, Row, params};
use sha2::{Digest, Sha256};

use crate::codec::{self, Kind};
use crate::sql::{Db, get, ms};

/// The stored columns of an event. There is no `prev_hash`: ids are consecutive along the
/// chain, so an event's previous hash is the hash of the event whose id is one less (see
/// [`link`]); storing it again cost 32 bytes an event.
pub(crate) const EVENT_COLUMNS: &str = "id, case_id, seq, action, actor, at, details, hash";

/// [`EVENT_COLUMNS`] and, last, the previous event's hash, for a query over
/// [`LINKED_EVENTS`] (a read that cannot look up the predecessor itself: copy's pages).
pub(crate) const LINKED_EVENT_COLUMNS: &str =
    "e.id, e.case_id, e.seq, e.action, e.actor, e.at, e.details, e.hash, p.hash";
/// Each event with its predecessor in the chain (a rowid lookup, on a page just read).
pub(crate) const LINKED_EVENTS: &str = "events e LEFT JOIN events p ON p.id = e.id - 1";

/// What an event whose predecessor is missing links to: no hash, so that nothing mistakes it
/// for a link (verification reports the gap in the ids first).
const NO_PREDECESSOR: &str = "";

/// The end of the chain while a write job appends to it. Loaded once per job and saved once
/// at its end, so a bulk import touches `chain_head` twice, not once per event. It lives
/// only inside one job (one savepoint), so a failed job cannot leave it out of step with
/// the table.
pub(crate) struct ChainHead {
    id: i64,
    hash: String,
    dirty: bool,
}

impl ChainHead {
    pub fn load(conn: &Connection) -> Result<ChainHead> {
        let (id, hash) = conn
            .prepare_cached("SELECT id, hash FROM chain_head WHERE singleton = 1")
            .db()?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .db()?;
        Ok(ChainHead {
            id,
            hash,
            dirty: false,
        })
    }

    /// Appends a case's new events in order. `last_seq` is the case's last event number, when
    /// the caller knows it (0 for a new case); otherwise it is looked up.
    pub fn append(
        &mut self,
        conn: &Connection,
        case_id: i64,
        last_seq: Option<i64>,
        events: &[NewEvent],
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut seq = match last_seq {
            Some(s) => s,
            None => conn
                .prepare_cached("SELECT coalesce(max(seq), 0) FROM events WHERE case_id = ?1")
                .db()?
                .query_row([case_id], |r| r.get(0))
                .db()?,
        };
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO events (id, case_id, seq, action, actor, at, details, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .db()?;
        for e in events {
            let id = self.id + 1;
            seq += 1;
            let hash = event_hash(
                &self.hash, id, case_id, seq, &e.action, &e.actor, e.at, &e.details,
            );
            let details = serde_json::to_string(&e.details).map_err(|err| {
                StoreError::Backend(format!("cannot encode event details: {err}"))
            })?;
            let details = codec::compress(Kind::Event, details.as_bytes())?;
            insert
                .execute(params![
                    id,
                    case_id,
                    seq,
                    e.action,
                    e.actor,
                    ms(e.at),
                    details,
                    hash_blob(&hash)?
                ])
                .db()?;
            self.id = id;
            self.hash = hash;
            self.dirty = true;
        }
        Ok(())
    }

    /// Where events appended after this head continue the chain, for [`ChainLink`].
    pub fn link(&self) -> Result<ChainLink> {
        let mut prev_hex = [0u8; 64];
        if self.hash.len() != prev_hex.len() {
            return Err(StoreError::Backend(format!(
                "the chain head's hash {:?} is not 64 hex digits",
                self.hash
            )));
        }
        prev_hex.copy_from_slice(self.hash.as_bytes());
        Ok(ChainLink {
            id: self.id,
            prev_hex,
        })
    }

    /// Inserts a new case's events (encoded off the writer) linked by a [`ChainLink`] from
    /// this head, their ids and hashes given, checking that they continue the chain where
    /// it ends.
    pub fn append_linked(
        &mut self,
        conn: &Connection,
        case_id: i64,
        events: &[PreparedEvent],
    ) -> Result<()> {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO events (id, case_id, seq, action, actor, at, details, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .db()?;
        let mut last = None;
        for (seq, e) in (1..).zip(events) {
            let Some((id, hash)) = e.linked else {
                return Err(StoreError::Backend("an event was not linked".into()));
            };
            if id != self.id + 1 {
                return Err(StoreError::Backend(format!(
                    "an event linked as {id} does not follow the chain's end at {}",
                    self.id
                )));
            }
            insert
                .execute(params![
                    id,
                    case_id,
                    seq,
                    e.action,
                    e.actor,
                    e.at,
                    e.stored,
                    &hash[..]
                ])
                .db()?;
            self.id = id;
            self.dirty = true;
            last = Some(hash);
        }
        if let Some(hash) = last {
            self.hash = hex::encode(hash);
        }
        Ok(())
    }

    pub fn save(&self, conn: &Connection) -> Result<()> {
        if self.dirty {
            conn.prepare_cached("UPDATE chain_head SET id = ?1, hash = ?2 WHERE singleton = 1")
                .db()?
                .execute(params![self.id, self.hash])
                .db()?;
        }
        Ok(())
    }
}

/// An event whose details are already encoded, so that the writer, which must append to
/// the chain one event at a time, only hashes and inserts it: encoding JSON trees (and
/// freeing them) is done before the write job, off the single writer thread.
pub(crate) struct PreparedEvent {
    action: String,
    actor: String,
    at: i64,
    /// What the hash is taken over after the id, case and number, which the writer
    /// assigns: `,"action","actor",at,{details}]` (JSON, so UTF-8) ...
    hashed_tail: Box<[u8]>,
    /// ... and the details as stored (compressed, see [`codec`]).
    stored: Vec<u8>,
    /// Its id and hash, once given by a [`ChainLink`].
    linked: Option<(i64, [u8; 32])>,
}

impl PreparedEvent {
    pub fn new(e: NewEvent) -> Result<PreparedEvent> {
        // Written into a buffer each thread reuses, then copied out at its size: one
        // allocation for the hashed text instead of one per piece and a regrown string.
        TAIL.with(|tail| {
            let mut tail = tail.borrow_mut();
            tail.clear();
            tail.push(b',');
            write_json(&mut tail, &e.action)?;
            tail.push(b',');
            write_json(&mut tail, &e.actor)?;
            tail.push(b',');
            tail.extend_from_slice(itoa::Buffer::new().format(ms(e.at)).as_bytes());
            tail.push(b',');
            let details = tail.len();
            write_json(&mut tail, &e.details)?;
            let stored = codec::compress(Kind::Event, &tail[details..])?;
            tail.push(b']');
            let hashed_tail = tail.as_slice().into();
            codec::let_go_if_large(&mut tail);
            Ok(PreparedEvent {
                linked: None,
                stored,
                action: e.action,
                actor: e.actor,
                at: ms(e.at),
                hashed_tail,
            })
        })
    }

    /// [`event_hash`] over the encoded event: the very bytes `event_hash` hashes (a JSON
    /// array in serde_json's compact form), without building and encoding a JSON tree again.
    /// The test `prepared_hashes_equal_the_domains` holds the two equal.
    fn hash(&self, prev_hash: &[u8], id: i64, case_id: i64, seq: i64) -> [u8; 32] {
        let mut n = itoa::Buffer::new();
        let mut h = Sha256::new();
        h.update(prev_hash);
        h.update(b"\n[");
        h.update(n.format(id).as_bytes());
        h.update(b",");
        h.update(n.format(case_id).as_bytes());
        h.update(b",");
        h.update(n.format(seq).as_bytes());
        h.update(&self.hashed_tail);
        h.finalize().into()
    }
}

/// Where new events continue the chain: the last id and its hash (hex, as the next event
/// hashes it). A new case's events are linked on the writer, within its job. A bulk import
/// is one write job, so nothing else appends to the chain meanwhile, and its encoder links
/// the events in order off the writer (SHA-256 of every event was ~5% of the writer's
/// time), given the head when the job starts.
pub(crate) struct ChainLink {
    id: i64,
    prev_hex: [u8; 64],
}

impl ChainLink {
    /// Gives a new case's events (numbered from 1) their ids and hashes, in order.
    pub fn link(&mut self, case_id: i64, events: &mut [PreparedEvent]) -> Result<()> {
        for (seq, e) in (1..).zip(events.iter_mut()) {
            let id = self.id + 1;
            let hash = e.hash(&self.prev_hex, id, case_id, seq);
            hex::encode_to_slice(hash, &mut self.prev_hex)
                .map_err(|err| StoreError::Backend(format!("cannot hex a hash: {err}")))?;
            e.linked = Some((id, hash));
            self.id = id;
        }
        Ok(())
    }
}

thread_local! {
    /// The buffer [`PreparedEvent::new`] writes an event's hashed text in.
    static TAIL: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Appends `v` as compact JSON, the bytes `serde_json::to_string` gives.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<()> {
    serde_json::to_writer(out, v)
        .map_err(|err| StoreError::Backend(format!("cannot encode an event: {err}")))
}

/// Event hashes are stored as their 32 bytes, not as 64 hex characters: two per event (when
/// the link was stored too), they were a fifth of the database. Rows written as text (by
/// older versions, or copied in) read the same.
pub(crate) fn hash_blob(hex_hash: &str) -> Result<Vec<u8>> {
    hex::decode(hex_hash)
        .map_err(|e| StoreError::Backend(format!("an event hash is not hex ({hex_hash}): {e}")))
}

fn hash_text(r: &Row<'_>, idx: usize) -> std::result::Result<String, String> {
    use rusqlite::types::ValueRef;
    match r.get_ref(idx).map_err(|e| e.to_string())? {
        ValueRef::Blob(b) => Ok(hex::encode(b)),
        ValueRef::Text(t) => String::from_utf8(t.to_vec()).map_err(|e| e.to_string()),
        other => Err(format!("its hash is a {:?}", other.data_type())),
    }
}

/// A stored event from its [`EVENT_COLUMNS`] and the hash of the event before it, or why
/// its row does not make one.
pub(crate) fn event_from_row(r: &Row<'_>, prev_hash: String) -> std::result::Result<Event, String> {
    let col = |e: rusqlite::Error| e.to_string();
    let details = codec::decode(Kind::Event, r.get_ref(6).map_err(col)?)
        .map_err(|e| format!("its details cannot be read: {e}"))?;
    let at: i64 = r.get(5).map_err(col)?;
    Ok(Event {
        id: r.get(0).map_err(col)?,
        case_id: r.get(1).map_err(col)?,
        seq: r.get(2).map_err(col)?,
        action: r.get(3).map_err(col)?,
        actor: r.get(4).map_err(col)?,
        at: DateTime::<Utc>::from_timestamp_millis(at)
            .ok_or_else(|| format!("its time {at} is out of range"))?,
        details: serde_json::from_slice(&details)
            .map_err(|e| format!("its details are not JSON: {e}"))?,
        prev_hash,
        hash: hash_text(r, 7)?,
    })
}

/// A stored event from its [`LINKED_EVENT_COLUMNS`].
pub(crate) fn linked_event_from_row(r: &Row<'_>) -> std::result::Result<Event, String> {
    let id: i64 = r.get(0).map_err(|e| e.to_string())?;
    let prev = match r.get_ref(8).map_err(|e| e.to_string())? {
        rusqlite::types::ValueRef::Null => absent_predecessor(id).to_string(),
        _ => hash_text(r, 8)?,
    };
    event_from_row(r, prev)
}

/// The previous hash of event `id` when no event `id - 1` is stored.
fn absent_predecessor(id: i64) -> &'static str {
    if id == 1 { GENESIS } else { NO_PREDECESSOR }
}

/// The hash of event `id - 1` in the chain, as [`Event::prev_hash`] of event `id`.
pub(crate) fn prev_hash(conn: &Connection, id: i64) -> Result<String> {
    let mut stmt = conn
        .prepare_cached("SELECT hash FROM events WHERE id = ?1")
        .db()?;
    let mut rows = stmt.query([id - 1]).db()?;
    match rows.next().db()? {
        Some(r) => hash_text(r, 0)
            .map_err(|e| StoreError::Backend(format!("corrupt event {}: {e}", id - 1))),
        None => Ok(absent_predecessor(id).to_string()),
    }
}

/// Rows of [`EVENT_COLUMNS`] in chain order (any subset of the chain) as events, each with
/// its previous hash: that of the row before when it is the chain's previous event, else
/// looked up (once per run of consecutive ids).
fn link(conn: &Connection, mut rows: rusqlite::Rows<'_>) -> Result<Vec<Event>> {
    let mut events: Vec<Event> = Vec::new();
    while let Some(r) = rows.next().db()? {
        let id: i64 = get(r, 0)?;
        let prev = match events.last() {
            Some(p) if p.id + 1 == id => p.hash.clone(),
            _ => prev_hash(conn, id)?,
        };
        events.push(
            event_from_row(r, prev)
                .map_err(|e| StoreError::Backend(format!("corrupt event {id}: {e}")))?,
        );
    }
    Ok(events)
}

/// A case's timeline, oldest first.
pub(crate) fn case_events(conn: &Connection, case_id: i64) -> Result<Vec<Event>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE case_id = ?1 ORDER BY seq"
        ))
        .db()?;
    link(conn, stmt.query([case_id]).db()?)
}

/// The page's ids from the period's range of `events_at` (index entries only, sorted by id),
/// then just their rows. The index is named: without statistics the planner would rather
/// walk the whole chain in id order and test every event's time.
pub(crate) fn events_between_sql() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE id IN (
             SELECT id FROM events INDEXED BY events_at
             WHERE at >= ?1 AND at < ?2 ORDER BY id LIMIT ?3)
         ORDER BY id"
    )
}

/// Events of all cases with `from <= at < to`, in chain order, at most `limit`.
pub(crate) fn events_between(
    conn: &Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(&events_between_sql()).db()?;
    link(conn, stmt.query(params![ms(from), ms(to), limit]).db()?)
}

/// Walks the whole chain in one read snapshot, so that events committed meanwhile cannot
/// make the chain look longer than its recorded head. Rows are streamed, never collected.
pub(crate) fn verify(conn: &Connection) -> Result<ChainReport> {
    conn.execute_batch("BEGIN").db()?;
    let report = verify_in_snapshot(conn);
    // Read-only: ending the transaction cannot lose anything; the lease rolls back if even
    // this fails.
    let _ = conn.execute_batch("COMMIT");
    report
}

fn verify_in_snapshot(conn: &Connection) -> Result<ChainReport> {
    let (head_id, head_hash): (i64, String) = conn
        .query_row(
            "SELECT id, hash FROM chain_head WHERE singleton = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .db()?;
    let mut verifier = ChainVerifier::default();
    let report = |v: &ChainVerifier, first_break| ChainReport {
        checked: v.checked,
        first_break,
    };
    // Not cached: the statement lives as long as the walk, and runs rarely.
    let mut stmt = conn
        .prepare(&format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY id"))
        .db()?;
    let mut rows = stmt.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        // The walk is in id order, so the previous hash is the one just checked: each event
        // is hashed over it, and a gap in the ids is a break before any hash is compared.
        let prev = verifier.last().1.to_string();
        let checked = event_from_row(r, prev).map_err(|reason| ChainBreak {
            event_id: get(r, 0).unwrap_or(0),
            case_id: get(r, 1).unwrap_or(0),
            reason,
        });
        if let Err(b) = checked.and_then(|e| verifier.check(&e)) {
            return Ok(report(&verifier, Some(b)));
        }
    }
    let end = verifier.finish(head_id, &head_hash).err();
    Ok(report(&verifier, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prepared_hashes_equal_the_domains() {
        let at = DateTime::<Utc>::from_timestamp_millis(1_764_000_000_123).unwrap();
        let details = json!({
            "to": "reported",
            "title": "路灯不亮 \"3 盏\"\n\u{1}",
            "changes": {"org": ["/1/", "/1/2/"], "n": [1.5, null], "ok": [false, true]},
            "empty": {}, "list": [], "big": 12345678901234i64
        });
        let e = NewEvent {
            action: "create".into(),
            actor: "s0001-dispatcher \"x\"".into(),
            at,
            details: details.clone(),
        };
        let prev = "ab".repeat(32);
        let want = event_hash(&prev, 7, 3, 2, &e.action, &e.actor, at, &details);
        let got = PreparedEvent::new(e)
            .unwrap()
            .hash(prev.as_bytes(), 7, 3, 2);
        assert_eq!(hex::encode(got), want);
    }
}
