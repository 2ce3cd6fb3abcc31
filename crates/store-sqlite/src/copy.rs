//! Export and import of the store's whole content, for `gridloop copy` (moving a deployment
//! between stores). Rows go out exactly as stored — ids, numbers, hashes — so the chain of
//! the target verifies like the source's.
//!
//! The content is read section by section (one table each) in an order in which every row's
//! references come before it. The cursor names the section and the last key read in it.

use std::path::Path;

use chrono::NaiveDate;
use gridloop_store::{IdempotencyRecord, Page, Record, Result, StoreError};
use rusqlite::{Connection, Row, params};
use serde::{Deserialize, Serialize};

use crate::attachments;
use crate::cases::{doc_at, insert_case};
use crate::chain::{
    LINKED_EVENT_COLUMNS, LINKED_EVENTS, hash_blob, linked_event_from_row, prev_hash,
};
use crate::channels::{CALL_COLUMNS, VISIT_COLUMNS, call_from_row, visit_from_row};
use crate::codec::{self, Kind};
use crate::directory::{
    ORG_COLUMNS, TOWER_GROUP_COLUMNS, USER_COLUMNS, org_from_row, put_calendar_year, put_orgs,
    put_setting, put_tower_groups, tower_group_from_row, user_from_row,
};
use crate::rollups::RollupDelta;
use crate::sql::{Db, collect, from_ms, get, ms};

/// The tables in export order. Orgs go by path (parents before children), daily counters and
/// gauges by their keys (org, day) and (org, key); every other table by its rowid, which is
/// also the order it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Section {
    Orgs,
    TowerGroups,
    Users,
    ApiKeys,
    CalendarYears,
    Settings,
    Attachments,
    NightVisits,
    Cases,
    Idempotency,
    CaseNumbers,
    Events,
    HotlineCalls,
    Counters,
    Gauges,
}

const SECTIONS: [Section; 15] = [
    Section::Orgs,
    Section::TowerGroups,
    Section::Users,
    Section::ApiKeys,
    Section::CalendarYears,
    Section::Settings,
    Section::Attachments,
    Section::NightVisits,
    Section::Cases,
    Section::Idempotency,
    Section::CaseNumbers,
    Section::Events,
    Section::HotlineCalls,
    Section::Counters,
    Section::Gauges,
];

/// Where the previous page stopped: a section and the last key read in it (an org path, an
/// `[org, day]` or `[org, key]` pair or a rowid), `None` at the start of the section.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    section: Section,
    after: Option<serde_json::Value>,
}

/// Attachments are whole files; a page carries about this many bytes of them at most.
const PAGE_BYTES: u64 = 64 << 20;

fn bad_cursor() -> StoreError {
    StoreError::Domain(gridloop_domain::DomainError::invalid(
        "cursor",
        "not a cursor of this store's export",
    ))
}

