//! Export and import of a store's whole content, for `gridloop copy`.
//!
//! The export walks the tables in the order [`Record`] documents, each by its key (keyset
//! pages, so a page costs the same wherever it is). The cursor is `[section, [key…]]` as
//! JSON: the table being read and the key of its last row exported, as text.

use std::collections::HashMap;

use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use gridloop_domain::DomainError;
use gridloop_domain::measures::Counters;
use gridloop_store::{IdempotencyRecord, Page, Record, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::cases::{
    ChainHead, EVENT_COLUMNS, Pipeline, RollupDelta, bump_number, event_from_row, insert_case,
    parse_doc,
};
use crate::db::{Error, R, backend, from_ms, get, int, ms, region_of};
use crate::directory::{
    self, CALL_COLUMNS, GROUP_COLUMNS, ORG_COLUMNS, USER_COLUMNS, VISIT_COLUMNS, api_key_from_row,
    attachment_from_row, calendar_from_row, call_from_row, group_from_row, org_from_row,
    user_from_row, visit_from_row,
};

/// The most records in one page.
const MAX_PAGE: u32 = 10_000;

/// One table of the export: where its rows come from, its key (column and SQL type) and how
/// a row becomes a record.
struct Section {
    from: &'static str,
    columns: &'static str,
    keys: &'static [(&'static str, &'static str)],
    record: fn(&Row) -> R<Record>,
}

const SECTIONS: &[Section] = &[
    Section {
        // Paths sort parents first.
        from: "orgs",
        columns: ORG_COLUMNS,
        keys: &[("path", "text")],
        record: |r| Ok(Record::Org(org_from_row(r)?)),
    },
    Section {
        from: "tower_groups",
        columns: GROUP_COLUMNS,
        keys: &[("code", "text")],
        record: |r| Ok(Record::TowerGroup(group_from_row(r)?)),
    },
    Section {
        from: "users u",
        columns: USER_COLUMNS,
        keys: &[("u.id", "bigint")],
        record: |r| Ok(Record::User(user_from_row(r)?)),
    },
    Section {
        from: "api_keys",
        columns: "id, name, key_hash, created_at",
        keys: &[("id", "bigint")],
        record: |r| Ok(Record::ApiKey(api_key_from_row(r)?)),
    },
    Section {
        from: "calendar_years",
        columns: "year, json",
        keys: &[("year", "integer")],
        record: |r| Ok(Record::CalendarYear(calendar_from_row(r)?)),
    },
    Section {
        from: "settings",
        columns: "key, value",
        keys: &[("key", "text")],
        record: |r| {
            Ok(Record::Setting {
                key: get(r, 0)?,
                value: get(r, 1)?,
            })
        },
    },
    Section {
        from: "attachments",
        columns: "id, content_type, size, uploaded_by, created_at, bytes",
        keys: &[("id", "text")],
        record: |r| {
            Ok(Record::Attachment {
                meta: attachment_from_row(r)?,
                bytes: get(r, 5)?,
            })
        },
    },
    Section {
        from: "night_visits",
        columns: VISIT_COLUMNS,
        keys: &[("id", "bigint")],
        record: |r| Ok(Record::NightVisit(visit_from_row(r)?)),
    },
    Section {
        from: "cases",
        columns: "id, doc",
        keys: &[("id", "bigint")],
        record: |r| {
            Ok(Record::Case(Box::new(parse_doc(
                get(r, 0)?,
                &get::<String>(r, 1)?,
            )?)))
        },
    },
    Section {
        from: "idempotency",
        columns: "scope, key, fingerprint, case_id, created_at",
        keys: &[("scope", "text"), ("key", "text")],
        record: |r| {
            Ok(Record::Idempotency(IdempotencyRecord {
                scope: get(r, 0)?,
                key: get(r, 1)?,
                fingerprint: get(r, 2)?,
                case_id: get(r, 3)?,
                created_at: from_ms(get(r, 4)?)?,
            }))
        },
    },
    Section {
        from: "case_numbers",
        columns: "day, last_seq",
        keys: &[("day", "text")],
        record: |r| {
            let day: String = get(r, 0)?;
            Ok(Record::CaseNumber {
                day: day
                    .parse()
                    .map_err(|e| backend(format!("corrupt case number day {day:?}: {e}")))?,
                last_seq: get(r, 1)?,
            })
        },
    },
    Section {
        from: "events",
        columns: EVENT_COLUMNS,
        keys: &[("id", "bigint")],
        record: |r| {
            Ok(Record::Event(
                event_from_row(r).map_err(|e| backend(format!("corrupt event: {e}")))?,
            ))
        },
    },
    Section {
        from: "hotline_calls",
        columns: CALL_COLUMNS,
        keys: &[("id", "bigint")],
        record: |r| Ok(Record::HotlineCall(call_from_row(r)?)),
    },
    Section {
        from: "rollup_counters",
        columns: "org, day, received, closed, closed_on_time, rework, rated, satisfied",
        keys: &[("org", "text"), ("day", "text")],
        record: |r| {
            let day: String = get(r, 1)?;
            Ok(Record::Counters {
                org: get(r, 0)?,
                day: day
                    .parse()
                    .map_err(|e| backend(format!("corrupt rollup day {day:?}: {e}")))?,
                counters: Counters {
                    received: get(r, 2)?,
                    closed: get(r, 3)?,
                    closed_on_time: get(r, 4)?,
                    rework: get(r, 5)?,
                    rated: get(r, 6)?,
                    satisfied: get(r, 7)?,
                },
            })
        },
    },
    Section {
        from: "rollup_gauges",
        columns: "org, key, n",
        keys: &[("org", "text"), ("key", "text")],
        record: |r| {
            Ok(Record::Gauge {
                org: get(r, 0)?,
                key: get(r, 1)?,
                n: get(r, 2)?,
            })
        },
    },
];

fn bad_cursor() -> Error {
    StoreError::Domain(DomainError::invalid(
        "cursor",
        "not a cursor of this export; start again from the beginning",
    ))
    .into()
}

fn decode(cursor: Option<&str>) -> R<(usize, Option<Vec<String>>)> {
    let Some(c) = cursor else {
        return Ok((0, None));
    };
    let (section, key): (usize, Vec<String>) = serde_json::from_str(c).map_err(|_| bad_cursor())?;
    if section > SECTIONS.len()
        || (section < SECTIONS.len() && key.len() != SECTIONS[section].keys.len())
    {
        return Err(bad_cursor());
    }
    Ok((section, Some(key)))
}

fn encode(section: usize, key: &[String]) -> String {
    serde_json::to_string(&(section, key)).unwrap_or_default()
}

pub(crate) async fn export(
    c: &tokio_postgres::Client,
    cursor: Option<&str>,
    limit: u32,
) -> R<Page<Record>> {
    let limit = limit.clamp(1, MAX_PAGE) as usize;
    let (mut section, mut after) = decode(cursor)?;
    let mut items = Vec::new();
    while section < SECTIONS.len() {
        let s = &SECTIONS[section];
        let n = s.keys.len();
        // Aliased: an output column named like a key column would make ORDER BY ambiguous.
        let key_text: Vec<String> = s
            .keys
            .iter()
            .enumerate()
            .map(|(i, (k, _))| format!("{k}::text AS export_key_{i}"))
            .collect();
        let key_cols: Vec<&str> = s.keys.iter().map(|(k, _)| *k).collect();
        let mut sql = format!(
            "SELECT {}, {} FROM {}",
            s.columns,
            key_text.join(", "),
            s.from
        );
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        if let Some(key) = &after {
            let holders: Vec<String> = s
                .keys
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| format!("${}::text::{ty}", i + 1))
                .collect();
            sql.push_str(&format!(
                " WHERE ({}) > ({})",
                key_cols.join(", "),
                holders.join(", ")
            ));
            for k in key {
                params.push(Box::new(k.clone()));
            }
        }
        let want = limit - items.len();
        params.push(Box::new(want as i64));
        sql.push_str(&format!(
            " ORDER BY {} LIMIT ${}",
            key_cols.join(", "),
            params.len()
        ));
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = c.query(&sql, &refs).await?;
        let mut last = None;
        for r in &rows {
            items.push((s.record)(r)?);
            let width = r.len();
            let key: Vec<String> = (width - n..width)
                .map(|i| get::<String>(r, i))
                .collect::<R<_>>()?;
            last = Some(key);
        }
        if rows.len() == want {
            // The page is full; the next one goes on after this row (an empty remainder of
            // this table is found out then).
            let key = last.unwrap_or_default();
            return Ok(Page {
                items,
                next_cursor: Some(encode(section, &key)),
            });
        }
        section += 1;
        after = None;
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}

/// Writes the records as they are, in one transaction (the caller's). The chain head is
/// locked first, like every other writer of events does.
pub(crate) async fn import(tx: &Transaction<'_>, records: &[Record]) -> R<()> {
    let _head = ChainHead::lock(tx).await?;
    let mut events = false;
    let mut days: Vec<(&String, NaiveDate, &Counters)> = Vec::new();
    for rec in records {
        match rec {
            Record::Org(o) => directory::put_orgs(tx, std::slice::from_ref(o)).await?,
            Record::TowerGroup(g) => {
                directory::put_tower_groups(tx, std::slice::from_ref(g)).await?
            }
            Record::User(u) => {
                tx.execute(
                    "INSERT INTO users (id, username, display_name, role, org, org_path,
                         password_hash, created_at, region)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &u.id,
                        &u.username,
                        &u.display_name,
                        &u.role.as_str(),
                        &u.org,
                        &u.org_path,
                        &u.password_hash,
                        &ms(u.created_at),
                        &region_of(&u.org_path),
                    ],
                )
                .await
                .map_err(|e| duplicate(e, || format!("the username {} is taken", u.username)))?;
            }
            Record::ApiKey(k) => {
                tx.execute(
                    "INSERT INTO api_keys (id, name, key_hash, created_at) VALUES ($1, $2, $3, $4)",
                    &[&k.id, &k.name, &k.key_hash, &ms(k.created_at)],
                )
                .await
                .map_err(|e| duplicate(e, || format!("an API key named {} exists", k.name)))?;
            }
            Record::CalendarYear(y) => directory::put_calendar_year(&**tx, y).await?,
            Record::Setting { key, value } => directory::put_setting(&**tx, key, value).await?,
            Record::Attachment { meta, bytes } => {
                directory::put_attachment(&**tx, meta, bytes).await?;
            }
            Record::NightVisit(v) => {
                tx.execute(
                    "INSERT INTO night_visits (id, org, org_path, group_name, leader, visited_at,
                         place, households, people_met, notes, created_by, created_at, region)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    &[
                        &v.id,
                        &v.org,
                        &v.org_path,
                        &v.group_name,
                        &v.leader,
                        &ms(v.visited_at),
                        &v.place,
                        &int(v.households),
                        &int(v.people_met),
                        &v.notes,
                        &v.created_by,
                        &ms(v.created_at),
                        &region_of(&v.org_path),
                    ],
                )
                .await
                .map_err(|e| duplicate(e, || format!("night visit {} exists", v.id)))?;
            }
            Record::Case(case) => insert_case(tx, case).await?,
            Record::Idempotency(k) => {
                tx.execute(
                    "INSERT INTO idempotency (scope, key, fingerprint, case_id, created_at, region)
                     VALUES ($1, $2, $3, $4, $5,
                         coalesce((SELECT region FROM cases WHERE id = $4), ''))",
                    &[
                        &k.scope,
                        &k.key,
                        &k.fingerprint,
                        &k.case_id,
                        &ms(k.created_at),
                    ],
                )
                .await
                .map_err(|e| duplicate(e, || format!("idempotency key {} exists", k.key)))?;
            }
            Record::CaseNumber { day, last_seq } => {
                bump_number(tx, &day.to_string(), *last_seq).await?
            }
            Record::Event(e) => {
                let details = serde_json::to_string(&e.details)
                    .map_err(|err| backend(format!("cannot encode event details: {err}")))?;
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO events
                             (id, case_id, seq, action, actor, at, details, prev_hash, hash, region)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                             coalesce((SELECT region FROM cases WHERE id = $2), ''))",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &e.id,
                        &e.case_id,
                        &e.seq,
                        &e.action,
                        &e.actor,
                        &ms(e.at),
                        &details,
                        &e.prev_hash,
                        &e.hash,
                    ],
                )
                .await
                .map_err(|err| duplicate(err, || format!("event {} exists", e.id)))?;
                events = true;
            }
            Record::HotlineCall(k) => {
                tx.execute(
                    "INSERT INTO hotline_calls (id, phone, operator, org_path, at, summary,
                         case_id, region)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &k.id,
                        &k.phone,
                        &k.operator,
                        &k.org_path,
                        &ms(k.at),
                        &k.summary,
                        &k.case_id,
                        &region_of(&k.org_path),
                    ],
                )
                .await
                .map_err(|e| duplicate(e, || format!("hotline call {} exists", k.id)))?;
            }
            // Through the rollups' own writer, which keeps the months beside the days.
            Record::Counters { org, day, counters } => days.push((org, *day, counters)),
            Record::Gauge { org, key, n } => {
                tx.execute(
                    "INSERT INTO rollup_gauges (org, key, n, region)
                     VALUES ($1, $2, $3, coalesce((SELECT region FROM orgs WHERE code = $1), ''))
                     ON CONFLICT (org, key) DO UPDATE SET n = excluded.n",
                    &[org, key, n],
                )
                .await?;
            }
        }
    }
    if !days.is_empty() {
        // Each row with the region of its org, as every other writer gives it.
        let codes: Vec<&String> = days.iter().map(|(org, _, _)| *org).collect();
        let regions: HashMap<String, String> = tx
            .query(
                "SELECT code, region FROM orgs WHERE code = ANY($1)",
                &[&codes],
            )
            .await?
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
            .collect::<R<_>>()?;
        let mut rollups = RollupDelta::default();
        for (org, day, c) in days {
            let region = regions.get(org.as_str()).map_or("", String::as_str);
            rollups.add_day(org, region, day, c);
        }
        let rollups = rollups.prepare(tx).await?;
        let mut p = Pipeline::default();
        rollups.push(tx, &mut p);
        p.run().await?;
    }
    if events {
        // The head is the last event of the chain as now stored.
        tx.execute(
            "UPDATE chain_head SET (id, hash) =
                 (SELECT id, hash FROM events ORDER BY id DESC LIMIT 1)
             WHERE singleton = 1",
            &[],
        )
        .await?;
    }
    // New rows continue after the largest imported ids.
    for table in ["users", "api_keys", "night_visits", "hotline_calls"] {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                     coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )
        .await?;
    }
    Ok(())
}

/// A unique violation as `Duplicate`, anything else as it is.
fn duplicate(e: tokio_postgres::Error, what: impl FnOnce() -> String) -> Error {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        StoreError::Duplicate(what()).into()
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = encode(9, &["public".into(), "k|1".into()]);
        assert_eq!(
            decode(Some(&c)).unwrap(),
            (9, Some(vec!["public".to_string(), "k|1".to_string()]))
        );
        assert!(decode(Some("nonsense")).is_err());
        assert!(decode(Some("[0, [\"a\", \"b\"]]")).is_err());
        assert!(decode(Some("[99, []]")).is_err());
    }
}
