//! The case (事件/工单) and its state machine.
//!
//! [`decide`] is the one function that says what an action does to a case: who may take it,
//! in which status, what changes, and which events are written. Stores persist its
//! [`Decision`] atomically; nothing else changes a case.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::calendar::Calendar;
use crate::category;
use crate::geo::Crs;
use crate::measures::MeasureDelta;
use crate::org::{Level, OrgRef, parent_path};
use crate::policy::Policy;
use crate::role::{Actor, Role};
use crate::timeline::NewEvent;
use crate::{DomainError, to_millis};

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal / $zh:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $s),+ } }
            pub fn zh(self) -> &'static str { match self { $($name::$variant => $zh),+ } }
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// Where a case is in the loop.
    Status {
        Reported = "reported" / "待受理",
        Accepted = "accepted" / "已受理",
        Dispatched = "dispatched" / "已派遣",
        InProgress = "in_progress" / "处置中",
        Replied = "replied" / "已回复",
        Closed = "closed" / "已办结",
        Rejected = "rejected" / "不予受理",
        Merged = "merged" / "已合并",
    }
);

impl Status {
    /// Open cases still need someone to act; the other three are final (a closed case may
    /// still be reopened by feedback).
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Closed | Status::Rejected | Status::Merged)
    }

    /// Whether a case in this status can be overdue. A case gets its deadline when it is
    /// accepted (or closed on the spot), no transition leads back to `Reported`, and the
    /// flag is cleared when a case leaves the loop: so an unaccepted report never is, and
    /// an overdue list need not look among them (the bulk of a backlog).
    pub fn may_be_overdue(self) -> bool {
        self.is_open() && self != Status::Reported
    }
}

str_enum!(
    /// Where a report came in (来源渠道).
    Channel {
        ResidentWeb = "resident_web" / "群众网上报事",
        Hotline = "hotline" / "热线电话",
        GridPatrol = "grid_patrol" / "网格员巡查",
        NightVisit = "night_visit" / "夜访",
        DoorVisit = "door_visit" / "两问大家访",
        TowerGroup = "tower_group" / "塔群求助",
        Volunteer = "volunteer" / "志愿者",
        CameraAlert = "camera_alert" / "智慧天眼预警",
        Inspection = "inspection" / "执法检查",
        Open311 = "open311" / "第三方接入",
    }
);

str_enum!(
    /// 办理方式, chosen on accept.
    HandlingMode {
        Immediate = "immediate" / "即时办理",
        SelfGovernance = "self_governance" / "自治协商",
        Joint = "joint" / "联合解决",
        Escalate = "escalate" / "上报攻坚",
        Explain = "explain" / "解释疏导",
    }
);

str_enum!(
    /// The 135 rule's three classes.
    Difficulty {
        Simple = "simple" / "简单(1个工作日)",
        Difficult = "difficult" / "较难(3个工作日)",
        UnsolvableNow = "unsolvable_now" / "暂难解决(5个工作日出方案)",
    }
);

str_enum!(
    /// The reporter's rating (回访满意度).
    Rating {
        Satisfied = "satisfied" / "满意",
        BasicallySatisfied = "basically_satisfied" / "基本满意",
        Unsatisfied = "unsatisfied" / "不满意",
    }
);

impl Rating {
    pub fn is_satisfied(self) -> bool {
        matches!(self, Rating::Satisfied | Rating::BasicallySatisfied)
    }
}

str_enum!(
    /// The actions of CONTRACT.md, as taken through `POST /cases/{id}/actions`.
    ActionKind {
        Accept = "accept" / "受理",
        Reject = "reject" / "不予受理",
        Dispatch = "dispatch" / "派遣",
        Claim = "claim" / "签收",
        Return = "return" / "退单",
        RequestExtension = "request_extension" / "延期申请",
        DecideExtension = "decide_extension" / "延期审批",
        Reply = "reply" / "办结回复",
        Verify = "verify" / "核查",
        Close = "close" / "结案",
        Escalate = "escalate" / "上报",
        Supervise = "supervise" / "督办",
        Merge = "merge" / "合并",
        Comment = "comment" / "备注",
    }
);

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Location {
    pub lat: f64,
    pub lng: f64,
}