pub(crate) fn export(
    conn: &Connection,
    attachments_dir: &Path,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page<Record>> {
    let limit = limit.clamp(1, 10_000) as usize;
    let mut at = match cursor {
        None => Cursor {
            section: SECTIONS[0],
            after: None,
        },
        Some(text) => serde_json::from_str(text).map_err(|_| bad_cursor())?,
    };
    // One snapshot for the whole page.
    conn.execute_batch("BEGIN").db()?;
    let out = export_in(conn, attachments_dir, &mut at, limit);
    let _ = conn.execute_batch("COMMIT");
    let (items, done) = out?;
    let next_cursor = if done {
        None
    } else {
        Some(serde_json::to_string(&at).map_err(|e| StoreError::Backend(e.to_string()))?)
    };
    Ok(Page { items, next_cursor })
}

/// Fills a page from the cursor on; returns the records and whether the export is complete.
fn export_in(
    conn: &Connection,
    dir: &Path,
    at: &mut Cursor,
    limit: usize,
) -> Result<(Vec<Record>, bool)> {
    let mut items = Vec::new();
    let mut index = SECTIONS
        .iter()
        .position(|s| *s == at.section)
        .ok_or_else(bad_cursor)?;
    loop {
        let want = limit - items.len();
        let read = read_section(conn, dir, at.section, at.after.as_ref(), want)?;
        items.extend(read.records);
        if read.last.is_some() {
            at.after = read.last;
        }
        if !read.exhausted {
            return Ok((items, false));
        }
        index += 1;
        match SECTIONS.get(index) {
            Some(s) => {
                at.section = *s;
                at.after = None;
            }
            None => return Ok((items, true)),
        }
        if items.len() >= limit {
            return Ok((items, false));
        }
    }
}

/// What one read of a section gave: its records, the key of the last one, and whether the
/// section has no more after them.
struct SectionRead {
    records: Vec<Record>,
    last: Option<serde_json::Value>,
    exhausted: bool,
}

/// Up to `want` records of one section after `after`.
fn read_section(
    conn: &Connection,
    dir: &Path,
    section: Section,
    after: Option<&serde_json::Value>,
    want: usize,
) -> Result<SectionRead> {
    let limit = want as i64;
    match section {
        Section::Orgs => {
            let after = match after {
                None => String::new(),
                Some(v) => v.as_str().ok_or_else(bad_cursor)?.to_string(),
            };
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ORG_COLUMNS} FROM orgs WHERE path > ?1 ORDER BY path LIMIT ?2"
                ))
                .db()?;
            let orgs = collect(stmt.query(params![after, limit]).db()?, org_from_row)?;
            Ok(SectionRead {
                exhausted: orgs.len() < want,
                last: orgs.last().map(|o| o.path.clone().into()),
                records: orgs.into_iter().map(Record::Org).collect(),
            })
        }
        Section::Attachments => {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT rowid, id FROM attachments WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                )
                .db()?;
            let ids = collect(stmt.query(params![after_int(after)?, limit]).db()?, |r| {
                Ok((get::<i64>(r, 0)?, get::<String>(r, 1)?))
            })?;
            let mut read = SectionRead {
                exhausted: ids.len() < want,
                records: Vec::new(),
                last: None,
            };
            let mut bytes = 0;
            for (rowid, id) in ids {
                let (meta, content) = attachments::read(conn, dir, &id)?
                    .ok_or_else(|| StoreError::Backend(format!("attachment {id} vanished")))?;
                bytes += meta.size;
                read.records.push(Record::Attachment {
                    meta,
                    bytes: content,
                });
                read.last = Some(rowid.into());
                // Files can be large: stop the page early, the rest follows on the next.
                if bytes >= PAGE_BYTES {
                    read.exhausted = false;
                    break;
                }
            }
            Ok(read)
        }
        Section::Counters => {
            let (after_org, after_day): (String, String) = match after {
                None => (String::new(), String::new()),
                Some(v) => serde_json::from_value(v.clone()).map_err(|_| bad_cursor())?,
            };
            let mut stmt = conn
                .prepare_cached(
                    "SELECT org, day, received, closed, closed_on_time, rework, rated, satisfied
                     FROM rollup_counters WHERE (org, day) > (?1, ?2) ORDER BY org, day
                     LIMIT ?3",
                )
                .db()?;
            let mut rows = stmt.query(params![after_org, after_day, limit]).db()?;
            let mut read = SectionRead {
                records: Vec::new(),
                last: None,
                exhausted: true,
            };
            while let Some(r) = rows.next().db()? {
                let (org, day_text): (String, String) = (get(r, 0)?, get(r, 1)?);
                read.records.push(Record::Counters {
                    org: org.clone(),
                    day: day(&day_text)?,
                    counters: crate::rollups::counters_at(r, 2)?,
                });
                read.last = Some(serde_json::json!([org, day_text]));
            }
            read.exhausted = read.records.len() < want;
            Ok(read)
        }
        Section::Gauges => {
            // By org of the tree: the gauges of orgs near a root are rows, the others' are
            // counted from their cases (`rollups::gauges`), and a copy carries them all, for a
            // store that keeps every org's. The key part of the cursor is unused.
            let (after_org, _): (String, String) = match after {
                None => (String::new(), String::new()),
                Some(v) => serde_json::from_value(v.clone()).map_err(|_| bad_cursor())?,
            };
            let mut stmt = conn
                .prepare_cached("SELECT code FROM orgs WHERE code > ?1 ORDER BY code LIMIT ?2")
                .db()?;
            let orgs = collect(stmt.query(params![after_org, limit]).db()?, |r| {
                get::<String>(r, 0)
            })?;
            let mut read = SectionRead {
                records: Vec::new(),
                last: orgs.last().map(|o| serde_json::json!([o, ""])),
                exhausted: orgs.len() < want,
            };
            let gauges = crate::rollups::read_gauges(conn, &orgs)?;
            for org in orgs {
                let mut keys: Vec<(String, i64)> = gauges
                    .get(&org)
                    .map(|g| g.iter().map(|(k, n)| (k.clone(), *n)).collect())
                    .unwrap_or_default();
                keys.sort();
                for (key, n) in keys {
                    read.records.push(Record::Gauge {
                        org: org.clone(),
                        key,
                        n,
                    });
                }
            }
            Ok(read)
        }
        _ => {
            let (table, key, columns, convert) = table_of(section);
            // The key is read last, so that the tables' own row converters see their columns
            // from index 0.
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {columns}, {key} FROM {table} WHERE {key} > ?1 ORDER BY {key} LIMIT ?2"
                ))
                .db()?;
            let key_at = stmt.column_count() - 1;
            let mut rows = stmt.query(params![after_int(after)?, limit]).db()?;
            let mut read = SectionRead {
                records: Vec::new(),
                last: None,
                exhausted: true,
            };
            while let Some(r) = rows.next().db()? {
                read.records.push(convert(r)?);
                read.last = Some(get::<i64>(r, key_at)?.into());
            }
            read.exhausted = read.records.len() < want;
            Ok(read)
        }
    }
}

