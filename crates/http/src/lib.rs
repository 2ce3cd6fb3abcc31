//! gridloop's HTTP layer: thin axum handlers that authenticate, check jurisdiction, call the
//! domain, and let the store persist. Errors become statuses only in [`error`].
//!
//! | module | what |
//! |---|---|
//! | [`routes`] | one file per resource; every handler is in the OpenAPI document |
//! | [`auth`] | passwords, tokens, login throttle, the `AuthUser` extractor |
//! | [`views`] | what leaves the server: masked cases, public timelines |
//! | [`routing`] | location → grid |
//! | [`sweep`] | the overdue sweep (督办/上报) |
//! | [`web`] | the embedded web console and residents' pages (`web/`) |

pub mod auth;
pub mod clock;
pub mod error;
pub mod extract;
pub mod media;
pub mod routes;
pub mod routing;
pub mod sweep;
pub mod views;
pub mod web;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use gridloop_domain::calendar::{Calendar, CalendarYear};
use gridloop_domain::case::Ctx;
use gridloop_domain::org::OrgRef;
use gridloop_domain::policy::Policy;
use gridloop_store::Store;

pub use clock::Clock;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub policy: Arc<Policy>,
    calendar: Arc<RwLock<Arc<Calendar>>>,
    /// The location → org index; swapped whole after an org import (see [`AppState::routing`]).
    routing: Arc<routing::Routing>,
    /// Where reports with no org and no routable location go (the street centre).
    pub intake_org: OrgRef,
    pub login_limiter: Arc<auth::LoginLimiter>,
    /// Sessions recently read (see [`auth::SessionCache`]).
    pub sessions: Arc<auth::SessionCache>,
    pub camera_locks: Arc<routes::hooks::SourceLocks>,
}

/// The calendars shipped in the repository, loaded into a new store on first start.
pub const SHIPPED_CALENDARS: &[&str] = &[
    include_str!("../../../calendars/2025.json"),
    include_str!("../../../calendars/2026.json"),
];

impl AppState {
    /// Loads calendars, settings and boundaries from the store.
    pub async fn load(
        store: Arc<dyn Store>,
        clock: Clock,
        policy: Policy,
    ) -> Result<AppState, String> {
        let mut years = store.calendar_years().await.map_err(|e| e.to_string())?;
        if years.is_empty() {
            for text in SHIPPED_CALENDARS {
                let y = CalendarYear::parse(text).map_err(|e| e.to_string())?;
                store
                    .put_calendar_year(&y)
                    .await
                    .map_err(|e| e.to_string())?;
                years.push(y);
            }
        }
        let mut cal = Calendar::default();
        for y in &years {
            cal.load_year(y);
        }
        let settings = store.settings().await.map_err(|e| e.to_string())?;
        let intake = match settings.get("intake_org") {
            Some(code) => store.org(code).await.map_err(|e| e.to_string())?,
            None => None,
        };
        let intake = match intake {
            Some(o) => Some(o),
            None => store
                .first_org_of_level(gridloop_domain::org::Level::Street)
                .await
                .map_err(|e| e.to_string())?,
        };
        let intake = match intake {
            Some(o) => Some(o),
            None => store
                .first_org_of_level(gridloop_domain::org::Level::City)
                .await
                .map_err(|e| e.to_string())?,
        };
        let intake_org = intake
            .map(|o| o.as_ref())
            .ok_or("the store has no orgs yet: import or seed an org tree first")?;
        let routing = routing::Router::load(store.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        Ok(AppState {
            store,
            clock,
            policy: Arc::new(policy),
            calendar: Arc::new(RwLock::new(Arc::new(cal))),
            routing: Arc::new(routing::Routing::new(routing)),
            intake_org,
            login_limiter: Arc::new(auth::LoginLimiter::default()),
            sessions: Arc::new(auth::SessionCache::default()),
            camera_locks: Arc::new(routes::hooks::SourceLocks::default()),
        })
    }

    /// The routing index in use. Take it once per request: a reload swaps in a new one.
    pub fn routing(&self) -> Arc<routing::Router> {
        self.routing.current()
    }

    /// Rebuilds the routing index from the store's boundaries (after an org import).
    pub async fn reload_routing(&self) -> Result<routing::RouterStats, gridloop_store::StoreError> {
        self.routing.reload(self.store.as_ref()).await
    }

    pub fn calendar(&self) -> Arc<Calendar> {
        self.calendar
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_calendar(&self, cal: Calendar) {
        *self.calendar.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cal);
    }

    /// Runs `f` with a decision context at the server's current time.
    pub fn with_ctx<R>(&self, f: impl FnOnce(&Ctx) -> R) -> R {
        let cal = self.calendar();
        let ctx = Ctx {
            now: self.clock.now(),
            calendar: &cal,
            policy: &self.policy,
        };
        f(&ctx)
    }
}

/// Serves until Ctrl-C / SIGTERM. Starts the overdue sweep beside the server.
pub async fn serve(state: AppState, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweep::run(state.clone()));
    let app = routes::router(state);
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    sweeper.abort();
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
