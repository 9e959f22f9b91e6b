//! CronJob schedules as the Kubernetes controller reads them (robfig/cron's
//! standard parser): five fields, names (JAN, MON), ranges, steps, `?`, the
//! `@hourly`…`@yearly` descriptors, and the rule that when both day fields
//! are restricted a day matches either of them. Evaluated in the CronJob's
//! `spec.timeZone` through jiff's zone database.
//!
//! Why not a crate: the jiff-based cron crates parse the Quartz dialect
//! (seconds field, 1 = Sunday, both day fields ANDed), which would put
//! Kubernetes schedules on the wrong days.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_star: bool,
    weekdays_star: bool,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses one field into a bit set over `min..=max`; also whether it began
/// with `*` or `?` (robfig's "star bit"). `open_max` is where `*` and `a/n`
/// end (6 for weekdays, whose 7 is another name for Sunday).
fn field(
    text: &str,
    (min, max, open_max): (u32, u32, u32),
    names: &[&str],
    what: &str,
) -> Result<(u64, bool), String> {
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + if names.len() == 12 { 1 } else { 0 });
        }
        s.parse::<u32>()
            .map_err(|_| format!("{what}: {s:?} is not a number or name"))
    };
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(
                    s.parse::<u32>()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!("{what}: bad step in {part:?}"))?,
                ),
            ),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            // As robfig/cron: `*/n` with n > 1 is a list, not a star, so
            // day-of-month and day-of-week then combine with OR.
            star |= step.is_none_or(|s| s == 1);
            (min, open_max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step.is_some() { open_max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!(
                "{what}: {part:?} is outside {min}-{max} or reversed"
            ));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step.unwrap_or(1);
        }
    }
    Ok((bits, star))
}