impl Location {
    pub fn validate(&self) -> Result<(), DomainError> {
        if !(self.lat.is_finite() && (-90.0..=90.0).contains(&self.lat)) {
            return Err(DomainError::invalid(
                "location.lat",
                "latitude must be within ±90",
            ));
        }
        if !(self.lng.is_finite() && (-180.0..=180.0).contains(&self.lng)) {
            return Err(DomainError::invalid(
                "location.lng",
                "longitude must be within ±180",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reporter {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExtensionRequest {
    pub days: u32,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// One case. Stores keep the indexed fields in columns and the rest as a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
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
    /// 属地: the org where the problem is. Fixed at report time; all measures count here.
    pub area_org: String,
    pub area_path: String,
    /// The org responsible now (the centre before dispatch, the assignee after).
    pub org: String,
    pub org_path: String,
    /// The centre (指挥中心) that accepted the case; returns (退单) go back to it.
    pub centre_org: Option<String>,
    pub centre_path: Option<String>,
    pub handling_mode: Option<HandlingMode>,
    pub difficulty: Option<Difficulty>,
    pub reporter: Reporter,
    /// The username that reported it, for staff channels; `None` for residents and systems.
    pub created_by: Option<String>,
    pub attachments: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub claim_deadline: Option<DateTime<Utc>>,
    pub claim_reminded: bool,
    pub overdue: bool,
    pub overdue_since: Option<DateTime<Utc>>,
    pub escalation_level: u32,
    pub last_escalated_at: Option<DateTime<Utc>>,
    pub last_supervised_at: Option<DateTime<Utc>>,
    pub supervise_count: u32,
    pub pending_extension: Option<ExtensionRequest>,
    pub extension_days: u32,
    pub result: Option<String>,
    pub result_attachments: Vec<String>,
    pub replied_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_on_time: Option<bool>,
    pub rework_count: u32,
    pub reopen_count: u32,
    pub awaiting_feedback: bool,
    pub feedback_count: u32,
    pub rating: Option<Rating>,
    pub rating_comment: Option<String>,
    pub merged_into: Option<i64>,
    pub reject_reason: Option<String>,
    /// When the overdue sweep must next look at this case ([`Policy::next_due`]).
    pub due_at: Option<DateTime<Utc>>,
    /// The coordinate system the location was reported in (it is stored in WGS-84).
    #[serde(default)]
    pub crs: Option<Crs>,
    /// Repeats of the same source join one open case (a camera and alert type, say).
    #[serde(default)]
    pub source_key: Option<String>,
    /// How many repeated reports joined this case.
    #[serde(default)]
    pub repeats: u32,
    /// The night visit (夜访) whose concern this case is.
    #[serde(default)]
    pub visit_id: Option<i64>,
    /// A tower-group relay (塔群求助): the answer goes back through the commander.
    #[serde(default)]
    pub relay: Option<Relay>,
    /// Channel-specific details (Open311 attributes, a camera alert's type and snapshot).
    #[serde(default)]
    pub attributes: Option<Value>,
}

/// Who relayed a resident's request from a tower group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Relay {
    /// The tower group's code.
    pub tower_group: String,
    /// The commander (username or name) who relayed it.
    pub commander: String,
    pub resident_name: Option<String>,
}

/// What a reporter supplies. The HTTP layer fills it from a request body.
#[derive(Debug, Clone, Default)]
pub struct NewCase {
    pub channel: Option<Channel>,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub location: Option<Location>,
    pub address: Option<String>,
    pub reporter: Reporter,
    pub attachments: Vec<String>,
    pub crs: Option<Crs>,
    pub source_key: Option<String>,
    pub visit_id: Option<i64>,
    pub relay: Option<Relay>,
    pub attributes: Option<Value>,
}

/// An action as the API receives it (`{"action": "...", ...fields}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Accept {
        handling_mode: HandlingMode,
        difficulty: Difficulty,
        #[serde(default)]
        category: Option<String>,
    },
    Reject {
        reason: String,
    },
    Dispatch {
        org: String,
        #[serde(default)]
        note: Option<String>,
    },
    Claim {},
    Return {
        reason: String,
    },
    RequestExtension {
        days: u32,
        reason: String,
    },
    DecideExtension {
        approved: bool,
        #[serde(default)]
        note: Option<String>,
    },
    Reply {
        result: String,
        #[serde(default)]
        attachments: Vec<String>,
    },
    Verify {
        passed: bool,
        #[serde(default)]
        note: Option<String>,
    },
    Close {
        note: String,
    },
    Escalate {
        reason: String,
    },
    Supervise {
        note: String,
    },
    Merge {
        into: i64,
    },
    Comment {
        text: String,
    },
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Accept { .. } => ActionKind::Accept,
            Action::Reject { .. } => ActionKind::Reject,
            Action::Dispatch { .. } => ActionKind::Dispatch,
            Action::Claim {} => ActionKind::Claim,
            Action::Return { .. } => ActionKind::Return,
            Action::RequestExtension { .. } => ActionKind::RequestExtension,
            Action::DecideExtension { .. } => ActionKind::DecideExtension,
            Action::Reply { .. } => ActionKind::Reply,
            Action::Verify { .. } => ActionKind::Verify,
            Action::Close { .. } => ActionKind::Close,
            Action::Escalate { .. } => ActionKind::Escalate,
            Action::Supervise { .. } => ActionKind::Supervise,
            Action::Merge { .. } => ActionKind::Merge,
            Action::Comment { .. } => ActionKind::Comment,
        }
    }
}

/// Facts about other records that an action refers to, looked up by the caller before
/// deciding (the domain does no I/O).
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// For `dispatch`: the target org and its level.
    pub target: Option<(OrgRef, Level)>,
    /// For `merge`: the original case.
    pub merge_into: Option<MergeTarget>,
}

#[derive(Debug, Clone)]
pub struct MergeTarget {
    pub id: i64,
    pub number: String,
    pub status: Status,
}

/// The clock, calendar and policy a decision is made under.
pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub calendar: &'a Calendar,
    pub policy: &'a Policy,
}

/// What a decision changes: the case after, the events to append (in order), and what the
/// change does to the rollups of the case's area.
#[derive(Debug, Clone)]
pub struct Decision {
    pub case: Case,
    pub events: Vec<NewEvent>,
    pub measures: MeasureDelta,
}

impl Decision {
    pub fn new(before: Option<&Case>, case: Case, events: Vec<NewEvent>, cal: &Calendar) -> Self {
        let measures = crate::measures::delta(before, &case, cal);
        Decision {
            case,
            events,
            measures,
        }
    }
}

/// The human-readable case number: the local date it was reported and its place that day,
/// e.g. `20261123-000042`.
pub fn format_number(day: chrono::NaiveDate, seq: u64) -> String {
    format!("{}-{seq:06}", day.format("%Y%m%d"))
}

pub const TITLE_MAX: usize = 200;
pub const TEXT_MAX: usize = 5000;

fn check_text(field: &str, v: &str, max: usize, required: bool) -> Result<(), DomainError> {
    let n = v.trim().chars().count();
    if required && n == 0 {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    Ok(())
}

/// A phone number as people type it: digits with optional `+`, spaces and dashes.
pub fn normalize_phone(p: &str) -> Result<String, DomainError> {
    let digits: String = p.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let body = digits.strip_prefix('+').unwrap_or(&digits);
    if body.len() < 5 || body.len() > 20 || !body.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid("reporter.phone", "not a phone number"));
    }
    Ok(digits)
}

