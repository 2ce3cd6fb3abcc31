//! The deployment's rules for time: the 135 deadlines, the claim deadline, supervision and
//! the escalation ladder. Values are configuration; how they apply is here.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::case::{Case, Difficulty, Status};
use crate::org::parent_path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// 135销号制: working days to close a simple / difficult case, and to deliver a
    /// preliminary plan for one that cannot be solved now.
    pub simple_days: u32,
    pub difficult_days: u32,
    pub unsolvable_now_days: u32,
    /// Working hours the assigned org has to claim (签收) a dispatched case.
    pub claim_hours: u32,
    /// Working days an overdue case may stay at each level before it is escalated to the
    /// parent org: the first entry for the first move (e.g. grid → community), and so on.
    /// Past the end of the ladder the case stays where it is and is only supervised.
    pub escalation_ladder: Vec<u32>,
    /// Calendar days between repeated supervisions of a case still overdue (滚动督办).
    pub supervise_every_days: u32,
    /// Whether an `unsatisfied` rating on a closed case reopens it (重办), and how often.
    pub reopen_on_unsatisfied: bool,
    pub max_reopens: u32,
    /// The longest extension one request may ask for, in working days.
    pub max_extension_days: u32,
    /// Alerts of the same camera and type within this many minutes join one open case.
    pub camera_join_minutes: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            simple_days: 1,
            difficult_days: 3,
            unsolvable_now_days: 5,
            claim_hours: 2,
            escalation_ladder: vec![1, 2, 3],
            supervise_every_days: 7,
            reopen_on_unsatisfied: true,
            max_reopens: 1,
            max_extension_days: 10,
            camera_join_minutes: 30,
        }
    }
}

impl Policy {
    pub fn days_for(&self, d: Difficulty) -> u32 {
        match d {
            Difficulty::Simple => self.simple_days,
            Difficulty::Difficult => self.difficult_days,
            Difficulty::UnsolvableNow => self.unsolvable_now_days,
        }
    }

    pub fn deadline(&self, cal: &Calendar, from: DateTime<Utc>, d: Difficulty) -> DateTime<Utc> {
        cal.add_working_days(from, self.days_for(d))
    }

    pub fn claim_deadline(&self, cal: &Calendar, from: DateTime<Utc>) -> DateTime<Utc> {
        cal.add_working_hours(from, self.claim_hours)
    }

    /// When the escalation ladder next moves this (overdue) case up, if ever.
    pub fn next_escalation(&self, cal: &Calendar, case: &Case) -> Option<DateTime<Utc>> {
        if !case.overdue || !escalates_in(case.status) {
            return None;
        }
        let step = *self.escalation_ladder.get(case.escalation_level as usize)?;
        parent_path(&case.org_path)?;
        let since = match (case.overdue_since, case.last_escalated_at) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        Some(cal.add_working_days(since, step.max(1)))
    }

    pub fn next_supervision(&self, case: &Case) -> Option<DateTime<Utc>> {
        if !case.overdue || !case.status.is_open() {
            return None;
        }
        let last = case.last_supervised_at.or(case.overdue_since)?;
        Some(last + Duration::days(i64::from(self.supervise_every_days.max(1))))
    }

    /// The next instant at which the sweep must look at this case, or `None` when nothing
    /// can fall due (closed cases, cases without a deadline). Stores index this value so that
    /// a sweep pass reads only the cases that are due, never the whole open set.
    pub fn next_due(&self, cal: &Calendar, case: &Case) -> Option<DateTime<Utc>> {
        if !case.status.is_open() {
            return None;
        }
        let mut due: Option<DateTime<Utc>> = None;
        let mut consider = |t: Option<DateTime<Utc>>| {
            if let Some(t) = t {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        };
        if !case.overdue {
            consider(case.deadline);
        }
        if case.status == Status::Dispatched && !case.claim_reminded {
            consider(case.claim_deadline);
        }
        consider(self.next_escalation(cal, case));
        consider(self.next_supervision(case));
        due
    }
}

/// The sweep escalates only cases whose next step lies with an org. A replied case waits on
/// the centre's verification, which escalating to a parent org would not speed up.
pub fn escalates_in(s: Status) -> bool {
    matches!(
        s,
        Status::Accepted | Status::Dispatched | Status::InProgress
    )
}