type Convert = fn(&Row<'_>) -> Result<Record>;

/// The table, paging key, columns and row converter of a plain section.
fn table_of(section: Section) -> (&'static str, &'static str, &'static str, Convert) {
    match section {
        Section::TowerGroups => ("tower_groups", "rowid", TOWER_GROUP_COLUMNS, |r| {
            tower_group_from_row(r).map(Record::TowerGroup)
        }),
        Section::Users => ("users u", "u.rowid", USER_COLUMNS, |r| {
            user_from_row(r).map(Record::User)
        }),
        Section::ApiKeys => ("api_keys", "rowid", "id, name, key_hash, created_at", |r| {
            Ok(Record::ApiKey(gridloop_store::ApiKey {
                id: get(r, 0)?,
                name: get(r, 1)?,
                key_hash: get(r, 2)?,
                created_at: from_ms(get(r, 3)?)?,
            }))
        }),
        Section::CalendarYears => ("calendar_years", "rowid", "year, json", |r| {
            let year: i64 = get(r, 0)?;
            serde_json::from_str(&get::<String>(r, 1)?)
                .map(Record::CalendarYear)
                .map_err(|e| {
                    StoreError::Backend(format!("the stored calendar of {year} is corrupt: {e}"))
                })
        }),
        Section::Settings => ("settings", "rowid", "key, value", |r| {
            Ok(Record::Setting {
                key: get(r, 0)?,
                value: get(r, 1)?,
            })
        }),
        Section::NightVisits => ("night_visits", "rowid", VISIT_COLUMNS, |r| {
            visit_from_row(r).map(Record::NightVisit)
        }),
        Section::Cases => ("case_docs", "id", "id, doc", |r| {
            doc_at(r, 1, get(r, 0)?).map(|c| Record::Case(Box::new(c)))
        }),
        Section::Idempotency => (
            "idempotency",
            "rowid",
            "scope, key, fingerprint, case_id, created_at",
            |r| {
                Ok(Record::Idempotency(IdempotencyRecord {
                    scope: get(r, 0)?,
                    key: get(r, 1)?,
                    fingerprint: get(r, 2)?,
                    case_id: get(r, 3)?,
                    created_at: from_ms(get(r, 4)?)?,
                }))
            },
        ),
        Section::CaseNumbers => ("case_numbers", "rowid", "day, last_seq", |r| {
            Ok(Record::CaseNumber {
                day: day(&get::<String>(r, 0)?)?,
                last_seq: get(r, 1)?,
            })
        }),
        // Records carry each event's previous hash, which the table no longer stores.
        Section::Events => (LINKED_EVENTS, "e.id", LINKED_EVENT_COLUMNS, |r| {
            linked_event_from_row(r)
                .map(Record::Event)
                .map_err(|e| StoreError::Backend(format!("a stored event is corrupt: {e}")))
        }),
        Section::HotlineCalls => ("hotline_calls", "rowid", CALL_COLUMNS, |r| {
            call_from_row(r).map(Record::HotlineCall)
        }),
        Section::Orgs | Section::Attachments | Section::Counters | Section::Gauges => {
            unreachable!("read by their own queries")
        }
    }
}

fn after_int(after: Option<&serde_json::Value>) -> Result<i64> {
    match after {
        None => Ok(i64::MIN),
        Some(v) => v.as_i64().ok_or_else(bad_cursor),
    }
}

fn day(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| StoreError::Backend(format!("a stored day {text:?} is not a date")))
}