/// Builds a new case, reported by `actor` in the area `area`. The store assigns `id` and
/// `number`.
pub fn new_case(
    input: NewCase,
    actor: &Actor,
    area: &OrgRef,
    ctx: &Ctx,
) -> Result<Decision, DomainError> {
    let now = to_millis(ctx.now);
    let channel = input
        .channel
        .ok_or_else(|| DomainError::invalid("channel", "is required"))?;
    check_text("title", &input.title, TITLE_MAX, true)?;
    check_text("description", &input.description, TEXT_MAX, false)?;
    if let Some(c) = &input.category {
        category::validate(c)?;
    }
    if let Some(l) = &input.location {
        l.validate()?;
    }
    if let Some(a) = &input.address {
        check_text("address", a, 300, false)?;
    }
    let mut reporter = input.reporter;
    if let Some(name) = &reporter.name {
        check_text("reporter.name", name, 50, false)?;
    }
    reporter.phone = reporter.phone.as_deref().map(normalize_phone).transpose()?;
    reporter.name = reporter
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if input.attachments.len() > 20 {
        return Err(DomainError::invalid(
            "attachments",
            "at most 20 attachments",
        ));
    }
    let created_by = actor.user().map(|u| u.username.clone());
    let case = Case {
        id: 0,
        number: String::new(),
        status: Status::Reported,
        version: 1,
        channel,
        title: input.title.trim().to_string(),
        description: input.description.trim().to_string(),
        category: input.category,
        location: input.location,
        address: input.address,
        area_org: area.code.clone(),
        area_path: area.path.clone(),
        org: area.code.clone(),
        org_path: area.path.clone(),
        centre_org: None,
        centre_path: None,
        handling_mode: None,
        difficulty: None,
        reporter,
        created_by,
        attachments: input.attachments,
        created_at: now,
        updated_at: now,
        accepted_at: None,
        dispatched_at: None,
        deadline: None,
        claim_deadline: None,
        claim_reminded: false,
        overdue: false,
        overdue_since: None,
        escalation_level: 0,
        last_escalated_at: None,
        last_supervised_at: None,
        supervise_count: 0,
        pending_extension: None,
        extension_days: 0,
        result: None,
        result_attachments: vec![],
        replied_at: None,
        closed_at: None,
        closed_on_time: None,
        rework_count: 0,
        reopen_count: 0,
        awaiting_feedback: false,
        feedback_count: 0,
        rating: None,
        rating_comment: None,
        merged_into: None,
        reject_reason: None,
        due_at: None,
        crs: input.crs,
        source_key: input.source_key,
        repeats: 0,
        visit_id: input.visit_id,
        relay: input.relay,
        attributes: input.attributes,
    };
    let details = json!({
        "channel": case.channel,
        "title": case.title,
        "area_org": case.area_org,
        "category": case.category,
        "to": Status::Reported,
    });
    let events = vec![NewEvent::new("create", actor, now, details)];
    Ok(Decision::new(None, case, events, ctx.calendar))
}

fn state_error(case: &Case, kind: ActionKind) -> DomainError {
    DomainError::InvalidState(format!(
        "cannot {} a case that is {}",
        kind.as_str(),
        case.status.as_str()
    ))
}

fn require(case: &Case, kind: ActionKind, allowed: &[Status]) -> Result<(), DomainError> {
    if allowed.contains(&case.status) {
        Ok(())
    } else {
        Err(state_error(case, kind))
    }
}

/// Who may take `kind` on `case` at all (role and, for assignee actions, assignment).
/// Visibility (jurisdiction) is checked by the caller before the case is even shown.
pub fn authorize(case: &Case, kind: ActionKind, actor: &Actor) -> Result<(), DomainError> {
    match actor {
        Actor::User(u) => {
            if !u.role.may(kind) {
                return Err(DomainError::Forbidden(format!(
                    "a {} may not {}",
                    u.role.as_str(),
                    kind.as_str()
                )));
            }
            if Role::needs_assignment(kind) && !u.covers(&case.org_path) && u.role != Role::Admin {
                return Err(DomainError::Forbidden(format!(
                    "the case is assigned to {}, not to your org",
                    case.org
                )));
            }
            if kind == ActionKind::Escalate && u.role == Role::Handler && !u.covers(&case.org_path)
            {
                return Err(DomainError::Forbidden(
                    "only the assigned org may escalate".into(),
                ));
            }
            Ok(())
        }
        Actor::System if matches!(kind, ActionKind::Supervise | ActionKind::Escalate) => Ok(()),
        _ => Err(DomainError::Forbidden(format!(
            "{} may not {}",
            actor.name(),
            kind.as_str()
        ))),
    }
}

