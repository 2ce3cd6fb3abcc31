//! Passwords (argon2id), opaque bearer tokens stored hashed, login rate limiting, and the
//! extractor that turns a token into the acting user.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration as Elapsed, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use gridloop_domain::org::OrgRef;
use gridloop_domain::role::{Actor, UserActor};
use gridloop_store::{Session, User};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// How long a login lasts.
pub const SESSION_HOURS: i64 = 12;

pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh random token (shown once) and its hash (stored).
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Failed logins per username: after `MAX_FAILURES` within `WINDOW_MINUTES`, further
/// attempts are refused with 429 until the window passes. Kept in memory: a restart
/// forgives, which is acceptable for a throttle (not a lockout).
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

const MAX_FAILURES: u32 = 5;
const WINDOW_MINUTES: i64 = 5;

impl LoginLimiter {
    pub fn check(&self, username: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((n, since)) = map.get(username)
            && *n >= MAX_FAILURES
            && now - *since < Duration::minutes(WINDOW_MINUTES)
        {
            return Err(ApiError::TooManyRequests(format!(
                "too many failed logins; try again in {WINDOW_MINUTES} minutes"
            )));
        }
        Ok(())
    }

    pub fn failed(&self, username: &str, now: DateTime<Utc>) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| now - *since < Duration::minutes(WINDOW_MINUTES));
        }
        let e = map.entry(username.to_string()).or_insert((0, now));
        if now - e.1 >= Duration::minutes(WINDOW_MINUTES) {
            *e = (0, now);
        }
        e.0 += 1;
    }

    pub fn succeeded(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username);
    }
}

/// Sessions recently read, by token hash, so that a client's every request does not read
/// its session from the store (a read on the blocking pool: ~50 µs and two thread
/// switches, a sixth of the server's own work on a case report).
///
/// A session never changes while it lasts (users are never edited; it ends by logout or
/// expiry), so a kept one is exact until its own expiry, which is checked on every use, and
/// a logout through this server forgets it at once. A logout through another server over the
/// same database (PostgreSQL, several servers) is seen here within [`SESSION_CACHE_TTL`]:
/// no entry is trusted longer than that.
pub struct SessionCache {
    entries: Mutex<Entries>,
    ttl: Elapsed,
}

#[derive(Default)]
struct Entries {
    kept: HashMap<String, (Session, Instant)>,
    /// Counts logouts: a session read before one is not kept after it (the read may have
    /// been of the session that ended).
    forgotten: u64,
}

/// How long a kept session is trusted without reading it again.
pub const SESSION_CACHE_TTL: Elapsed = Elapsed::from_secs(10);
/// Sessions kept at most; past it the cache starts over (a burst of one-off tokens must not
/// grow it without bound).
const SESSION_CACHE_MAX: usize = 10_000;

impl Default for SessionCache {
    fn default() -> SessionCache {
        SessionCache::with_ttl(SESSION_CACHE_TTL)
    }
}

impl SessionCache {
    pub fn with_ttl(ttl: Elapsed) -> SessionCache {
        SessionCache {
            entries: Mutex::new(Entries::default()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept session of `hash` if it is still valid at `now` and fresh enough; else the
    /// logout count to read it under.
    fn get(&self, hash: &str, now: DateTime<Utc>) -> Result<User, u64> {
        let mut entries = self.lock();
        match entries.kept.get(hash) {
            Some((s, read)) if s.expires_at > now && read.elapsed() < self.ttl => {
                Ok(s.user.clone())
            }
            Some(_) => {
                entries.kept.remove(hash);
                Err(entries.forgotten)
            }
            None => Err(entries.forgotten),
        }
    }

    /// Keeps a session read from the store, unless a logout came in since the read began.
    fn put(&self, hash: &str, session: Session, forgotten_before: u64) {
        let mut entries = self.lock();
        if entries.forgotten != forgotten_before {
            return;
        }
        if entries.kept.len() >= SESSION_CACHE_MAX {
            entries.kept.clear();
        }
        entries
            .kept
            .insert(hash.to_string(), (session, Instant::now()));
    }

    /// Forgets a session that has ended (a logout).
    pub fn forget(&self, hash: &str) {
        let mut entries = self.lock();
        entries.kept.remove(hash);
        entries.forgotten += 1;
    }

    /// The user of the session `hash` at `now`: kept, or read from the store and kept.
    pub async fn user(
        &self,
        store: &dyn gridloop_store::Store,
        hash: &str,
        now: DateTime<Utc>,
    ) -> gridloop_store::Result<Option<User>> {
        let forgotten = match self.get(hash, now) {
            Ok(user) => return Ok(Some(user)),
            Err(forgotten) => forgotten,
        };
        let Some(session) = store.session(hash, now).await? else {
            return Ok(None);
        };
        let user = session.user.clone();
        self.put(hash, session, forgotten);
        Ok(Some(user))
    }
}

/// The logged-in user behind `Authorization: Bearer …`; 401 otherwise.
pub struct AuthUser {
    pub user: User,
    pub actor: UserActor,
    pub token_hash: String,
}

impl AuthUser {
    pub fn actor(&self) -> Actor {
        Actor::User(self.actor.clone())
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::Unauthorized("log in first: Authorization: Bearer TOKEN".into())
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer TOKEN".into()))?;
        let hash = token_hash(token);
        let user = state
            .sessions
            .user(state.store.as_ref(), &hash, state.clock.now())
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the token is unknown or has expired".into()))?;
        let actor = UserActor {
            username: user.username.clone(),
            role: user.role,
            org: OrgRef::new(&user.org, &user.org_path),
        };
        Ok(AuthUser {
            user,
            actor,
            token_hash: hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridloop_domain::role::Role;

    fn session(expires_at: DateTime<Utc>) -> Session {
        Session {
            user: User {
                id: 7,
                username: "grid1".into(),
                display_name: "网格员".into(),
                role: Role::Handler,
                org: "g1".into(),
                org_path: "/c/s/g1/".into(),
                password_hash: String::new(),
                created_at: expires_at - Duration::hours(12),
            },
            expires_at,
        }
    }

    #[test]
    fn kept_sessions_end_with_their_expiry_their_logout_and_the_ttl() {
        let now = Utc::now();
        let cache = SessionCache::default();
        let forgotten = cache.get("h", now).unwrap_err();
        cache.put("h", session(now + Duration::hours(1)), forgotten);
        assert_eq!(cache.get("h", now).unwrap().username, "grid1");
        // Expired: not returned, and dropped.
        assert!(cache.get("h", now + Duration::hours(2)).is_err());
        assert!(cache.get("h", now).is_err());

        cache.put("h", session(now + Duration::hours(1)), forgotten);
        cache.forget("h");
        assert!(cache.get("h", now).is_err());

        // Never trusted past the TTL.
        let brief = SessionCache::with_ttl(Elapsed::ZERO);
        let forgotten = brief.get("h", now).unwrap_err();
        brief.put("h", session(now + Duration::hours(1)), forgotten);
        assert!(brief.get("h", now).is_err());
    }

    #[test]
    fn a_session_read_before_a_logout_is_not_kept_after_it() {
        let now = Utc::now();
        let cache = SessionCache::default();
        // A request misses and reads the session; meanwhile the session logs out.
        let forgotten = cache.get("h", now).unwrap_err();
        cache.forget("h");
        cache.put("h", session(now + Duration::hours(1)), forgotten);
        assert!(cache.get("h", now).is_err(), "the ended session came back");
    }
}