impl Schedule {
    /// Parses a CronJob `spec.schedule`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
            return Err(
                "time zones inside the schedule are not supported by Kubernetes; use spec.timeZone"
                    .into(),
            );
        }
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t if t.starts_with('@') => return Err(format!("unknown descriptor {t:?}")),
            t => t,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields.as_slice() else {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                fields.len()
            ));
        };
        let (minutes, _) = field(m, (0, 59, 59), &[], "minute")?;
        let (hours, _) = field(h, (0, 23, 23), &[], "hour")?;
        let (days, days_star) = field(dom, (1, 31, 31), &[], "day of month")?;
        let (months, _) = field(mon, (1, 12, 12), MONTHS, "month")?;
        let (mut weekdays, weekdays_star) = field(dow, (0, 7, 6), WEEKDAYS, "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        Ok(Self {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_star,
            weekdays_star,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first run strictly after `after`, in `tz`; `None` if there is none
    /// within five years (e.g. 30 February).
    ///
    /// A port of robfig/cron v3's `SpecSchedule.Next`, which the CronJob
    /// controller calls, so that DST reads the same: hours and minutes
    /// advance in absolute time, so a run in an hour that spring-forward
    /// skips does not happen that day, and a run in the hour that fall-back
    /// repeats happens in both copies of it.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let at = |d: DateTime| tz.to_ambiguous_zoned(d).compatible().ok();
        let start = after.to_zoned(tz.clone());
        // The upcoming second.
        let mut t = start
            .checked_sub(jiff::Span::new().nanoseconds(start.subsec_nanosecond()))
            .ok()?
            .checked_add(1.second())
            .ok()?;
        let mut added = false;
        let year_limit = t.year() + 5;
        'wrap: loop {
            if t.year() > year_limit {
                return None;
            }
            while self.months & (1 << t.month()) == 0 {
                if !added {
                    added = true;
                    t = at(t.date().first_of_month().to_datetime(Time::midnight()))?;
                }
                t = t.checked_add(1.month()).ok()?;
                if t.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(t.date()) {
                if !added {
                    added = true;
                    t = at(t.date().to_datetime(Time::midnight()))?;
                }
                t = t.checked_add(1.day()).ok()?;
                // A DST change at midnight moves the wall clock: back to midnight.
                let h = i64::from(t.hour());
                if h != 0 {
                    t = if h > 12 {
                        t.checked_add((24 - h).hours()).ok()?
                    } else {
                        t.checked_sub(h.hours()).ok()?
                    };
                }
                if t.day() == 1 {
                    continue 'wrap;
                }
            }
            while self.hours & (1 << t.hour()) == 0 {
                if !added {
                    added = true;
                    t = at(t.date().to_datetime(Time::new(t.hour(), 0, 0, 0).ok()?))?;
                }
                t = t.checked_add(1.hour()).ok()?;
                if t.hour() == 0 {
                    continue 'wrap;
                }
            }
            while self.minutes & (1 << t.minute()) == 0 {
                if !added {
                    added = true;
                    t = t.checked_sub(jiff::Span::new().seconds(t.second())).ok()?;
                }
                t = t.checked_add(1.minute()).ok()?;
                if t.minute() == 0 {
                    continue 'wrap;
                }
            }
            // Kubernetes schedules have no seconds field: second 0, reached
            // from a start time within a matching minute.
            if t.second() != 0 {
                added = true;
                t = t.checked_add((60 - i64::from(t.second())).seconds()).ok()?;
                continue 'wrap;
            }
            return Some(t.timestamp());
        }
    }

    /// The last run at or before `at`, searching back at most `horizon` seconds.
    pub fn last_at_or_before(
        &self,
        at: Timestamp,
        tz: &TimeZone,
        horizon: i64,
    ) -> Option<Timestamp> {
        let start = Timestamp::from_second(at.as_second() - horizon).ok()?;
        let mut cur = self.next_after(start, tz)?;
        if cur > at {
            return None;
        }
        while let Some(n) = self.next_after(cur, tz) {
            if n > at {
                break;
            }
            cur = n;
        }
        Some(cur)
    }

    /// The longest gap between the next `n` runs after `after` (seconds): the
    /// interval an "overdue" verdict compares against.
    pub fn longest_interval(&self, after: Timestamp, tz: &TimeZone, n: usize) -> Option<i64> {
        let mut prev = self.next_after(after, tz)?;
        let mut longest = 0;
        for _ in 0..n {
            let next = self.next_after(prev, tz)?;
            longest = longest.max(next.as_second() - prev.as_second());
            prev = next;
        }
        Some(longest)
    }
}