/// Decides what `action` by `actor` does to `case`.
pub fn decide(
    case: &Case,
    action: &Action,
    actor: &Actor,
    resolved: &Resolved,
    ctx: &Ctx,
) -> Result<Decision, DomainError> {
    use Status::*;
    let kind = action.kind();
    authorize(case, kind, actor)?;
    let now = to_millis(ctx.now);
    let mut c = case.clone();
    let mut details = Map::new();
    let open = [Reported, Accepted, Dispatched, InProgress, Replied];

    match action {
        Action::Accept {
            handling_mode,
            difficulty,
            category,
        } => {
            require(case, kind, &[Reported])?;
            if let Some(cat) = category {
                category::validate(cat)?;
                c.category = Some(cat.clone());
            }
            let centre = actor_org(actor)?;
            c.status = Accepted;
            c.handling_mode = Some(*handling_mode);
            c.difficulty = Some(*difficulty);
            c.accepted_at = Some(now);
            c.deadline = Some(ctx.policy.deadline(ctx.calendar, now, *difficulty));
            c.org = centre.code.clone();
            c.org_path = centre.path.clone();
            c.centre_org = Some(centre.code);
            c.centre_path = Some(centre.path);
            details.insert("handling_mode".into(), json!(handling_mode));
            details.insert("difficulty".into(), json!(difficulty));
            details.insert("deadline".into(), json!(c.deadline));
        }
        Action::Reject { reason } => {
            require(case, kind, &[Reported])?;
            check_text("reason", reason, TEXT_MAX, true)?;
            c.status = Rejected;
            c.reject_reason = Some(reason.clone());
            details.insert("reason".into(), json!(reason));
        }
        Action::Dispatch { org, note } => {
            require(case, kind, &[Accepted, Dispatched])?;
            if let Some(n) = note {
                check_text("note", n, TEXT_MAX, false)?;
            }
            let (target, level) = resolved
                .target
                .clone()
                .ok_or_else(|| DomainError::invalid("org", format!("unknown org {org}")))?;
            if !level.can_receive_dispatch() {
                return Err(DomainError::invalid(
                    "org",
                    format!(
                        "cases are dispatched to a grid, community, street or department, not a {}",
                        level.as_str()
                    ),
                ));
            }
            if let Some(u) = actor.user()
                && !u.covers(&target.path)
            {
                return Err(DomainError::invalid("org", format!("unknown org {org}")));
            }
            c.status = Dispatched;
            c.org = target.code.clone();
            c.org_path = target.path.clone();
            c.dispatched_at = Some(now);
            c.claim_deadline = Some(ctx.policy.claim_deadline(ctx.calendar, now));
            c.claim_reminded = false;
            details.insert("org".into(), json!(target.code));
            details.insert("note".into(), json!(note));
            details.insert("claim_deadline".into(), json!(c.claim_deadline));
        }
        Action::Claim {} => {
            require(case, kind, &[Dispatched])?;
            c.status = InProgress;
        }
        Action::Return { reason } => {
            require(case, kind, &[Dispatched, InProgress])?;
            check_text("reason", reason, TEXT_MAX, true)?;
            c.status = Accepted;
            if let (Some(code), Some(path)) = (&case.centre_org, &case.centre_path) {
                c.org = code.clone();
                c.org_path = path.clone();
            }
            c.claim_deadline = None;
            c.pending_extension = None;
            details.insert("reason".into(), json!(reason));
        }
        Action::RequestExtension { days, reason } => {
            require(case, kind, &[Dispatched, InProgress])?;
            check_text("reason", reason, TEXT_MAX, true)?;
            if *days == 0 || *days > ctx.policy.max_extension_days {
                return Err(DomainError::invalid(
                    "days",
                    format!("must be 1–{} working days", ctx.policy.max_extension_days),
                ));
            }
            if case.pending_extension.is_some() {
                return Err(DomainError::InvalidState(
                    "an extension request is already pending".into(),
                ));
            }
            c.pending_extension = Some(ExtensionRequest {
                days: *days,
                reason: reason.clone(),
                requested_by: actor.name(),
                requested_at: now,
            });
            details.insert("days".into(), json!(days));
            details.insert("reason".into(), json!(reason));
        }
        Action::DecideExtension { approved, note } => {
            require(case, kind, &open)?;
            let req = case.pending_extension.clone().ok_or_else(|| {
                DomainError::InvalidState("no extension request is pending".into())
            })?;
            c.pending_extension = None;
            if *approved {
                let base = case.deadline.unwrap_or(now);
                let new_deadline = ctx.calendar.add_working_days(base, req.days);
                c.deadline = Some(new_deadline);
                c.extension_days += req.days;
                if c.overdue && new_deadline > now {
                    c.overdue = false;
                    c.overdue_since = None;
                }
                details.insert("deadline".into(), json!(new_deadline));
            }
            details.insert("approved".into(), json!(approved));
            details.insert("days".into(), json!(req.days));
            details.insert("note".into(), json!(note));
        }
        Action::Reply {
            result,
            attachments,
        } => {
            require(case, kind, &[InProgress])?;
            check_text("result", result, TEXT_MAX, true)?;
            c.status = Replied;
            c.result = Some(result.clone());
            c.result_attachments = attachments.clone();
            c.replied_at = Some(now);
            details.insert("result".into(), json!(result));
            details.insert("attachments".into(), json!(attachments));
        }
        Action::Verify { passed, note } => {
            require(case, kind, &[Replied])?;
            details.insert("passed".into(), json!(passed));
            details.insert("note".into(), json!(note));
            if *passed {
                close(&mut c, now);
            } else {
                c.status = InProgress;
                c.rework_count += 1;
            }
        }
        Action::Close { note } => {
            require(case, kind, &[Accepted, Dispatched, InProgress, Replied])?;
            check_text("note", note, TEXT_MAX, true)?;
            close(&mut c, now);
            details.insert("note".into(), json!(note));
        }
        Action::Escalate { reason } => {
            require(case, kind, &[Accepted, Dispatched, InProgress])?;
            check_text("reason", reason, TEXT_MAX, true)?;
            escalate(&mut c, now, ctx)?;
            details.insert("reason".into(), json!(reason));
            details.insert("org".into(), json!(c.org));
        }
        Action::Supervise { note } => {
            require(case, kind, &open)?;
            check_text("note", note, TEXT_MAX, true)?;
            c.supervise_count += 1;
            c.last_supervised_at = Some(now);
            details.insert("note".into(), json!(note));
        }
        Action::Merge { into } => {
            require(case, kind, &[Reported, Accepted])?;
            let target = resolved
                .merge_into
                .as_ref()
                .ok_or_else(|| DomainError::invalid("into", format!("unknown case {into}")))?;
            if target.id == case.id {
                return Err(DomainError::invalid(
                    "into",
                    "a case cannot be merged into itself",
                ));
            }
            if matches!(target.status, Merged | Rejected) {
                return Err(DomainError::invalid(
                    "into",
                    format!(
                        "case {} is {} and cannot take duplicates",
                        target.number, target.status
                    ),
                ));
            }
            c.status = Merged;
            c.merged_into = Some(target.id);
            details.insert("into".into(), json!(target.id));
            details.insert("into_number".into(), json!(target.number));
        }
        Action::Comment { text } => {
            check_text("text", text, TEXT_MAX, true)?;
            details.insert("text".into(), json!(text));
        }
    }

    let event = finish(case, &mut c, kind.as_str(), details, actor, now, ctx);
    Ok(Decision::new(Some(case), c, vec![event], ctx.calendar))
}

