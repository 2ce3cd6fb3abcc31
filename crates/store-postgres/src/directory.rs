//! Everything beside the cases: orgs, tower groups, users, sessions, API keys, calendars,
//! settings, attachments, night visits, hotline calls and the measures' reads. Small
//! tables, plain statements; each write is one short transaction (or one statement).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use gridloop_domain::DomainError;
use gridloop_domain::calendar::CalendarYear;
use gridloop_domain::measures::Counters;
use gridloop_domain::org::{Level, Org, subtree_end};
use gridloop_domain::role::Role;
use gridloop_store::{
    ApiKey, Attachment, HotlineCall, NewUser, NightVisit, Session, Settings, StoreError,
    TowerGroup, User,
};
use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;
use tokio_postgres::{GenericClient, Row};

use crate::db::{Error, R, backend, from_ms, get, int, ms, region_of, unsigned};
use crate::list::MAX_LIMIT;

// --- orgs -------------------------------------------------------------------------------

pub(crate) const ORG_COLUMNS: &str = "code, name, level, parent, path, boundary";

pub(crate) fn org_from_row(r: &Row) -> R<Org> {
    let level: String = get(r, 2)?;
    let boundary: Option<String> = get(r, 5)?;
    Ok(Org {
        code: get(r, 0)?,
        name: get(r, 1)?,
        level: Level::parse(&level)
            .ok_or_else(|| backend(format!("unknown org level {level:?}")))?,
        parent: get(r, 3)?,
        path: get(r, 4)?,
        boundary: boundary
            .map(|b| serde_json::from_str(&b))
            .transpose()
            .map_err(|e| backend(format!("corrupt org boundary: {e}")))?,
    })
}

