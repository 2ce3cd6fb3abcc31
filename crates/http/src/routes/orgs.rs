use axum::Json;
use axum::extract::State;
use gridloop_domain::org::Level;
use gridloop_store::TowerGroup;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;

#[derive(Debug, Deserialize, IntoParams)]
pub struct OrgQuery {
    /// `boundary` to include GeoJSON boundaries.
    pub include: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub parent: Option<String>,
    /// GeoJSON Polygon or MultiPolygon (WGS-84), with `?include=boundary`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub boundary: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgList {
    pub items: Vec<OrgView>,
}

/// The orgs the caller may see: their own org's subtree.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs", params(OrgQuery), security(("bearer" = [])),
    responses((status = 200, body = OrgList), (status = 401, body = ErrorBody)))]
pub async fn list_orgs(
    State(st): State<AppState>,
    me: AuthUser,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> ApiResult<Json<OrgList>> {
    let with_boundary = match q.include.as_deref() {
        None => false,
        Some("boundary") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "include={other}: only `boundary` is known"
            )));
        }
    };
    let orgs = st
        .store
        .orgs_in_subtree(&me.actor.org.path, with_boundary)
        .await?;
    let items = orgs
        .into_iter()
        .map(|o| OrgView {
            code: o.code,
            name: o.name,
            level: o.level,
            parent: o.parent,
            boundary: o.boundary,
        })
        .collect();
    Ok(Json(OrgList { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TowerGroupView {
    pub code: String,
    pub name: String,
    /// 1, 2 or 3 (一级/二级/三级塔群).
    pub tier: u8,
    pub parent: Option<String>,
    pub org: String,
    pub commander_name: String,
    /// Masked.
    pub commander_phone: Option<String>,
    pub members: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TowerGroupList {
    pub items: Vec<TowerGroupView>,
}

/// The tower groups (塔群) in the caller's subtree.
#[utoipa::path(get, path = "/api/v1/tower-groups", tag = "orgs", security(("bearer" = [])),
    responses((status = 200, body = TowerGroupList), (status = 401, body = ErrorBody)))]
pub async fn list_tower_groups(
    State(st): State<AppState>,
    me: AuthUser,
) -> ApiResult<Json<TowerGroupList>> {
    let groups = st.store.tower_groups(&me.actor.org.path).await?;
    let items = groups
        .into_iter()
        .map(|g: TowerGroup| TowerGroupView {
            code: g.code,
            name: g.name,
            tier: g.tier,
            parent: g.parent,
            org: g.org,
            commander_name: g.commander_name,
            commander_phone: g
                .commander_phone
                .as_deref()
                .map(gridloop_domain::privacy::mask_phone),
            members: g.members,
        })
        .collect();
    Ok(Json(TowerGroupList { items }))
}