fn actor_org(actor: &Actor) -> Result<OrgRef, DomainError> {
    actor
        .user()
        .map(|u| u.org.clone())
        .ok_or_else(|| DomainError::Forbidden("only staff may do this".into()))
}

fn close(c: &mut Case, now: DateTime<Utc>) {
    c.status = Status::Closed;
    c.closed_at = Some(now);
    c.closed_on_time = Some(c.deadline.is_none_or(|d| now <= d));
    c.overdue = false;
    c.pending_extension = None;
    // Only a reporter who left a phone number can be asked (回访) and rate the answer.
    c.awaiting_feedback = c.reporter.phone.is_some();
}

/// Moves a case one level up the tree (grid → community → street → city).
pub(crate) fn escalate(c: &mut Case, now: DateTime<Utc>, ctx: &Ctx) -> Result<(), DomainError> {
    let parent = parent_path(&c.org_path).ok_or_else(|| {
        DomainError::InvalidState("the case is already at the top of the tree".into())
    })?;
    c.org = crate::org::last_code(&parent).to_string();
    c.org_path = parent;
    c.escalation_level += 1;
    c.last_escalated_at = Some(now);
    hand_over(c, now, ctx);
    Ok(())
}

/// Puts a case in the hands of its (new) responsible org. At the centre's level or above
/// there is nobody to claim it: the centre holds it as accepted and dispatches again or
/// settles it itself. Below, the org must claim it (签收) within the claim deadline.
fn hand_over(c: &mut Case, now: DateTime<Utc>, ctx: &Ctx) {
    let at_centre = c
        .centre_path
        .as_deref()
        .is_some_and(|centre| centre.starts_with(&c.org_path));
    if at_centre {
        c.status = Status::Accepted;
        c.claim_deadline = None;
    } else {
        c.status = Status::Dispatched;
        c.dispatched_at = Some(now);
        c.claim_deadline = Some(ctx.policy.claim_deadline(ctx.calendar, now));
    }
    c.claim_reminded = false;
}

/// Stamps version, time and next due instant on `after`, and builds its event with the
/// status change and every changed field as `[before, after]`.
pub(crate) fn finish(
    before: &Case,
    after: &mut Case,
    action: &str,
    mut details: Map<String, Value>,
    actor: &Actor,
    now: DateTime<Utc>,
    ctx: &Ctx,
) -> NewEvent {
    after.version = before.version + 1;
    after.updated_at = now;
    // Overdue is a property of open cases only, whichever way a case left the loop.
    if !after.status.is_open() {
        after.overdue = false;
    }
    after.due_at = ctx.policy.next_due(ctx.calendar, after);
    if before.status != after.status {
        details.insert("from".into(), json!(before.status));
        details.insert("to".into(), json!(after.status));
    }
    let changes = diff(before, after);
    if !changes.is_empty() {
        details.insert("changes".into(), Value::Object(changes));
    }
    NewEvent::new(action, actor, now, Value::Object(details))
}