pub(crate) async fn put_orgs(tx: &Transaction<'_>, orgs: &[Org]) -> R<()> {
    let upsert = tx
        .prepare_cached(
            "INSERT INTO orgs (code, name, level, parent, path, boundary, region)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, level = excluded.level,
                 parent = excluded.parent, path = excluded.path, boundary = excluded.boundary,
                 region = excluded.region",
        )
        .await?;
    for o in orgs {
        let boundary = o
            .boundary
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| backend(format!("cannot encode a boundary: {e}")))?;
        let done = tx
            .execute(
                &upsert,
                &[
                    &o.code,
                    &o.name,
                    &o.level.as_str(),
                    &o.parent,
                    &o.path,
                    &boundary,
                    &region_of(&o.path),
                ],
            )
            .await;
        match done {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::Duplicate(format!(
                    "another org already has the path {}",
                    o.path
                ))
                .into());
            }
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                return Err(StoreError::Domain(DomainError::invalid(
                    "parent",
                    format!(
                        "unknown parent org {}",
                        o.parent.as_deref().unwrap_or_default()
                    ),
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub(crate) async fn org(c: &impl GenericClient, code: &str) -> R<Option<Org>> {
    c.query_opt(
        &format!("SELECT {ORG_COLUMNS} FROM orgs WHERE code = $1"),
        &[&code],
    )
    .await?
    .map(|r| org_from_row(&r))
    .transpose()
}

pub(crate) async fn orgs_in_subtree(
    c: &impl GenericClient,
    path: &str,
    with_boundary: bool,
) -> R<Vec<Org>> {
    // Boundaries can be large; leave them in the table unless asked for.
    let rows = c
        .query(
            "SELECT code, name, level, parent, path, CASE WHEN $3 THEN boundary END
             FROM orgs WHERE path >= $1 AND path < $2 ORDER BY path",
            &[&path, &subtree_end(path), &with_boundary],
        )
        .await?;
    rows.iter().map(org_from_row).collect()
}

pub(crate) async fn child_orgs(c: &impl GenericClient, code: &str) -> R<Vec<Org>> {
    let rows = c
        .query(
            // Without boundaries: a province's streets can carry megabytes of them.
            "SELECT code, name, level, parent, path, NULL::text FROM orgs
             WHERE parent = $1 ORDER BY code",
            &[&code],
        )
        .await?;
    rows.iter().map(org_from_row).collect()
}

pub(crate) async fn first_org_of_level(c: &impl GenericClient, level: Level) -> R<Option<Org>> {
    c.query_opt(
        &format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE level = $1 ORDER BY length(path), code LIMIT 1"
        ),
        &[&level.as_str()],
    )
    .await?
    .map(|r| org_from_row(&r))
    .transpose()
}

pub(crate) const GROUP_COLUMNS: &str =
    "code, name, tier, parent, org, org_path, commander_name, commander_phone, members";

pub(crate) fn group_from_row(r: &Row) -> R<TowerGroup> {
    Ok(TowerGroup {
        code: get(r, 0)?,
        name: get(r, 1)?,
        tier: unsigned(get(r, 2)?, "tier")?,
        parent: get(r, 3)?,
        org: get(r, 4)?,
        org_path: get(r, 5)?,
        commander_name: get(r, 6)?,
        commander_phone: get(r, 7)?,
        members: unsigned(get(r, 8)?, "member count")?,
    })
}

pub(crate) async fn put_tower_groups(tx: &Transaction<'_>, groups: &[TowerGroup]) -> R<()> {
    let upsert = tx
        .prepare_cached(
            "INSERT INTO tower_groups (code, name, tier, parent, org, org_path, commander_name,
                 commander_phone, members, region)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, tier = excluded.tier,
                 parent = excluded.parent, org = excluded.org, org_path = excluded.org_path,
                 commander_name = excluded.commander_name,
                 commander_phone = excluded.commander_phone, members = excluded.members,
                 region = excluded.region",
        )
        .await?;
    for g in groups {
        let done = tx
            .execute(
                &upsert,
                &[
                    &g.code,
                    &g.name,
                    &int(g.tier),
                    &g.parent,
                    &g.org,
                    &g.org_path,
                    &g.commander_name,
                    &g.commander_phone,
                    &int(g.members),
                    &region_of(&g.org_path),
                ],
            )
            .await;
        if let Err(e) = done {
            return Err(if e.code() == Some(&SqlState::CHECK_VIOLATION) {
                StoreError::Domain(DomainError::invalid(
                    "tier",
                    format!("tower group {} must be of tier 1, 2 or 3", g.code),
                ))
                .into()
            } else {
                e.into()
            });
        }
    }
    Ok(())
}

pub(crate) async fn tower_groups(c: &impl GenericClient, path: &str) -> R<Vec<TowerGroup>> {
    let rows = c
        .query(
            &format!(
                "SELECT {GROUP_COLUMNS} FROM tower_groups
                 WHERE org_path >= $1 AND org_path < $2 ORDER BY org_path, code"
            ),
            &[&path, &subtree_end(path)],
        )
        .await?;
    rows.iter().map(group_from_row).collect()
}

// --- people and keys --------------------------------------------------------------------

pub(crate) const USER_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.role, u.org, u.org_path, u.password_hash, u.created_at";

pub(crate) fn user_from_row(r: &Row) -> R<User> {
    let role: String = get(r, 3)?;
    Ok(User {
        id: get(r, 0)?,
        username: get(r, 1)?,
        display_name: get(r, 2)?,
        role: Role::parse(&role).ok_or_else(|| backend(format!("unknown role {role:?}")))?,
        org: get(r, 4)?,
        org_path: get(r, 5)?,
        password_hash: get(r, 6)?,
        created_at: from_ms(get(r, 7)?)?,
    })
}

fn taken(username: &str) -> Error {
    StoreError::Duplicate(format!("the username {username} is taken")).into()
}

pub(crate) async fn create_user(tx: &Transaction<'_>, u: NewUser) -> R<User> {
    let org_path: String = match tx
        .query_opt("SELECT path FROM orgs WHERE code = $1", &[&u.org])
        .await?
    {
        Some(r) => get(&r, 0)?,
        None => return Err(StoreError::NotFound.into()),
    };
    // Checked first so that a refused name does not use up an id (as in SQLite); the unique
    // constraint still decides a race.
    if tx
        .query_opt("SELECT 1 FROM users WHERE username = $1", &[&u.username])
        .await?
        .is_some()
    {
        return Err(taken(&u.username));
    }
    let inserted = tx
        .query_one(
            "INSERT INTO users (username, display_name, role, org, org_path, password_hash,
                 created_at, region)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &u.username,
                &u.display_name,
                &u.role.as_str(),
                &u.org,
                &org_path,
                &u.password_hash,
                &ms(u.created_at),
                &region_of(&org_path),
            ],
        )
        .await;
    let id: i64 = match inserted {
        Ok(r) => get(&r, 0)?,
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Err(taken(&u.username)),
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            return Err(StoreError::NotFound.into());
        }
        Err(e) => return Err(e.into()),
    };
    Ok(User {
        id,
        username: u.username,
        display_name: u.display_name,
        role: u.role,
        org: u.org,
        org_path,
        password_hash: u.password_hash,
        created_at: u.created_at,
    })
}

