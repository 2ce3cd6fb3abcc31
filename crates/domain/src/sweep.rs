//! What the overdue sweep does to a case whose `due_at` has come (督办 and 上报).
//!
//! The store hands over only cases that are due (an index on `due_at`); this module decides
//! for one of them. Several steps may fall due at once (a case unswept for days): each pass
//! takes every step that is due, in order, each with its own event.

use serde_json::{Map, json};

use crate::case::{Case, Ctx, Decision, Status, escalate, finish};
use crate::policy::escalates_in;
use crate::role::Actor;
use crate::to_millis;

/// Returns `None` when nothing is due (the case moved on since it was picked).
pub fn sweep(case: &Case, ctx: &Ctx) -> Option<Decision> {
    let now = to_millis(ctx.now);
    let policy = ctx.policy;
    let cal = ctx.calendar;
    let mut current = case.clone();
    let mut events = Vec::new();

    if !current.status.is_open() {
        return None;
    }

    // 1. Past the deadline: mark overdue, supervise once (超期自动督办).
    if let Some(deadline) = current.deadline
        && !current.overdue
        && deadline <= now
    {
        let before = current.clone();
        current.overdue = true;
        current.overdue_since = Some(deadline);
        current.supervise_count += 1;
        current.last_supervised_at = Some(now);
        let mut d = Map::new();
        d.insert("auto".into(), json!(true));
        d.insert("reason".into(), json!("overdue"));
        d.insert("note".into(), json!("超期自动督办"));
        events.push(finish(
            &before,
            &mut current,
            "supervise",
            d,
            &Actor::System,
            now,
            ctx,
        ));
    }

    // 2. Not claimed in time (签收超时).
    if current.status == Status::Dispatched
        && !current.claim_reminded
        && current.claim_deadline.is_some_and(|t| t <= now)
    {
        let before = current.clone();
        current.claim_reminded = true;
        current.supervise_count += 1;
        current.last_supervised_at = Some(now);
        let mut d = Map::new();
        d.insert("auto".into(), json!(true));
        d.insert("reason".into(), json!("claim_overdue"));
        d.insert("note".into(), json!("签收超时督办"));
        events.push(finish(
            &before,
            &mut current,
            "supervise",
            d,
            &Actor::System,
            now,
            ctx,
        ));
    }

    // 3. Overdue too long at this level: one step up the ladder.
    if escalates_in(current.status)
        && policy
            .next_escalation(cal, &current)
            .is_some_and(|t| t <= now)
    {
        let before = current.clone();
        if escalate(&mut current, now, ctx).is_ok() {
            let mut d = Map::new();
            d.insert("auto".into(), json!(true));
            d.insert("reason".into(), json!("overdue"));
            d.insert("org".into(), json!(current.org));
            events.push(finish(
                &before,
                &mut current,
                "escalate",
                d,
                &Actor::System,
                now,
                ctx,
            ));
        }
    }

    // 4. Still overdue a week after the last push: supervise again (滚动督办).
    if policy.next_supervision(&current).is_some_and(|t| t <= now) {
        let before = current.clone();
        current.supervise_count += 1;
        current.last_supervised_at = Some(now);
        let mut d = Map::new();
        d.insert("auto".into(), json!(true));
        d.insert("reason".into(), json!("still_overdue"));
        d.insert("note".into(), json!("滚动督办"));
        events.push(finish(
            &before,
            &mut current,
            "supervise",
            d,
            &Actor::System,
            now,
            ctx,
        ));
    }

    if events.is_empty() {
        // Nothing due after all; still refresh due_at so the case leaves the due set.
        let next = policy.next_due(cal, &current);
        if next == case.due_at {
            return None;
        }
        current.due_at = next;
        return Some(Decision::new(Some(case), current, events, cal));
    }
    // Several steps in one pass count as one new version of the case.
    current.version = case.version + 1;
    Some(Decision::new(Some(case), current, events, cal))
}