/// Builds [`diff`] from the fields of [`Case`], every one of them named once: in `skip`
/// (bookkeeping that changes on every step) or in `diff`, in declaration order. The
/// exhaustive destructuring below stops compiling when a field is added to `Case` and not
/// here, and the tests check the names against the serialized keys and their order.
macro_rules! case_diff {
    (
        $(#[$m:meta])*
        skip [$($skip:ident),* $(,)?]
        diff [$($field:ident),* $(,)?]
    ) => {
        /// Serialized keys of [`Case`] that [`diff`] leaves out.
        #[doc(hidden)]
        pub const DIFF_SKIPPED: &[&str] = &[$(stringify!($skip)),*];
        /// Serialized keys of [`Case`] that [`diff`] compares, in declaration order.
        #[doc(hidden)]
        pub const DIFF_FIELDS: &[&str] = &[$(stringify!($field)),*];

        $(#[$m])*
        pub fn diff(before: &Case, after: &Case) -> Map<String, Value> {
            let Case { $($skip: _,)* $($field: _,)* } = after;
            let mut out = Map::new();
            $(
                // Only fields that differ are serialized; equal Rust values serialize
                // equally, and unequal ones may still serialize the same (`Some(null)`
                // and `None` in `attributes`), which the JSON comparison leaves out.
                if before.$field != after.$field {
                    match (
                        serde_json::to_value(&before.$field),
                        serde_json::to_value(&after.$field),
                    ) {
                        (Ok(b), Ok(a)) => {
                            if b != a {
                                out.insert(stringify!($field).into(), Value::Array(vec![b, a]));
                            }
                        }
                        _ => return Map::new(),
                    }
                }
            )*
            out
        }
    };
}

case_diff! {
    /// Fields that differ between two versions of a case, as `{field: [before, after]}`.
    /// Bookkeeping fields that change on every step are left out.
    ///
    /// Field by field: only changed fields are serialized. The output is the same as
    /// [`diff_via_json`]'s, which serializes both cases whole.
    skip [version, updated_at, due_at]
    diff [
        id, number, status, channel, title, description, category, location, address,
        area_org, area_path, org, org_path, centre_org, centre_path, handling_mode,
        difficulty, reporter, created_by, attachments, created_at, accepted_at,
        dispatched_at, deadline, claim_deadline, claim_reminded, overdue, overdue_since,
        escalation_level, last_escalated_at, last_supervised_at, supervise_count,
        pending_extension, extension_days, result, result_attachments, replied_at,
        closed_at, closed_on_time, rework_count, reopen_count, awaiting_feedback,
        feedback_count, rating, rating_comment, merged_into, reject_reason, crs,
        source_key, repeats, visit_id, relay, attributes,
    ]
}

/// [`diff`] through whole JSON documents of both cases: the reference the field-wise
/// version is tested against (it was the implementation until that one replaced it).
#[doc(hidden)]
pub fn diff_via_json(before: &Case, after: &Case) -> Map<String, Value> {
    let (Ok(Value::Object(b)), Ok(Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Map::new();
    };
    let mut out = Map::new();
    for (k, av) in a {
        if DIFF_SKIPPED.contains(&k.as_str()) {
            continue;
        }
        let bv = b.get(&k).cloned().unwrap_or(Value::Null);
        if bv != av {
            out.insert(k, json!([bv, av]));
        }
    }
    out
}

/// A reporter's rating of a closed case. `unsatisfied` reopens it (重办) as policy says.
pub fn feedback(
    case: &Case,
    rating: Rating,
    comment: Option<&str>,
    actor: &Actor,
    ctx: &Ctx,
) -> Result<Decision, DomainError> {
    if let Some(text) = comment {
        check_text("comment", text, TEXT_MAX, false)?;
    }
    if case.status != Status::Closed {
        return Err(DomainError::InvalidState(
            "only a closed case can be rated".into(),
        ));
    }
    if !case.awaiting_feedback {
        return Err(DomainError::InvalidState(
            "this case has already been rated".into(),
        ));
    }
    let now = to_millis(ctx.now);
    let mut c = case.clone();
    c.rating = Some(rating);
    c.rating_comment = comment.map(str::to_string);
    c.feedback_count += 1;
    c.awaiting_feedback = false;
    let mut details = Map::new();
    details.insert("rating".into(), json!(rating));
    details.insert("comment".into(), json!(comment));
    let fb = finish(case, &mut c, "feedback", details, actor, now, ctx);
    let mut events = vec![fb];

    if rating == Rating::Unsatisfied
        && ctx.policy.reopen_on_unsatisfied
        && case.reopen_count < ctx.policy.max_reopens
    {
        let rated = c.clone();
        c.reopen_count += 1;
        c.rework_count += 1;
        c.closed_at = None;
        c.closed_on_time = None;
        c.replied_at = None;
        // A new round: the escalation ladder starts again from the bottom.
        c.escalation_level = 0;
        c.last_escalated_at = None;
        c.overdue = false;
        c.overdue_since = None;
        hand_over(&mut c, now, ctx);
        let days = case
            .difficulty
            .map_or(ctx.policy.simple_days, |d| ctx.policy.days_for(d));
        c.deadline = Some(ctx.calendar.add_working_days(now, days));
        let mut details = Map::new();
        details.insert("reason".into(), json!("unsatisfied"));
        details.insert("org".into(), json!(c.org));
        let reopen = finish(&rated, &mut c, "reopen", details, &Actor::System, now, ctx);
        events.push(reopen);
    }
    Ok(Decision::new(Some(case), c, events, ctx.calendar))
}

/// An explicit reveal of the reporter's personal data: allowed roles only, always on the
/// timeline. The case itself does not change (its version stays).
pub fn reveal(case: &Case, actor: &Actor, now: DateTime<Utc>) -> Result<Decision, DomainError> {
    let u = actor
        .user()
        .ok_or_else(|| DomainError::Forbidden("only staff may reveal".into()))?;
    if !u.role.may_reveal() {
        return Err(DomainError::Forbidden(format!(
            "a {} may not see reporters' personal data",
            u.role.as_str()
        )));
    }
    let details = json!({ "fields": ["reporter.name", "reporter.phone"] });
    Ok(Decision {
        case: case.clone(),
        events: vec![NewEvent::new("reveal", actor, to_millis(now), details)],
        measures: MeasureDelta::default(),
    })
}

/// A problem fixed where it was found (当场整改): reported and closed in one step by the
/// grid worker, volunteer or inspector who found it, with the result as evidence. It counts
/// as received and closed on time.
pub fn close_on_the_spot(
    case: &Case,
    result: &str,
    attachments: &[String],
    actor: &Actor,
    ctx: &Ctx,
) -> Result<Decision, DomainError> {
    let u = actor
        .user()
        .ok_or_else(|| DomainError::Forbidden("only staff fix on the spot".into()))?;
    if case.status != Status::Reported || case.created_by.as_deref() != Some(u.username.as_str()) {
        return Err(DomainError::InvalidState(
            "only a fresh report of your own can be closed on the spot".into(),
        ));
    }
    check_text("result", result, TEXT_MAX, true)?;
    let now = to_millis(ctx.now);
    let mut c = case.clone();
    c.accepted_at = Some(now);
    c.handling_mode = Some(HandlingMode::Immediate);
    c.difficulty = Some(Difficulty::Simple);
    c.deadline = Some(now);
    c.result = Some(result.to_string());
    c.result_attachments = attachments.to_vec();
    c.replied_at = Some(now);
    close(&mut c, now);
    let mut details = Map::new();
    details.insert("on_the_spot".into(), json!(true));
    details.insert("result".into(), json!(result));
    details.insert("attachments".into(), json!(attachments));
    let event = finish(case, &mut c, "close", details, actor, now, ctx);
    Ok(Decision::new(Some(case), c, vec![event], ctx.calendar))
}

/// Another report of the same thing (a camera raising the same alert again) joins the open
/// case instead of opening a new one.
pub fn record_repeat(
    case: &Case,
    details: Value,
    actor: &Actor,
    ctx: &Ctx,
) -> Result<Decision, DomainError> {
    if !case.status.is_open() {
        return Err(DomainError::InvalidState(
            "the case is no longer open".into(),
        ));
    }
    let now = to_millis(ctx.now);
    let mut c = case.clone();
    c.repeats += 1;
    let mut d = Map::new();
    d.insert("report".into(), details);
    let event = finish(case, &mut c, "repeat", d, actor, now, ctx);
    Ok(Decision::new(Some(case), c, vec![event], ctx.calendar))
}

#[cfg(test)]
mod diff_tests {
    use super::*;
    use crate::calendar::CalendarYear;
    use crate::role::UserActor;
    use chrono::{Duration, TimeZone};

    const STREET: &str = "/330782/330782003/";
    const COMMUNITY: &str = "/330782/330782003/330782003001/";
    const GRID: &str = "/330782/330782003/330782003001/33078200300101/";
    const DEPT: &str = "/330782/330782003/330782003D01/";

    fn cal() -> Calendar {
        let mut c = Calendar::default();
        c.load_year(&CalendarYear::parse(include_str!("../../../calendars/2026.json")).unwrap());
        c
    }

    fn org(path: &str) -> OrgRef {
        OrgRef::new(crate::org::last_code(path), path)
    }

    fn user(role: Role, path: &str) -> Actor {
        Actor::User(UserActor {
            username: format!("{}@{path}", role.as_str()),
            role,
            org: org(path),
        })
    }

    /// A case reported with every optional input set.
    fn full_case(cal: &Calendar, policy: &Policy, now: DateTime<Utc>) -> Case {
        let input = NewCase {
            channel: Some(Channel::TowerGroup),
            title: "护栏破损".into(),
            description: "小区门口护栏破损".into(),
            category: None,
            location: Some(Location {
                lat: 29.28,
                lng: 120.05,
            }),
            address: Some("稠江街道锦都社区".into()),
            reporter: Reporter {
                name: Some("王五".into()),
                phone: Some("13800001111".into()),
            },
            attachments: vec!["a.jpg".into()],
            crs: Some(Crs::Gcj02),
            source_key: Some("camera-1/fire".into()),
            visit_id: Some(7),
            relay: Some(Relay {
                tower_group: "T1".into(),
                commander: "李四".into(),
                resident_name: None,
            }),
            attributes: Some(json!({"alert": "fire", "n": 1.5})),
        };
        let ctx = Ctx {
            now,
            calendar: cal,
            policy,
        };
        let mut c = new_case(input, &user(Role::Handler, GRID), &org(GRID), &ctx)
            .unwrap()
            .case;
        c.id = 1;
        c
    }

    /// Keys of a JSON object in document order (serde_json's `Map` may sort them).
    fn keys_in_order(text: &str) -> Vec<String> {
        struct Keys(Vec<String>);
        impl<'de> Deserialize<'de> for Keys {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Keys;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> Result<Keys, A::Error> {
                        let mut keys = Vec::new();
                        while let Some(k) = m.next_key::<String>()? {
                            m.next_value::<serde::de::IgnoredAny>()?;
                            keys.push(k);
                        }
                        Ok(Keys(keys))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_str::<Keys>(text).unwrap().0
    }

    #[test]
    fn diff_names_every_serialized_key_in_order() {
        let (cal, policy) = (cal(), Policy::default());
        let now = Utc.with_ymd_and_hms(2026, 9, 28, 1, 0, 0).unwrap();
        let keys = keys_in_order(&serde_json::to_string(&full_case(&cal, &policy, now)).unwrap());
        let compared: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| !DIFF_SKIPPED.contains(k))
            .collect();
        // The same names in the order serde writes them, so that the output is the same
        // whether or not serde_json keeps insertion order (`preserve_order`).
        assert_eq!(compared, DIFF_FIELDS);
        for k in DIFF_SKIPPED {
            assert!(keys.iter().any(|key| key == k), "{k} is not a key of Case");
        }
        assert_eq!(keys.len(), DIFF_FIELDS.len() + DIFF_SKIPPED.len());
    }

    /// Every field changed alone, to a value of another case: `diff` sees it (or skips
    /// it) exactly as the JSON diff does.
    #[test]
    fn each_field_alone() {
        let (cal, policy) = (cal(), Policy::default());
        let now = Utc.with_ymd_and_hms(2026, 9, 28, 1, 0, 0).unwrap();
        let a = full_case(&cal, &policy, now);
        // Another case with every field different from `a`'s.
        let b = Case {
            id: 2,
            number: "20260929-000002".into(),
            status: Status::Closed,
            version: 9,
            channel: Channel::Hotline,
            title: "路灯不亮".into(),
            description: "路灯坏了".into(),
            category: Some("public_facilities".into()),
            location: Some(Location {
                lat: 29.3,
                lng: -0.0,
            }),
            address: None,
            area_org: "330782003002".into(),
            area_path: "/330782/330782003/330782003002/".into(),
            org: "330782003D01".into(),
            org_path: DEPT.into(),
            centre_org: None,
            centre_path: Some(STREET.into()),
            handling_mode: Some(HandlingMode::ALL[1]),
            difficulty: Some(Difficulty::ALL[2]),
            reporter: Reporter::default(),
            created_by: None,
            attachments: vec![],
            created_at: now + Duration::days(1),
            updated_at: now + Duration::days(2),
            accepted_at: Some(now),
            dispatched_at: Some(now),
            deadline: Some(now),
            claim_deadline: Some(now),
            claim_reminded: true,
            overdue: true,
            overdue_since: Some(now),
            escalation_level: 2,
            last_escalated_at: Some(now),
            last_supervised_at: Some(now),
            supervise_count: 3,
            pending_extension: Some(ExtensionRequest {
                days: 2,
                reason: "需协调".into(),
                requested_by: "x".into(),
                requested_at: now,
            }),
            extension_days: 4,
            result: Some("已处理".into()),
            result_attachments: vec!["b.jpg".into()],
            replied_at: Some(now),
            closed_at: Some(now),
            closed_on_time: Some(false),
            rework_count: 1,
            reopen_count: 1,
            awaiting_feedback: !a.awaiting_feedback,
            feedback_count: 1,
            rating: Some(Rating::Unsatisfied),
            rating_comment: Some("慢".into()),
            merged_into: Some(5),
            reject_reason: Some("重复".into()),
            due_at: Some(now + Duration::days(3)),
            crs: None,
            source_key: None,
            repeats: 3,
            visit_id: None,
            relay: None,
            attributes: Some(Value::Null),
        };
        let (Value::Object(av), Value::Object(bv)) = (
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&b).unwrap(),
        ) else {
            unreachable!()
        };
        for (k, v) in &bv {
            let mut mixed = av.clone();
            mixed.insert(k.clone(), v.clone());
            let c: Case = serde_json::from_value(Value::Object(mixed)).unwrap();
            let d = diff(&a, &c);
            assert_eq!(d, diff_via_json(&a, &c), "{k}");
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                serde_json::to_string(&diff_via_json(&a, &c)).unwrap()
            );
            if DIFF_SKIPPED.contains(&k.as_str()) || av[k] == *v {
                assert!(d.is_empty(), "{k}: {d:?}");
            } else {
                assert_eq!(d.len(), 1, "{k}: {d:?}");
                assert_eq!(d[k], json!([av[k], v]), "{k}");
            }
        }
        // `null` attributes serialize as `None` does: no change.
        let mut c = a.clone();
        c.attributes = None;
        let mut e = a.clone();
        e.attributes = Some(Value::Null);
        assert!(diff(&c, &e).is_empty());
        assert_eq!(diff(&a, &b), diff_via_json(&a, &b));
        assert_eq!(diff(&b, &a), diff_via_json(&b, &a));
    }

    /// Cases walked through pseudo-random decisions, sweeps and feedback: the field-wise
    /// diff equals the JSON diff at every step and between pairs of the states met.
    #[test]
    fn matches_the_json_diff_on_walked_cases() {
        let (cal, policy) = (cal(), Policy::default());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let places = [STREET, COMMUNITY, GRID, DEPT];
        let roles = [Role::Dispatcher, Role::Handler, Role::Leader, Role::Admin];
        let mut states: Vec<Case> = Vec::new();
        for walk in 0..60 {
            let mut now =
                Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap() + Duration::hours(walk * 37);
            let mut case = full_case(&cal, &policy, now);
            if walk % 2 == 0 {
                // A resident's bare report as well.
                case.relay = None;
                case.attributes = None;
                case.location = None;
            }
            states.push(case.clone());
            for _ in 0..60 {
                now += Duration::minutes(1 + next(3000) as i64);
                let ctx = Ctx {
                    now,
                    calendar: &cal,
                    policy: &policy,
                };
                let target = places[1 + next(3)];
                let action = match next(14) {
                    0 => Action::Accept {
                        handling_mode: HandlingMode::ALL[next(HandlingMode::ALL.len())],
                        difficulty: Difficulty::ALL[next(Difficulty::ALL.len())],
                        category: Some("public_facilities".into()),
                    },
                    1 => Action::Reject {
                        reason: "重复".into(),
                    },
                    2 | 3 => Action::Dispatch {
                        org: crate::org::last_code(target).into(),
                        note: None,
                    },
                    4 | 5 => Action::Claim {},
                    6 => Action::Return {
                        reason: "非本网格事项".into(),
                    },
                    7 => Action::RequestExtension {
                        days: 1 + next(4) as u32,
                        reason: "需协调".into(),
                    },
                    8 => Action::DecideExtension {
                        approved: next(2) == 0,
                        note: None,
                    },
                    9 => Action::Reply {
                        result: "已处理".into(),
                        attachments: vec!["r.jpg".into()],
                    },
                    10 => Action::Verify {
                        passed: next(3) > 0,
                        note: None,
                    },
                    11 => Action::Escalate {
                        reason: "无法解决".into(),
                    },
                    12 => Action::Supervise {
                        note: "请加快".into(),
                    },
                    _ => Action::Close {
                        note: "已解释".into(),
                    },
                };
                let level = match target {
                    GRID => Level::Grid,
                    DEPT => Level::Department,
                    _ => Level::Community,
                };
                let resolved = Resolved {
                    target: Some((org(target), level)),
                    merge_into: None,
                };
                // Mostly whoever acts on the case in its status, sometimes anyone.
                let actor = match (next(4), case.status) {
                    (0, _) => user(roles[next(roles.len())], places[next(places.len())]),
                    (_, Status::Reported | Status::Accepted | Status::Replied) => {
                        user(Role::Dispatcher, STREET)
                    }
                    _ => user(Role::Handler, &case.org_path.clone()),
                };
                let d = match next(6) {
                    0 => crate::sweep::sweep(&case, &ctx).ok_or(()),
                    1 => feedback(
                        &case,
                        Rating::ALL[next(3)],
                        Some("好"),
                        &Actor::Resident,
                        &ctx,
                    )
                    .map_err(|_| ()),
                    _ => decide(&case, &action, &actor, &resolved, &ctx).map_err(|_| ()),
                };
                if let Ok(d) = d {
                    assert_eq!(diff(&case, &d.case), diff_via_json(&case, &d.case));
                    case = d.case;
                    states.push(case.clone());
                }
            }
        }
        assert!(states.len() > 300, "{} states", states.len());
        let statuses: std::collections::HashSet<Status> = states.iter().map(|c| c.status).collect();
        assert!(statuses.len() >= 6, "{statuses:?}");
        // Pairs across walks too (a sample: the JSON oracle is slow in debug builds).
        for (i, a) in states.iter().enumerate() {
            for b in states.iter().skip(i % 31).step_by(31) {
                let d = diff(a, b);
                assert_eq!(d, diff_via_json(a, b));
            }
        }
    }
}