pub(crate) async fn user_by_username(c: &impl GenericClient, username: &str) -> R<Option<User>> {
    c.query_opt(
        &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1"),
        &[&username],
    )
    .await?
    .map(|r| user_from_row(&r))
    .transpose()
}

pub(crate) async fn users_in_subtree(c: &impl GenericClient, path: &str) -> R<Vec<User>> {
    let rows = c
        .query(
            &format!(
                "SELECT {USER_COLUMNS} FROM users u
                 WHERE u.org_path >= $1 AND u.org_path < $2 ORDER BY u.org_path, u.username"
            ),
            &[&path, &subtree_end(path)],
        )
        .await?;
    rows.iter().map(user_from_row).collect()
}

pub(crate) async fn create_session(
    tx: &Transaction<'_>,
    token_hash: &str,
    user_id: i64,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> R<()> {
    // Logins are rare next to everything else; they clear out the expired sessions so the
    // table does not grow without bound (a range on the expiry index).
    tx.execute(
        "DELETE FROM sessions WHERE expires_at <= $1",
        &[&ms(created_at)],
    )
    .await?;
    let inserted = tx
        .execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, region)
             SELECT $1, $2, $3, $4, coalesce((SELECT region FROM users WHERE id = $2), '')",
            &[&token_hash, &user_id, &ms(created_at), &ms(expires_at)],
        )
        .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(StoreError::NotFound.into())
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(StoreError::Duplicate("the session token exists".into()).into())
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn session(
    c: &impl GenericClient,
    token_hash: &str,
    now: DateTime<Utc>,
) -> R<Option<Session>> {
    c.query_opt(
        &format!(
            "SELECT {USER_COLUMNS}, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2"
        ),
        &[&token_hash, &ms(now)],
    )
    .await?
    .map(|r| {
        Ok(Session {
            user: user_from_row(&r)?,
            expires_at: from_ms(get(&r, 8)?)?,
        })
    })
    .transpose()
}

pub(crate) async fn delete_session(c: &impl GenericClient, token_hash: &str) -> R<()> {
    c.execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])
        .await?;
    Ok(())
}

