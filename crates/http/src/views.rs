//! What leaves the server. Personal data is masked here for everyone; the full values go
//! out only through the logged reveal endpoint.

use chrono::{DateTime, Utc};
use gridloop_domain::case::{
    Case, Channel, Difficulty, ExtensionRequest, HandlingMode, Location, Rating, Status,
};
use gridloop_domain::privacy::{mask_name, mask_phone};
use gridloop_domain::timeline::Event;
use serde::Serialize;
use utoipa::ToSchema;

/// A case as staff see it (reporter masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseView {
    pub id: i64,
    pub number: String,
    pub status: Status,
    pub version: i64,
    pub channel: Channel,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub location: Option<Location>,
    pub address: Option<String>,
    /// The org responsible now.
    pub org: String,
    /// 属地: the org where the problem is.
    pub area_org: String,
    pub centre_org: Option<String>,
    pub handling_mode: Option<HandlingMode>,
    pub difficulty: Option<Difficulty>,
    pub reporter: MaskedReporter,
    pub created_by: Option<String>,
    pub attachments: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub claim_deadline: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub escalation_level: u32,
    pub supervise_count: u32,
    pub pending_extension: Option<ExtensionRequest>,
    pub result: Option<String>,
    pub result_attachments: Vec<String>,
    pub replied_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_on_time: Option<bool>,
    pub rework_count: u32,
    pub reopen_count: u32,
    pub rating: Option<Rating>,
    pub rating_comment: Option<String>,
    pub merged_into: Option<i64>,
    pub reject_reason: Option<String>,
    /// The full timeline, oldest first (case detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MaskedReporter {
    /// `张*`
    pub name: Option<String>,
    /// `138****5678`
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub hash: String,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView {
            seq: e.seq,
            action: e.action,
            actor: e.actor,
            at: e.at,
            details: e.details,
            hash: e.hash,
        }
    }
}

impl CaseView {
    pub fn new(c: Case, events: Option<Vec<Event>>) -> Self {
        CaseView {
            id: c.id,
            number: c.number,
            status: c.status,
            version: c.version,
            channel: c.channel,
            title: c.title,
            description: c.description,
            category: c.category,
            location: c.location,
            address: c.address,
            org: c.org,
            area_org: c.area_org,
            centre_org: c.centre_org,
            handling_mode: c.handling_mode,
            difficulty: c.difficulty,
            reporter: MaskedReporter {
                name: c.reporter.name.as_deref().map(mask_name),
                phone: c.reporter.phone.as_deref().map(mask_phone),
            },
            created_by: c.created_by,
            attachments: c.attachments,
            created_at: c.created_at,
            updated_at: c.updated_at,
            accepted_at: c.accepted_at,
            dispatched_at: c.dispatched_at,
            deadline: c.deadline,
            claim_deadline: c.claim_deadline,
            overdue: c.overdue,
            escalation_level: c.escalation_level,
            supervise_count: c.supervise_count,
            pending_extension: c.pending_extension,
            result: c.result,
            result_attachments: c.result_attachments,
            replied_at: c.replied_at,
            closed_at: c.closed_at,
            closed_on_time: c.closed_on_time,
            rework_count: c.rework_count,
            reopen_count: c.reopen_count,
            rating: c.rating,
            rating_comment: c.rating_comment,
            merged_into: c.merged_into,
            reject_reason: c.reject_reason,
            events: events.map(|es| es.into_iter().map(EventView::from).collect()),
        }
    }
}

/// A case as its reporter sees it on the public pages: no personal data, no staff names.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicCaseView {
    pub number: String,
    pub status: Status,
    /// The status in Chinese, as the pages show it.
    pub status_zh: String,
    pub title: String,
    pub category: Option<String>,
    pub created_at: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub result: Option<String>,
    pub rating: Option<Rating>,
    /// Whether the reporter may rate it now.
    pub can_rate: bool,
    /// Photo ids of the report and of the result, served without metadata at
    /// `/api/v1/public/reports/{number}/photos/{id}`.
    pub photos: Vec<String>,
    pub result_photos: Vec<String>,
    pub timeline: Vec<PublicEvent>,
    /// For a report merged into an earlier one: how the original stands. Its answer is
    /// this reporter's answer too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<OriginalCase>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OriginalCase {
    pub number: String,
    pub status: Status,
    pub status_zh: String,
    pub result: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl From<&Case> for OriginalCase {
    fn from(c: &Case) -> Self {
        OriginalCase {
            number: c.number.clone(),
            status: c.status,
            status_zh: c.status.zh().to_string(),
            result: c.result.clone(),
            closed_at: c.closed_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicEvent {
    pub action: String,
    pub at: DateTime<Utc>,
    /// The status after this step, when it changed.
    pub status: Option<Status>,
}

/// Steps a resident sees. Internal notes, reveals and comments stay inside.
const PUBLIC_ACTIONS: &[&str] = &[
    "create", "accept", "reject", "dispatch", "claim", "reply", "verify", "close", "escalate",
    "merge", "feedback", "reopen",
];

impl PublicCaseView {
    pub fn new(c: &Case, events: &[Event]) -> Self {
        PublicCaseView {
            number: c.number.clone(),
            status: c.status,
            status_zh: c.status.zh().to_string(),
            title: c.title.clone(),
            category: c.category.clone(),
            created_at: c.created_at,
            deadline: c.deadline,
            closed_at: c.closed_at,
            result: c.result.clone(),
            rating: c.rating,
            can_rate: c.status == Status::Closed && c.awaiting_feedback,
            photos: c.attachments.clone(),
            result_photos: c.result_attachments.clone(),
            timeline: events
                .iter()
                .filter(|e| PUBLIC_ACTIONS.contains(&e.action.as_str()))
                .map(|e| PublicEvent {
                    action: e.action.clone(),
                    at: e.at,
                    status: e
                        .details
                        .get("to")
                        .and_then(|v| v.as_str())
                        .and_then(Status::parse),
                })
                .collect(),
            original: None,
        }
    }
}
