use axum::Json;
use axum::extract::State;
use chrono::{Datelike, NaiveDate};
use gridloop_domain::measures::Measures;
use gridloop_domain::org::{Level, Org};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;

#[derive(Debug, Deserialize, IntoParams)]
pub struct StatsQuery {
    /// Org code; default the caller's org.
    pub org: Option<String>,
    /// First day (inclusive, local time). Default: the first of this month.
    pub from: Option<NaiveDate>,
    /// Last day (inclusive). Default: today.
    pub to: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgMeasures {
    pub org: String,
    pub name: String,
    pub level: Level,
    #[serde(flatten)]
    pub measures: Measures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    pub org: String,
    pub name: String,
    pub level: Level,
    pub from: NaiveDate,
    pub to: NaiveDate,
    #[serde(flatten)]
    pub measures: Measures,
    pub by_child: Vec<OrgMeasures>,
}

/// The measures of an org's whole subtree over a period, and of each child org.
/// Cases count where the problem is (属地). `overdue` is now, not over the period.
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats", params(StatsQuery), security(("bearer" = [])),
    responses((status = 200, body = StatsView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn stats(
    State(st): State<AppState>,
    me: AuthUser,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<StatsView>> {
    let org: Org = match &q.org {
        None => st
            .store
            .org(&me.actor.org.code)
            .await?
            .ok_or_else(|| ApiError::not_found("org"))?,
        Some(code) => match st.store.org(code).await? {
            Some(o) if me.actor.covers(&o.path) => o,
            _ => return Err(ApiError::not_found("org")),
        },
    };
    let today = st.calendar().local_date(st.clock.now());
    let to = q.to.unwrap_or(today);
    let from = q.from.unwrap_or_else(|| to.with_day(1).unwrap_or(to));
    if from > to {
        return Err(ApiError::invalid("from", "must not be after `to`"));
    }
    if (to - from).num_days() > 366 * 10 {
        return Err(ApiError::invalid("to", "a period of at most ten years"));
    }
    let children = st.store.child_orgs(&org.code).await?;
    let mut codes: Vec<String> = vec![org.code.clone()];
    codes.extend(children.iter().map(|c| c.code.clone()));
    let counters = st.store.counters(&codes, from, to).await?;
    // Only the one gauge shown: a province's thousand streets have nine each.
    let overdue = st.store.gauge(&codes, "overdue").await?;
    let measures_of = |code: &str| {
        let c = counters.get(code).copied().unwrap_or_default();
        Measures::from_counters(&c, overdue.get(code).copied().unwrap_or(0))
    };
    Ok(Json(StatsView {
        measures: measures_of(&org.code),
        // The children's own strings, not copies: a province has a thousand.
        by_child: children
            .into_iter()
            .map(|c| OrgMeasures {
                measures: measures_of(&c.code),
                org: c.code,
                name: c.name,
                level: c.level,
            })
            .collect(),
        org: org.code,
        name: org.name,
        level: org.level,
        from,
        to,
    }))
}
