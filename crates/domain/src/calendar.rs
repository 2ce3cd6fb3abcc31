//! Working days and working hours.
//!
//! Deadlines are counted in working days (工作日): weekends and public holidays do not
//! count, make-up working days (调休上班) do. Which days are which is *data* — one
//! [`CalendarYear`] per year, shipped in `calendars/` and loadable by admins — never code.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// One year's official arrangement (国务院办公厅节假日安排).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarYear {
    pub year: i32,
    #[serde(default)]
    pub source: String,
    /// Days off that would otherwise be working days (or are weekend days inside a holiday).
    pub holidays: Vec<NamedDay>,
    /// Weekend days that are working days (调休上班).
    #[serde(default)]
    pub workdays: Vec<NamedDay>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedDay {
    pub date: NaiveDate,
    #[serde(default)]
    pub name: String,
}

impl CalendarYear {
    /// Parses and checks a year file: every date inside the year, no day both off and on.
    pub fn parse(json: &str) -> Result<CalendarYear, DomainError> {
        let y: CalendarYear = serde_json::from_str(json)
            .map_err(|e| DomainError::invalid("calendar", format!("not a calendar year: {e}")))?;
        y.validate()?;
        Ok(y)
    }

    pub fn validate(&self) -> Result<(), DomainError> {
        let mut seen = HashSet::new();
        for d in self.holidays.iter().chain(&self.workdays) {
            if d.date.year() != self.year {
                return Err(DomainError::invalid(
                    "calendar",
                    format!("{} is not in {}", d.date, self.year),
                ));
            }
            if !seen.insert(d.date) {
                return Err(DomainError::invalid(
                    "calendar",
                    format!("{} is listed twice", d.date),
                ));
            }
        }
        Ok(())
    }
}

/// The deployment's calendar: time zone, working days, working hours.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub tz: Tz,
    holidays: HashSet<NaiveDate>,
    workdays: HashSet<NaiveDate>,
    years: BTreeMap<i32, String>,
    pub work_start: NaiveTime,
    pub work_end: NaiveTime,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar::new(chrono_tz::Asia::Shanghai)
    }
}

impl Calendar {
    /// A calendar with only weekends off; add years with [`Calendar::load_year`].
    /// Working hours default to 08:30–17:30.
    pub fn new(tz: Tz) -> Self {
        Calendar {
            tz,
            holidays: HashSet::new(),
            workdays: HashSet::new(),
            years: BTreeMap::new(),
            work_start: NaiveTime::from_hms_opt(8, 30, 0).expect("valid time"),
            work_end: NaiveTime::from_hms_opt(17, 30, 0).expect("valid time"),
        }
    }

    /// Adds (or replaces) one year's arrangement.
    pub fn load_year(&mut self, year: &CalendarYear) {
        self.holidays.retain(|d| d.year() != year.year);
        self.workdays.retain(|d| d.year() != year.year);
        self.holidays.extend(year.holidays.iter().map(|d| d.date));
        self.workdays.extend(year.workdays.iter().map(|d| d.date));
        self.years.insert(year.year, year.source.clone());
    }

