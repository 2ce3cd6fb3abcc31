//! Orgs, tower groups, users, sessions, API keys, calendars and settings: small tables,
//! plain statements. Functions taking `&Connection` for writing run on the writer.

use chrono::{DateTime, Utc};
use gridloop_domain::DomainError;
use gridloop_domain::calendar::CalendarYear;
use gridloop_domain::org::{Level, Org, subtree_end};
use gridloop_domain::role::Role;
use gridloop_store::{ApiKey, NewUser, Result, Session, Settings, StoreError, TowerGroup, User};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::sql::{
    Db, collect, first, from_ms, get, is_foreign_key_violation, is_unique_violation, ms,
};

// --- orgs -------------------------------------------------------------------------------

pub(crate) fn org_from_row(r: &Row<'_>) -> Result<Org> {
    let level: String = get(r, 2)?;
    let boundary: Option<String> = get(r, 5)?;
    Ok(Org {
        code: get(r, 0)?,
        name: get(r, 1)?,
        level: Level::parse(&level)
            .ok_or_else(|| StoreError::Backend(format!("unknown org level {level:?}")))?,
        parent: get(r, 3)?,
        path: get(r, 4)?,
        boundary: boundary
            .map(|b| serde_json::from_str(&b))
            .transpose()
            .map_err(|e| StoreError::Backend(format!("corrupt org boundary: {e}")))?,
    })
}

pub(crate) const ORG_COLUMNS: &str = "code, name, level, parent, path, boundary";

pub(crate) fn put_orgs(conn: &Connection, orgs: &[Org]) -> Result<()> {
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO orgs (code, name, level, parent, path, boundary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, level = excluded.level,
                 parent = excluded.parent, path = excluded.path, boundary = excluded.boundary",
        )
        .db()?;
    let mut path_of = conn
        .prepare_cached("SELECT path FROM orgs WHERE code = ?1")
        .db()?;
    for o in orgs {
        let before: Option<String> = path_of.query_row([&o.code], |r| r.get(0)).optional().db()?;
        let boundary = o
            .boundary
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Backend(format!("cannot encode a boundary: {e}")))?;
        let done = upsert.execute(params![
            o.code,
            o.name,
            o.level.as_str(),
            o.parent,
            o.path,
            boundary
        ]);
        match done {
            Ok(_) => {
                if let Some(before) = before.filter(|b| *b != o.path) {
                    crate::rollups::org_moved(conn, &o.code, &before, &o.path)?;
                }
            }
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Duplicate(format!(
                    "another org already has the path {}",
                    o.path
                )));
            }
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(StoreError::Domain(DomainError::invalid(
                    "parent",
                    format!(
                        "unknown parent org {}",
                        o.parent.as_deref().unwrap_or_default()
                    ),
                )));
            }
            Err(e) => return Err(StoreError::Backend(e.to_string())),
        }
    }
    Ok(())
}

pub(crate) fn org(conn: &Connection, code: &str) -> Result<Option<Org>> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE code = ?1"))
        .db()?;
    first(stmt.query([code]).db()?, org_from_row)
}

pub(crate) fn orgs_in_subtree(
    conn: &Connection,
    path: &str,
    with_boundary: bool,
) -> Result<Vec<Org>> {
    // Boundaries can be large; leave them in the table unless asked for.
    let mut stmt = conn
        .prepare_cached(
            "SELECT code, name, level, parent, path, CASE WHEN ?3 THEN boundary END
             FROM orgs WHERE path >= ?1 AND path < ?2 ORDER BY path",
        )
        .db()?;
    collect(
        stmt.query(params![path, subtree_end(path), with_boundary])
            .db()?,
        org_from_row,
    )
}

pub(crate) fn child_orgs(conn: &Connection, code: &str) -> Result<Vec<Org>> {
    let mut stmt = conn
        // Without boundaries: a province's streets can carry megabytes of them.
        .prepare_cached(
            "SELECT code, name, level, parent, path, NULL FROM orgs WHERE parent = ?1 ORDER BY code",
        )
        .db()?;
    collect(stmt.query([code]).db()?, org_from_row)
}