pub(crate) fn import(conn: &Connection, dir: &Path, records: Vec<Record>) -> Result<()> {
    let mut last_event: Option<(i64, String)> = None;
    let mut days = RollupDelta::default();
    for record in records {
        match record {
            Record::Org(o) => put_orgs(conn, &[o])?,
            Record::TowerGroup(g) => put_tower_groups(conn, &[g])?,
            Record::User(u) => exec(
                conn,
                "INSERT INTO users (id, username, display_name, role, org, org_path,
                     password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    u.id,
                    u.username,
                    u.display_name,
                    u.role.as_str(),
                    u.org,
                    u.org_path,
                    u.password_hash,
                    ms(u.created_at)
                ],
            )?,
            Record::ApiKey(k) => exec(
                conn,
                "INSERT INTO api_keys (id, name, key_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![k.id, k.name, k.key_hash, ms(k.created_at)],
            )?,
            Record::CalendarYear(y) => put_calendar_year(conn, &y)?,
            Record::Setting { key, value } => put_setting(conn, &key, &value)?,
            Record::Attachment { meta, bytes } => {
                if attachments::content_id(&bytes) != meta.id {
                    return Err(StoreError::Backend(format!(
                        "attachment {} does not match its content",
                        meta.id
                    )));
                }
                attachments::write_file(dir, &meta.id, &bytes)?;
                attachments::insert_row(conn, &meta)?;
            }
            Record::NightVisit(v) => exec(
                conn,
                "INSERT INTO night_visits (id, org, org_path, group_name, leader, visited_at,
                     place, households, people_met, notes, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    v.id,
                    v.org,
                    v.org_path,
                    v.group_name,
                    v.leader,
                    ms(v.visited_at),
                    v.place,
                    v.households,
                    v.people_met,
                    v.notes,
                    v.created_by,
                    ms(v.created_at)
                ],
            )?,
            Record::Case(case) => insert_case(conn, &case)?,
            Record::Idempotency(i) => exec(
                conn,
                "INSERT INTO idempotency (scope, key, fingerprint, case_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![i.scope, i.key, i.fingerprint, i.case_id, ms(i.created_at)],
            )?,
            Record::CaseNumber { day, last_seq } => exec(
                conn,
                "INSERT INTO case_numbers (day, last_seq) VALUES (?1, ?2)
                 ON CONFLICT (day) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
                params![day.to_string(), last_seq],
            )?,
            Record::Event(e) => {
                // The link is not stored (it is the previous event's hash), so it is checked
                // here instead: a record whose link disagrees with the event before it would
                // otherwise lose the disagreement in the copy. Records come in id order.
                let prev = match &last_event {
                    Some((id, hash)) if *id + 1 == e.id => Some(hash.clone()),
                    _ => match prev_hash(conn, e.id)? {
                        // Its predecessor is not here (a gap): the ids show it.
                        missing if missing.is_empty() => None,
                        found => Some(found),
                    },
                };
                if prev.is_some_and(|p| p != e.prev_hash) {
                    return Err(StoreError::Backend(format!(
                        "event {}'s link does not match the hash of event {}: the source's \
                         chain is broken there (see its `audit verify`)",
                        e.id,
                        e.id - 1
                    )));
                }
                let details = serde_json::to_string(&e.details)
                    .map_err(|err| StoreError::Backend(format!("event details: {err}")))?;
                // Stored as the writer stores them: compressed, hashes as 32 bytes.
                let details = codec::compress(Kind::Event, details.as_bytes())?;
                exec(
                    conn,
                    "INSERT INTO events (id, case_id, seq, action, actor, at, details, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        e.id,
                        e.case_id,
                        e.seq,
                        e.action,
                        e.actor,
                        ms(e.at),
                        details,
                        hash_blob(&e.hash)?
                    ],
                )?;
                if last_event.as_ref().is_none_or(|(id, _)| e.id > *id) {
                    last_event = Some((e.id, e.hash));
                }
            }
            Record::HotlineCall(c) => exec(
                conn,
                "INSERT INTO hotline_calls (id, phone, operator, org_path, at, summary, case_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    c.id,
                    c.phone,
                    c.operator,
                    c.org_path,
                    ms(c.at),
                    c.summary,
                    c.case_id
                ],
            )?,
            // Through the rollups' own writer, which keeps the months beside the days.
            Record::Counters { org, day, counters } => days.add_day(&org, day, &counters),
            // Only near a root: deeper orgs' gauges are counted from the cases copied.
            Record::Gauge { org, key, n } => {
                if crate::rollups::keeps_gauges(conn, &org)? {
                    exec(
                        conn,
                        "INSERT INTO rollup_gauges (org, key, n) VALUES (?1, ?2, ?3)
                         ON CONFLICT (org, key) DO UPDATE SET n = n + excluded.n",
                        params![org, key, n],
                    )?;
                }
            }
        }
    }
    days.write(conn)?;
    if let Some((id, hash)) = last_event {
        exec(
            conn,
            "UPDATE chain_head SET id = ?1, hash = ?2 WHERE singleton = 1 AND id < ?1",
            params![id, hash],
        )?;
    }
    Ok(())
}

fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<()> {
    match conn.prepare_cached(sql).db()?.execute(params) {
        Ok(_) => Ok(()),
        Err(e) if crate::sql::is_unique_violation(&e) => Err(StoreError::Duplicate(format!(
            "the target store already holds this record ({e}); copy into an empty store"
        ))),
        Err(e) => Err(StoreError::Backend(e.to_string())),
    }
}
