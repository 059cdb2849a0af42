//! Wall-clock helpers. Pipelines take `now` as an argument so tests can move time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix seconds as UTC ISO-8601 (`2026-12-03T10:00:00Z`), for people.
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Reads a time a person typed: Unix seconds, `YYYY-MM-DD` (midnight UTC)
/// or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Some(secs);
    }
    let (date, clock) = match text.split_once('T') {
        Some((d, c)) => (d, c.strip_suffix('Z')?),
        None => (text, "00:00:00"),
    };
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date_parts.next()??, date_parts.next()??, date_parts.next()??);
    let mut clock_parts = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (
        clock_parts.next()??,
        clock_parts.next()??,
        clock_parts.next().unwrap_or(Some(0))?,
    );
    let valid = (1..=12).contains(&m) && (1..=31).contains(&d) && h < 24 && min < 60 && s < 61;
    valid.then(|| days_from_civil(y, m, d) * 86_400 + h * 3600 + min * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_both_ways() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        for secs in [0, 951_782_400, 1_795_000_000, 4_102_444_799] {
            assert_eq!(parse_time(&iso8601(secs)), Some(secs));
        }
        assert_eq!(parse_time("2026-11-18"), Some(1_794_960_000));
        assert_eq!(parse_time("1795000000"), Some(1_795_000_000));
        for bad in [
            "",
            "2026-13-01",
            "yesterday",
            "2026-11-18T25:00:00Z",
            "2026-11-18T10:00:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