/// A time zone by IANA name. UTC (the default of `--cron-time-zone`) needs
/// no database: opening one walks /usr/share/zoneinfo, milliseconds that
/// every CLI process would pay at start-up.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn next(expr: &str, tz: &str, after: &str) -> String {
        let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let z = zone(tz).unwrap_or_else(|e| panic!("{e}"));
        s.next_after(ts(after), &z)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    const NOW: &str = "2026-08-20T06:07:00Z";

    #[test]
    fn homelab_schedules() {
        assert_eq!(next("0 2 * * 0", "UTC", NOW), "2026-08-23T02:00:00Z");
        assert_eq!(next("0 4 * * 0", "UTC", NOW), "2026-08-23T04:00:00Z");
        assert_eq!(next("*/15 * * * *", "UTC", NOW), "2026-08-20T06:15:00Z");
        assert_eq!(next("0 6 * * 1", "UTC", NOW), "2026-08-24T06:00:00Z");
        // 17:00 in New York during daylight time is 21:00 UTC.
        assert_eq!(
            next("0 17 * * *", "America/New_York", NOW),
            "2026-08-20T21:00:00Z"
        );
        assert_eq!(
            next("0 19 * * *", "America/New_York", NOW),
            "2026-08-20T23:00:00Z"
        );
        // Saturday 06:00 in Chicago (CDT, UTC-5).
        assert_eq!(
            next("0 6 * * 6", "America/Chicago", NOW),
            "2026-08-22T11:00:00Z"
        );
        // Winter: New York is UTC-5.
        assert_eq!(
            next("0 17 * * *", "America/New_York", "2026-12-01T00:00:00Z"),
            "2026-12-01T22:00:00Z"
        );
    }

    #[test]
    fn syntax() {
        assert_eq!(next("@weekly", "UTC", NOW), "2026-08-23T00:00:00Z");
        assert_eq!(next("@hourly", "UTC", NOW), "2026-08-20T07:00:00Z");
        // `*/2` is not a star: odd days OR Mondays (robfig), so Friday the
        // 21st, not the first odd Monday (the 31st).
        assert_eq!(next("0 3 */2 * 1", "UTC", NOW), "2026-08-21T03:00:00Z");
        assert_eq!(next("30 9 * * MON-FRI", "UTC", NOW), "2026-08-20T09:30:00Z");
        assert_eq!(next("0 0 1 JAN *", "UTC", NOW), "2027-01-01T00:00:00Z");
        assert_eq!(next("0 0 * * 7", "UTC", NOW), "2026-08-23T00:00:00Z");
        assert_eq!(next("5/20 * * * *", "UTC", NOW), "2026-08-20T06:25:00Z");
        assert_eq!(next("0 12 ? * *", "UTC", NOW), "2026-08-20T12:00:00Z");
        // Both day fields restricted: either matches (the 1st, or a Monday).
        assert_eq!(next("0 0 1 * 1", "UTC", NOW), "2026-08-24T00:00:00Z");
        // One restricted with a star: both must match (a Monday the 1st).
        assert_eq!(
            next("0 0 1 * MON", "UTC", "2026-08-01T00:00:00Z"),
            "2026-08-03T00:00:00Z"
        );
        assert_eq!(next("0 0 */1 * MON", "UTC", NOW), "2026-08-24T00:00:00Z");
        assert_eq!(next("0 0 30 2 *", "UTC", NOW), "");
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* 24 * * *",
            "0 0 * * FOO",
            "*/0 * * * *",
            "@every 5m",
            "TZ=UTC 0 0 * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn intervals_and_last_run() {
        let s = Schedule::parse("0 2 * * 0").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.longest_interval(ts(NOW), &TimeZone::UTC, 3),
            Some(7 * 86_400)
        );
        assert_eq!(
            s.last_at_or_before(ts(NOW), &TimeZone::UTC, 14 * 86_400)
                .map(|t| t.to_string()),
            Some("2026-08-16T02:00:00Z".into())
        );
    }

    #[test]
    fn dst_reads_as_the_cronjob_controller_reads_it() {
        // Spring forward (New York, 2026-03-08): 02:00–02:59 do not exist;
        // robfig/cron, and so the controller, skips that day's 02:30 run.
        assert_eq!(
            next("30 2 * * *", "America/New_York", "2026-03-08T06:00:00Z"),
            "2026-03-09T06:30:00Z"
        );
        // Fall back (2026-11-01): 01:30 happens twice, and so does the run.
        assert_eq!(
            next("30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z"),
            "2026-11-01T05:30:00Z"
        );
        assert_eq!(
            next("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z"),
            "2026-11-01T06:30:00Z"
        );
        assert_eq!(
            next("30 1 * * *", "America/New_York", "2026-11-01T06:30:00Z"),
            "2026-11-02T06:30:00Z"
        );
        // Hourly runs keep one hour apart in absolute time across both changes.
        assert_eq!(
            next("0 * * * *", "America/New_York", "2026-03-08T06:30:00Z"),
            "2026-03-08T07:00:00Z"
        );
        // Runs outside the changed hour are unaffected.
        assert_eq!(
            next("0 4 * * *", "America/New_York", "2026-03-08T06:00:00Z"),
            "2026-03-08T08:00:00Z"
        );
    }
}