pub(crate) async fn create_api_key(
    tx: &Transaction<'_>,
    name: &str,
    key_hash: &str,
    created_at: DateTime<Utc>,
) -> R<ApiKey> {
    let dup = || StoreError::Duplicate(format!("an API key named {name} exists"));
    if tx
        .query_opt("SELECT 1 FROM api_keys WHERE name = $1", &[&name])
        .await?
        .is_some()
    {
        return Err(dup().into());
    }
    let inserted = tx
        .query_one(
            "INSERT INTO api_keys (name, key_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
            &[&name, &key_hash, &ms(created_at)],
        )
        .await;
    match inserted {
        Ok(r) => Ok(ApiKey {
            id: get(&r, 0)?,
            name: name.to_string(),
            key_hash: key_hash.to_string(),
            created_at,
        }),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(dup().into()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn api_key_from_row(r: &Row) -> R<ApiKey> {
    Ok(ApiKey {
        id: get(r, 0)?,
        name: get(r, 1)?,
        key_hash: get(r, 2)?,
        created_at: from_ms(get(r, 3)?)?,
    })
}

pub(crate) async fn api_key_by_hash(c: &impl GenericClient, key_hash: &str) -> R<Option<ApiKey>> {
    c.query_opt(
        "SELECT id, name, key_hash, created_at FROM api_keys WHERE key_hash = $1",
        &[&key_hash],
    )
    .await?
    .map(|r| api_key_from_row(&r))
    .transpose()
}

// --- configuration ----------------------------------------------------------------------

pub(crate) fn calendar_from_row(r: &Row) -> R<CalendarYear> {
    let year: i32 = get(r, 0)?;
    serde_json::from_str(&get::<String>(r, 1)?)
        .map_err(|e| backend(format!("the stored calendar of {year} is corrupt: {e}")))
}

pub(crate) async fn calendar_years(c: &impl GenericClient) -> R<Vec<CalendarYear>> {
    let rows = c
        .query("SELECT year, json FROM calendar_years ORDER BY year", &[])
        .await?;
    rows.iter().map(calendar_from_row).collect()
}

pub(crate) async fn put_calendar_year(c: &impl GenericClient, year: &CalendarYear) -> R<()> {
    let json = serde_json::to_string(year)
        .map_err(|e| backend(format!("cannot encode a calendar: {e}")))?;
    c.execute(
        "INSERT INTO calendar_years (year, json) VALUES ($1, $2)
         ON CONFLICT (year) DO UPDATE SET json = excluded.json",
        &[&year.year, &json],
    )
    .await?;
    Ok(())
}

pub(crate) async fn settings(c: &impl GenericClient) -> R<Settings> {
    let rows = c.query("SELECT key, value FROM settings", &[]).await?;
    rows.iter()
        .map(|r| Ok((get::<String>(r, 0)?, get::<String>(r, 1)?)))
        .collect()
}

pub(crate) async fn put_setting(c: &impl GenericClient, key: &str, value: &str) -> R<()> {
    c.execute(
        "INSERT INTO settings (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}

// --- attachments ------------------------------------------------------------------------

/// The hex SHA-256 of `bytes`: the attachment's id.
pub(crate) fn content_id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Only exactly what [`content_id`] produces names an attachment.
fn is_valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

const ATTACHMENT_COLUMNS: &str = "id, content_type, size, uploaded_by, created_at";

pub(crate) fn attachment_from_row(r: &Row) -> R<Attachment> {
    Ok(Attachment {
        id: get(r, 0)?,
        content_type: get(r, 1)?,
        size: unsigned(get(r, 2)?, "attachment size")?,
        uploaded_by: get(r, 3)?,
        created_at: from_ms(get(r, 4)?)?,
    })
}

/// Records the attachment with its bytes (the first record of a content wins) and returns
/// the stored record.
pub(crate) async fn put_attachment(
    c: &impl GenericClient,
    meta: &Attachment,
    bytes: &[u8],
) -> R<Attachment> {
    let size = i64::try_from(meta.size).map_err(|_| backend("the attachment is too large"))?;
    c.execute(
        "INSERT INTO attachments (id, content_type, size, uploaded_by, created_at, bytes)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        &[
            &meta.id,
            &meta.content_type,
            &size,
            &meta.uploaded_by,
            &ms(meta.created_at),
            &bytes,
        ],
    )
    .await?;
    let row = c
        .query_opt(
            &format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE id = $1"),
            &[&meta.id],
        )
        .await?
        .ok_or_else(|| backend("the attachment row vanished"))?;
    attachment_from_row(&row)
}

pub(crate) async fn attachment(
    c: &impl GenericClient,
    id: &str,
) -> R<Option<(Attachment, Vec<u8>)>> {
    if !is_valid_id(id) {
        return Ok(None);
    }
    let Some(r) = c
        .query_opt(
            &format!("SELECT {ATTACHMENT_COLUMNS}, bytes FROM attachments WHERE id = $1"),
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((attachment_from_row(&r)?, get(&r, 5)?)))
}

// --- channels ---------------------------------------------------------------------------

pub(crate) const VISIT_COLUMNS: &str = "id, org, org_path, group_name, leader, visited_at, \
    place, households, people_met, notes, created_by, created_at";

pub(crate) const CALL_COLUMNS: &str = "id, phone, operator, org_path, at, summary, case_id";

pub(crate) fn visit_from_row(r: &Row) -> R<NightVisit> {
    Ok(NightVisit {
        id: get(r, 0)?,
        org: get(r, 1)?,
        org_path: get(r, 2)?,
        group_name: get(r, 3)?,
        leader: get(r, 4)?,
        visited_at: from_ms(get(r, 5)?)?,
        place: get(r, 6)?,
        households: unsigned(get(r, 7)?, "household count")?,
        people_met: unsigned(get(r, 8)?, "people count")?,
        notes: get(r, 9)?,
        created_by: get(r, 10)?,
        created_at: from_ms(get(r, 11)?)?,
    })
}

pub(crate) fn call_from_row(r: &Row) -> R<HotlineCall> {
    Ok(HotlineCall {
        id: get(r, 0)?,
        phone: get(r, 1)?,
        operator: get(r, 2)?,
        org_path: get(r, 3)?,
        at: from_ms(get(r, 4)?)?,
        summary: get(r, 5)?,
        case_id: get(r, 6)?,
    })
}

/// A page size within 1..=[`MAX_LIMIT`].
fn clamp(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_LIMIT))
}

/// Stores a new visit under a fresh id (whatever `visit.id` says).
pub(crate) async fn create_night_visit(
    c: &impl GenericClient,
    mut visit: NightVisit,
) -> R<NightVisit> {
    let v = &visit;
    let row = c
        .query_one(
            "INSERT INTO night_visits (org, org_path, group_name, leader, visited_at, place,
                 households, people_met, notes, created_by, created_at, region)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             RETURNING id",
            &[
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
        .await?;
    visit.id = get(&row, 0)?;
    Ok(visit)
}

pub(crate) async fn night_visit(c: &impl GenericClient, id: i64) -> R<Option<NightVisit>> {
    c.query_opt(
        &format!("SELECT {VISIT_COLUMNS} FROM night_visits WHERE id = $1"),
        &[&id],
    )
    .await?
    .map(|r| visit_from_row(&r))
    .transpose()
}

/// Visits in the subtree at `path`, newest (highest id) first, before `before_id` if given.
pub(crate) async fn night_visits(
    c: &impl GenericClient,
    path: &str,
    before_id: Option<i64>,
    limit: u32,
) -> R<Vec<NightVisit>> {
    let rows = c
        .query(
            &format!(
                "SELECT {VISIT_COLUMNS} FROM night_visits
                 WHERE org_path >= $1 AND org_path < $2 AND id < $3
                 ORDER BY id DESC LIMIT $4"
            ),
            &[
                &path,
                &subtree_end(path),
                &before_id.unwrap_or(i64::MAX),
                &clamp(limit),
            ],
        )
        .await?;
    rows.iter().map(visit_from_row).collect()
}

/// Logs a call under a fresh id. A call about a case that does not exist is `NotFound`.
pub(crate) async fn record_call(c: &impl GenericClient, mut call: HotlineCall) -> R<HotlineCall> {
    let k = &call;
    // The row is produced only when the case exists, so that a refused call does not use
    // up an id; the foreign key still guards a case deleted meanwhile.
    let row = c
        .query_opt(
            "INSERT INTO hotline_calls (phone, operator, org_path, at, summary, case_id, region)
             SELECT $1, $2, $3, $4, $5, $6, $7
             WHERE $6::bigint IS NULL OR EXISTS (SELECT 1 FROM cases WHERE id = $6)
             RETURNING id",
            &[
                &k.phone,
                &k.operator,
                &k.org_path,
                &ms(k.at),
                &k.summary,
                &k.case_id,
                &region_of(&k.org_path),
            ],
        )
        .await;
    call.id = match row {
        Ok(Some(r)) => get(&r, 0)?,
        Ok(None) => return Err(StoreError::NotFound.into()),
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            return Err(StoreError::NotFound.into());
        }
        Err(e) => return Err(e.into()),
    };
    Ok(call)
}

/// Calls from a number, newest first.
pub(crate) async fn calls_from(
    c: &impl GenericClient,
    phone: &str,
    limit: u32,
) -> R<Vec<HotlineCall>> {
    let rows = c
        .query(
            &format!(
                "SELECT {CALL_COLUMNS} FROM hotline_calls WHERE phone = $1
                 ORDER BY id DESC LIMIT $2"
            ),
            &[&phone, &clamp(limit)],
        )
        .await?;
    rows.iter().map(call_from_row).collect()
}

// --- measures ---------------------------------------------------------------------------

/// Counters summed per org over the days `from..=to`; zero for orgs without any.
pub(crate) async fn counters(
    c: &impl GenericClient,
    orgs: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> R<HashMap<String, Counters>> {
    let mut out: HashMap<String, Counters> = orgs
        .iter()
        .map(|o| (o.clone(), Counters::default()))
        .collect();
    if from > to || orgs.is_empty() {
        return Ok(out);
    }
    // Per org, the running total at or before `to` minus the one before `from`
    // (`rollup_running`, migration 0003): two key lookups each, one statement for all the
    // orgs, whatever the period's length.
    let rows = c
        .query(
            "SELECT o.org, t.received - coalesce(f.received, 0),
                    t.closed - coalesce(f.closed, 0),
                    t.closed_on_time - coalesce(f.closed_on_time, 0),
                    t.rework - coalesce(f.rework, 0), t.rated - coalesce(f.rated, 0),
                    t.satisfied - coalesce(f.satisfied, 0)
             FROM unnest($1::text[]) AS o (org)
             JOIN LATERAL (
                 SELECT * FROM rollup_running r WHERE r.org = o.org AND r.day <= $3
                 ORDER BY r.day DESC LIMIT 1
             ) AS t ON true
             LEFT JOIN LATERAL (
                 SELECT * FROM rollup_running r WHERE r.org = o.org AND r.day < $2
                 ORDER BY r.day DESC LIMIT 1
             ) AS f ON true",
            &[&orgs, &from.to_string(), &to.to_string()],
        )
        .await?;
    for r in &rows {
        out.insert(
            get(r, 0)?,
            Counters {
                received: get(r, 1)?,
                closed: get(r, 2)?,
                closed_on_time: get(r, 3)?,
                rework: get(r, 4)?,
                rated: get(r, 5)?,
                satisfied: get(r, 6)?,
            },
        );
    }
    Ok(out)
}

/// One gauge per org, zero for orgs without it.
pub(crate) async fn gauge(
    c: &impl GenericClient,
    orgs: &[String],
    key: &str,
) -> R<HashMap<String, i64>> {
    // A key lookup per org, as for all the gauges.
    let rows = c
        .query(
            "SELECT o.org, g.n FROM unnest($1::text[]) AS o (org)
             JOIN rollup_gauges AS g ON g.org = o.org AND g.key = $2",
            &[&orgs, &key],
        )
        .await?;
    let mut out: HashMap<String, i64> = orgs.iter().map(|o| (o.clone(), 0)).collect();
    for r in &rows {
        out.insert(get(r, 0)?, get(r, 1)?);
    }
    Ok(out)
}

/// Gauges per org, zero entries left out.
pub(crate) async fn gauges(
    c: &impl GenericClient,
    orgs: &[String],
) -> R<HashMap<String, HashMap<String, i64>>> {
    // A key lookup per org (`= ANY` over a thousand codes is planned as a scan of the
    // whole table, each row compared with the array).
    let rows = c
        .query(
            "SELECT g.org, g.key, g.n FROM unnest($1::text[]) AS o (org)
             JOIN rollup_gauges AS g ON g.org = o.org
             WHERE g.n <> 0",
            &[&orgs],
        )
        .await?;
    let mut out: HashMap<String, HashMap<String, i64>> =
        orgs.iter().map(|o| (o.clone(), HashMap::new())).collect();
    for r in &rows {
        out.entry(get(r, 0)?)
            .or_default()
            .insert(get(r, 1)?, get(r, 2)?);
    }
    Ok(out)
}