    /// Years with an official arrangement loaded. Outside them only weekends are off.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.keys().copied()
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.workdays.contains(&d) {
            return true;
        }
        if self.holidays.contains(&d) {
            return false;
        }
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The local calendar date of an instant.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    fn to_utc(&self, d: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let naive = d.and_time(time);
        match self.tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            // A wall-clock time skipped by a DST change: take the instant an hour later.
            chrono::LocalResult::None => self.to_utc(d, time + Duration::hours(1)),
        }
    }

    /// "N working days later": the same local clock time on the N-th working day after the
    /// start's date. Zero returns the start itself.
    pub fn add_working_days(&self, start: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        if n == 0 {
            return start;
        }
        let local = start.with_timezone(&self.tz);
        let mut date = local.date_naive();
        let mut counted = 0;
        while counted < n {
            date = date.succ_opt().expect("date in range");
            if self.is_working_day(date) {
                counted += 1;
            }
        }
        self.to_utc(date, local.time())
    }

    /// Adds working hours, counting only the working-hours window of working days.
    pub fn add_working_hours(&self, start: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
        let mut remaining = Duration::hours(i64::from(hours));
        let local = start.with_timezone(&self.tz);
        let mut date = local.date_naive();
        let mut cursor = local.naive_local();
        // A year of holidays in a row is impossible; the bound only guards against a
        // malformed calendar that declares every day off.
        for _ in 0..3660 {
            if self.is_working_day(date) {
                let open = date.and_time(self.work_start);
                let shut = date.and_time(self.work_end);
                if cursor < open {
                    cursor = open;
                }
                if cursor < shut {
                    let available = shut - cursor;
                    if remaining <= available {
                        let end = cursor + remaining;
                        return self.to_utc(end.date(), end.time());
                    }
                    remaining -= available;
                }
            }
            date = date.succ_opt().expect("date in range");
            cursor = date.and_time(NaiveTime::MIN);
        }
        start + Duration::hours(i64::from(hours))
    }

    /// Working days strictly after `from`'s date up to and including `to`'s date.
    pub fn working_days_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
        let mut d = self.local_date(from);
        let end = self.local_date(to);
        let mut n = 0;
        while d < end {
            d = d.succ_opt().expect("date in range");
            if self.is_working_day(d) {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal2026() -> Calendar {
        let mut c = Calendar::default();
        c.load_year(
            &CalendarYear::parse(include_str!("../../../calendars/2026.json"))
                .expect("2026 parses"),
        );
        c.load_year(
            &CalendarYear::parse(include_str!("../../../calendars/2025.json"))
                .expect("2025 parses"),
        );
        c
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn ordinary_week() {
        let c = cal2026();
        // Tue 2026-11-24 10:00 +08:00 → Wed.
        assert_eq!(
            c.add_working_days(at("2026-11-24T10:00:00+08:00"), 1),
            at("2026-11-25T10:00:00+08:00")
        );
        // Fri → Mon, 3 days → Wed.
        assert_eq!(
            c.add_working_days(at("2026-11-27T16:00:00+08:00"), 1),
            at("2026-11-30T16:00:00+08:00")
        );
        assert_eq!(
            c.add_working_days(at("2026-11-27T16:00:00+08:00"), 3),
            at("2026-12-02T16:00:00+08:00")
        );
        // Started on a Saturday: Monday is the first working day.
        assert_eq!(
            c.add_working_days(at("2026-11-28T09:00:00+08:00"), 1),
            at("2026-11-30T09:00:00+08:00")
        );
    }

    #[test]
    fn national_day_and_makeup_days() {
        let c = cal2026();
        // Sun 2026-09-20 is a make-up working day; Oct 1–7 are off; Sat Oct 10 is worked.
        assert!(c.is_working_day(NaiveDate::from_ymd_opt(2026, 9, 20).unwrap()));
        assert!(!c.is_working_day(NaiveDate::from_ymd_opt(2026, 10, 5).unwrap()));
        assert!(c.is_working_day(NaiveDate::from_ymd_opt(2026, 10, 10).unwrap()));
        // Wed Sep 30 + 1 working day skips the whole holiday: Thu Oct 8.
        assert_eq!(
            c.add_working_days(at("2026-09-30T11:00:00+08:00"), 1),
            at("2026-10-08T11:00:00+08:00")
        );
        // Wed Sep 30 + 3: Oct 8, Oct 9, Sat Oct 10 (调休).
        assert_eq!(
            c.add_working_days(at("2026-09-30T11:00:00+08:00"), 3),
            at("2026-10-10T11:00:00+08:00")
        );
        // Sat Sep 19 + 1 is the make-up Sunday Sep 20.
        assert_eq!(
            c.add_working_days(at("2026-09-19T11:00:00+08:00"), 1),
            at("2026-09-20T11:00:00+08:00")
        );
    }

    #[test]
    fn spring_festival_across_years() {
        let c = cal2026();
        // 2026 春节: Feb 15–23 off, Sat Feb 14 and Sat Feb 28 worked.
        assert_eq!(
            c.add_working_days(at("2026-02-13T09:00:00+08:00"), 1),
            at("2026-02-14T09:00:00+08:00")
        );
        assert_eq!(
            c.add_working_days(at("2026-02-14T09:00:00+08:00"), 1),
            at("2026-02-24T09:00:00+08:00")
        );
        // 2025-12-31 (Wed) + 1: Jan 1–3 off, Sun Jan 4 worked.
        assert_eq!(
            c.add_working_days(at("2025-12-31T15:00:00+08:00"), 1),
            at("2026-01-04T15:00:00+08:00")
        );
        // Year without data: weekends only.
        assert!(c.is_working_day(NaiveDate::from_ymd_opt(2030, 1, 2).unwrap()));
        assert!(!c.is_working_day(NaiveDate::from_ymd_opt(2030, 1, 5).unwrap()));
    }

    #[test]
    fn working_hours() {
        let c = cal2026();
        // 16:30 + 2h: one hour today (to 17:30), one tomorrow from 08:30.
        assert_eq!(
            c.add_working_hours(at("2026-11-24T16:30:00+08:00"), 2),
            at("2026-11-25T09:30:00+08:00")
        );
        // Friday evening → Monday morning.
        assert_eq!(
            c.add_working_hours(at("2026-11-27T20:00:00+08:00"), 2),
            at("2026-11-30T10:30:00+08:00")
        );
        // Inside the window.
        assert_eq!(
            c.add_working_hours(at("2026-11-24T09:00:00+08:00"), 2),
            at("2026-11-24T11:00:00+08:00")
        );
    }

    #[test]
    fn bad_year_files() {
        assert!(CalendarYear::parse("{}").is_err());
        assert!(
            CalendarYear::parse(r#"{"year":2026,"holidays":[{"date":"2025-01-01"}]}"#).is_err()
        );
        assert!(CalendarYear::parse(
            r#"{"year":2026,"holidays":[{"date":"2026-01-01"}],"workdays":[{"date":"2026-01-01"}]}"#
        )
        .is_err());
    }
}