pub(crate) fn first_org_of_level(conn: &Connection, level: Level) -> Result<Option<Org>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE level = ?1 ORDER BY length(path), code LIMIT 1"
        ))
        .db()?;
    first(stmt.query([level.as_str()]).db()?, org_from_row)
}

pub(crate) fn put_tower_groups(conn: &Connection, groups: &[TowerGroup]) -> Result<()> {
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO tower_groups (code, name, tier, parent, org, org_path, commander_name,
                 commander_phone, members)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, tier = excluded.tier,
                 parent = excluded.parent, org = excluded.org, org_path = excluded.org_path,
                 commander_name = excluded.commander_name,
                 commander_phone = excluded.commander_phone, members = excluded.members",
        )
        .db()?;
    for g in groups {
        upsert
            .execute(params![
                g.code,
                g.name,
                g.tier,
                g.parent,
                g.org,
                g.org_path,
                g.commander_name,
                g.commander_phone,
                g.members
            ])
            .map_err(|e| {
                if is_constraint(&e) {
                    StoreError::Domain(DomainError::invalid(
                        "tier",
                        format!("tower group {} must be of tier 1, 2 or 3", g.code),
                    ))
                } else {
                    StoreError::Backend(e.to_string())
                }
            })?;
    }
    Ok(())
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

pub(crate) const TOWER_GROUP_COLUMNS: &str =
    "code, name, tier, parent, org, org_path, commander_name, commander_phone, members";

pub(crate) fn tower_group_from_row(r: &Row<'_>) -> Result<TowerGroup> {
    Ok(TowerGroup {
        code: get(r, 0)?,
        name: get(r, 1)?,
        tier: get(r, 2)?,
        parent: get(r, 3)?,
        org: get(r, 4)?,
        org_path: get(r, 5)?,
        commander_name: get(r, 6)?,
        commander_phone: get(r, 7)?,
        members: get(r, 8)?,
    })
}

pub(crate) fn tower_groups(conn: &Connection, path: &str) -> Result<Vec<TowerGroup>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TOWER_GROUP_COLUMNS}
             FROM tower_groups WHERE org_path >= ?1 AND org_path < ?2 ORDER BY org_path, code"
        ))
        .db()?;
    collect(
        stmt.query(params![path, subtree_end(path)]).db()?,
        tower_group_from_row,
    )
}

// --- people and keys --------------------------------------------------------------------

pub(crate) const USER_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.role, u.org, u.org_path, u.password_hash, u.created_at";

pub(crate) fn user_from_row(r: &Row<'_>) -> Result<User> {
    let role: String = get(r, 3)?;
    Ok(User {
        id: get(r, 0)?,
        username: get(r, 1)?,
        display_name: get(r, 2)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Backend(format!("unknown role {role:?}")))?,
        org: get(r, 4)?,
        org_path: get(r, 5)?,
        password_hash: get(r, 6)?,
        created_at: from_ms(get(r, 7)?)?,
    })
}

pub(crate) fn create_user(conn: &Connection, u: NewUser) -> Result<User> {
    let org_path: String = conn
        .prepare_cached("SELECT path FROM orgs WHERE code = ?1")
        .db()?
        .query_row([&u.org], |r| r.get(0))
        .optional()
        .db()?
        .ok_or(StoreError::NotFound)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO users (username, display_name, role, org, org_path, password_hash,
                 created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .db()?
        .execute(params![
            u.username,
            u.display_name,
            u.role.as_str(),
            u.org,
            org_path,
            u.password_hash,
            ms(u.created_at)
        ]);
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate(format!(
                "the username {} is taken",
                u.username
            )));
        }
        Err(e) => return Err(StoreError::Backend(e.to_string())),
    }
    Ok(User {
        id: conn.last_insert_rowid(),
        username: u.username,
        display_name: u.display_name,
        role: u.role,
        org: u.org,
        org_path,
        password_hash: u.password_hash,
        created_at: u.created_at,
    })
}

pub(crate) fn user_by_username(conn: &Connection, username: &str) -> Result<Option<User>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?1"
        ))
        .db()?;
    first(stmt.query([username]).db()?, user_from_row)
}

