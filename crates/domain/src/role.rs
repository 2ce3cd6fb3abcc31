//! Roles and jurisdiction: who may do what, and where.
//!
//! A user holds one role bound to one org and acts only inside that org's subtree. The
//! permission matrix below is the single place that says which role may take which action.

use serde::{Deserialize, Serialize};

use crate::case::ActionKind;
use crate::org::{OrgRef, path_covers};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Leader,
    Dispatcher,
    Handler,
    Inspector,
    Volunteer,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Leader,
        Role::Dispatcher,
        Role::Handler,
        Role::Inspector,
        Role::Volunteer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Leader => "leader",
            Role::Dispatcher => "dispatcher",
            Role::Handler => "handler",
            Role::Inspector => "inspector",
            Role::Volunteer => "volunteer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The permission matrix. Jurisdiction is checked separately ([`Actor::covers`]).
    pub fn may(self, action: ActionKind) -> bool {
        use ActionKind::*;
        match self {
            Role::Admin => true,
            Role::Dispatcher => matches!(
                action,
                Accept
                    | Reject
                    | Dispatch
                    | DecideExtension
                    | Verify
                    | Close
                    | Escalate
                    | Supervise
                    | Merge
                    | Comment
            ),
            Role::Handler => {
                matches!(
                    action,
                    Claim | Return | RequestExtension | Reply | Escalate | Comment
                )
            }
            Role::Leader => matches!(action, Supervise | Comment),
            Role::Inspector | Role::Volunteer => matches!(action, Comment),
        }
    }

    /// Actions that act on the responsible org's work (签收, 退单, 办结…): the actor must be
    /// inside the subtree of the org the case is assigned to now, not merely able to see it.
    pub fn needs_assignment(action: ActionKind) -> bool {
        use ActionKind::*;
        matches!(action, Claim | Return | RequestExtension | Reply)
    }

    /// May this role see reporters' full names and phone numbers on request (logged)?
    pub fn may_reveal(self) -> bool {
        matches!(
            self,
            Role::Admin | Role::Dispatcher | Role::Handler | Role::Leader
        )
    }

    /// May this role manage orgs, users, calendars?
    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }

    pub fn zh(self) -> &'static str {
        match self {
            Role::Admin => "系统管理员",
            Role::Leader => "领导",
            Role::Dispatcher => "指挥中心(四个平台)",
            Role::Handler => "处置人员",
            Role::Inspector => "执法检查",
            Role::Volunteer => "志愿者",
        }
    }
}

/// Who performs a step. Every event names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(UserActor),
    /// A resident on the public pages (no login; proves ownership by phone digits).
    Resident,
    /// The server itself: the overdue sweep.
    System,
    /// An external system authenticated by an API key (Open311 client, camera platform).
    ApiClient(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserActor {
    pub username: String,
    pub role: Role,
    pub org: OrgRef,
}

impl Actor {
    /// The name recorded on the timeline.
    pub fn name(&self) -> String {
        match self {
            Actor::User(u) => u.username.clone(),
            Actor::Resident => "resident".into(),
            Actor::System => "system".into(),
            Actor::ApiClient(name) => format!("apikey:{name}"),
        }
    }

    pub fn user(&self) -> Option<&UserActor> {
        match self {
            Actor::User(u) => Some(u),
            _ => None,
        }
    }
}

impl UserActor {
    /// Whether a path lies inside this user's jurisdiction.
    pub fn covers(&self, path: &str) -> bool {
        path_covers(&self.org.path, path)
    }
}
