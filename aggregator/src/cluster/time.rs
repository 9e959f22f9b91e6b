//! Timestamps as Kubernetes writes them (RFC 3339, UTC `Z` or an offset),
//! and the clock the tools use (fixed in tests and fixtures, so nothing reads
//! the wall clock there).

/// Unix seconds of an RFC 3339 timestamp (UTC `Z` or an offset, fraction
/// dropped); `None` when it is not one.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Unix seconds → RFC 3339 (UTC).
pub fn rfc3339(secs: i64) -> String {
    labscope_proto::text::rfc3339(secs)
}

/// Now, in Unix seconds: the fixed clock when set, else the system clock.
pub fn now(fixed: Option<i64>) -> i64 {
    fixed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// A Go duration as Kubernetes and Flux write them ("10m0s", "1h", "24h",
/// "1h30m", "90s", "500ms") → whole seconds (rounded).
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let d: jiff::SignedDuration = s.trim().parse().ok()?;
    Some(d.as_secs_f64().round() as i64)
}

/// Seconds as a short human duration: "16d 0h", "3h 12m", "5m", "40s".
pub fn human(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_human() {
        assert_eq!(parse_go_duration("10m0s"), Some(600));
        assert_eq!(parse_go_duration("1h30m"), Some(5400));
        assert_eq!(parse_go_duration("24h"), Some(86_400));
        assert_eq!(parse_go_duration("60s"), Some(60));
        assert_eq!(parse_go_duration("1500ms"), Some(2));
        assert_eq!(parse_go_duration("1.5h"), Some(5400));
        assert_eq!(parse_go_duration("2m30.5s"), Some(151));
        assert_eq!(parse_go_duration(" 5m "), Some(300));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("m"), None);
        assert_eq!(human(16 * 86_400 + 59), "16d 0h");
        assert_eq!(human(3 * 3600 + 12 * 60), "3h 12m");
        assert_eq!(human(42), "42s");
    }

    #[test]
    fn parses_kubernetes_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-08-20T06:07:00Z"), Some(1_787_206_020));
        assert_eq!(
            parse_rfc3339("2026-08-20T08:07:00+02:00"),
            Some(1_787_206_020)
        );
        assert_eq!(
            parse_rfc3339("2026-08-20T06:07:00.123456Z"),
            Some(1_787_206_020)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2026-08-20",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "2026-08-20T06:07:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