pub(crate) fn users_in_subtree(conn: &Connection, path: &str) -> Result<Vec<User>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u
             WHERE u.org_path >= ?1 AND u.org_path < ?2 ORDER BY u.org_path, u.username"
        ))
        .db()?;
    collect(
        stmt.query(params![path, subtree_end(path)]).db()?,
        user_from_row,
    )
}

pub(crate) fn create_session(
    conn: &Connection,
    token_hash: &str,
    user_id: i64,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    // Logins are rare next to everything else; they clear out the expired sessions so the
    // table does not grow without bound (a range on the expiry index).
    conn.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")
        .db()?
        .execute([ms(created_at)])
        .db()?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .db()?
        .execute(params![token_hash, user_id, ms(created_at), ms(expires_at)]);
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Duplicate("the session token exists".into()))
        }
        Err(e) => Err(StoreError::Backend(e.to_string())),
    }
}

pub(crate) fn session(
    conn: &Connection,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2"
        ))
        .db()?;
    first(stmt.query(params![token_hash, ms(now)]).db()?, |r| {
        Ok(Session {
            user: user_from_row(r)?,
            expires_at: from_ms(get(r, 8)?)?,
        })
    })
}

pub(crate) fn delete_session(conn: &Connection, token_hash: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")
        .db()?
        .execute([token_hash])
        .db()?;
    Ok(())
}

pub(crate) fn create_api_key(
    conn: &Connection,
    name: &str,
    key_hash: &str,
    created_at: DateTime<Utc>,
) -> Result<ApiKey> {
    let inserted = conn
        .prepare_cached("INSERT INTO api_keys (name, key_hash, created_at) VALUES (?1, ?2, ?3)")
        .db()?
        .execute(params![name, key_hash, ms(created_at)]);
    match inserted {
        Ok(_) => Ok(ApiKey {
            id: conn.last_insert_rowid(),
            name: name.to_string(),
            key_hash: key_hash.to_string(),
            created_at,
        }),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate(format!(
            "an API key named {name} exists"
        ))),
        Err(e) => Err(StoreError::Backend(e.to_string())),
    }
}

pub(crate) fn api_key_by_hash(conn: &Connection, key_hash: &str) -> Result<Option<ApiKey>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, name, key_hash, created_at FROM api_keys WHERE key_hash = ?1")
        .db()?;
    first(stmt.query([key_hash]).db()?, |r| {
        Ok(ApiKey {
            id: get(r, 0)?,
            name: get(r, 1)?,
            key_hash: get(r, 2)?,
            created_at: from_ms(get(r, 3)?)?,
        })
    })
}

// --- configuration ----------------------------------------------------------------------

pub(crate) fn calendar_years(conn: &Connection) -> Result<Vec<CalendarYear>> {
    let mut stmt = conn
        .prepare_cached("SELECT year, json FROM calendar_years ORDER BY year")
        .db()?;
    collect(stmt.query([]).db()?, |r| {
        let year: i64 = get(r, 0)?;
        serde_json::from_str(&get::<String>(r, 1)?).map_err(|e| {
            StoreError::Backend(format!("the stored calendar of {year} is corrupt: {e}"))
        })
    })
}

pub(crate) fn put_calendar_year(conn: &Connection, year: &CalendarYear) -> Result<()> {
    let json = serde_json::to_string(year)
        .map_err(|e| StoreError::Backend(format!("cannot encode a calendar: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO calendar_years (year, json) VALUES (?1, ?2)
         ON CONFLICT (year) DO UPDATE SET json = excluded.json",
    )
    .db()?
    .execute(params![year.year, json])
    .db()?;
    Ok(())
}

pub(crate) fn settings(conn: &Connection) -> Result<Settings> {
    let mut stmt = conn
        .prepare_cached("SELECT key, value FROM settings")
        .db()?;
    let pairs = collect(stmt.query([]).db()?, |r| {
        Ok((get::<String>(r, 0)?, get::<String>(r, 1)?))
    })?;
    Ok(pairs.into_iter().collect())
}

pub(crate) fn put_setting(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .db()?
    .execute(params![key, value])
    .db()?;
    Ok(())
}
