//! The values of `--tail` and `--since`, and the timestamp key a time is compared by.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};

use crate::os::logfile::TIMESTAMP_LEN;

/// How many of each service's last lines to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    All,
    Last(usize),
}

/// `--tail`: a number of lines, or `all`.
pub(crate) fn parse_tail(text: &str) -> Result<Tail, String> {
    match text {
        "all" => Ok(Tail::All),
        _ => text
            .parse()
            .map(Tail::Last)
            .map_err(|_| format!("{text:?} is not a number of lines; give one, or `all`")),
    }
}

/// `--since`: a duration back from now, or a time (local unless it carries `Z` or an offset).
pub(crate) fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    since_at(text, Utc::now(), &chrono::Local)
}

pub(super) fn since_at<Tz: TimeZone>(
    text: &str,
    now: DateTime<Utc>,
    local: &Tz,
) -> Result<DateTime<Utc>, String> {
    if let Some(ago) = parse_duration(text) {
        return now.checked_sub_signed(ago).ok_or_else(|| {
            format!("{text:?} goes back before the earliest time there is; give a shorter duration")
        });
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.to_utc());
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        date.and_hms_opt(0, 0, 0)
    });
    match naive {
        Some(naive) => local
            .from_local_datetime(&naive)
            .earliest()
            .map(|time| time.to_utc())
            .ok_or_else(|| format!("{text:?} does not exist in the local time zone")),
        None => Err(format!(
            "{text:?} is neither a duration (`10m`, `1h30m`, `45s`, `2d`) nor a time \
             (`2026-12-01T10:00:00`, local; `…Z` or `…+01:00` for UTC or an offset)"
        )),
    }
}

/// `10m`, `1h30m`, `90s`, `2d`, `500ms`: numbers each followed by a unit.
pub(crate) fn parse_duration(text: &str) -> Option<TimeDelta> {
    let mut rest = text;
    let mut total = TimeDelta::zero();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let number: i64 = rest[..digits].parse().ok()?;
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let step = match &rest[digits..digits + unit_len] {
            "ms" => TimeDelta::try_milliseconds(number)?,
            "s" => TimeDelta::try_seconds(number)?,
            "m" => TimeDelta::try_minutes(number)?,
            "h" => TimeDelta::try_hours(number)?,
            "d" => TimeDelta::try_days(number)?,
            _ => return None,
        };
        total = total.checked_add(&step)?;
        rest = &rest[digits + unit_len..];
    }
    (!text.is_empty()).then_some(total)
}

/// A time in the form our lines start with, for byte comparisons with them.
pub(super) fn stamp_of(time: DateTime<Utc>) -> [u8; TIMESTAMP_LEN] {
    let text = time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    text.as_bytes().try_into().expect("fixed width")
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    /// Each `--since` text read at noon UTC in a local zone `east` seconds ahead of UTC.
    fn assert_since(east: i32, cases: &[(&str, &str)]) {
        let now = utc("2026-12-02T12:00:00Z");
        let zone = FixedOffset::east_opt(east).unwrap();
        for (text, want) in cases {
            assert_eq!(since_at(text, now, &zone), Ok(utc(want)), "{text}");
        }
    }

    #[test]
    fn since_takes_durations_back_from_now() {
        assert_since(
            0,
            &[
                ("10m", "2026-12-02T11:50:00Z"),
                ("1h30m", "2026-12-02T10:30:00Z"),
                ("45s", "2026-12-02T11:59:15Z"),
                ("2d", "2026-11-30T12:00:00Z"),
                ("1500ms", "2026-12-02T11:59:58.500Z"),
            ],
        );
        let zone = FixedOffset::east_opt(0).unwrap();
        let err = since_at("100000000d", Utc::now(), &zone).unwrap_err();
        assert!(err.contains("\"100000000d\" goes back before"), "{err}");
        for bad in ["", "10", "m", "10x", "1h30", "-5m", "ten minutes"] {
            let err = since_at(bad, Utc::now(), &zone).unwrap_err();
            assert!(err.contains("neither a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn since_takes_times_local_unless_they_carry_a_zone() {
        // An hour ahead of UTC, as Berlin in winter.
        assert_since(
            3600,
            &[
                ("2026-12-01T10:00:00", "2026-12-01T09:00:00Z"),
                ("2026-12-01 10:00:00.250", "2026-12-01T09:00:00.250Z"),
                ("2026-12-01T10:00", "2026-12-01T09:00:00Z"),
                ("2026-12-01", "2026-11-30T23:00:00Z"),
                ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"),
                ("2026-12-01T10:00:00+02:00", "2026-12-01T08:00:00Z"),
                ("2026-12-01T10:00:00.5-01:00", "2026-12-01T11:00:00.500Z"),
            ],
        );
        let zone = FixedOffset::east_opt(3600).unwrap();
        assert!(since_at("2026-13-01T10:00:00", Utc::now(), &zone).is_err());
    }

    #[test]
    fn tail_is_a_number_or_all() {
        assert_eq!(parse_tail("20"), Ok(Tail::Last(20)));
        assert_eq!(parse_tail("all"), Ok(Tail::All));
        assert!(parse_tail("-1").unwrap_err().contains("`all`"));
    }

    mod generated {
        //! `--since` and `--tail` values generated at scale (seeded, a fixed number of cases).

        use crate::generated::seeded;
        use chrono::{FixedOffset, TimeDelta};
        use proptest::prelude::*;

        use super::super::*;

        fn now() -> DateTime<Utc> {
            DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
                .unwrap()
                .to_utc()
        }

        const UNITS: [(&str, i64); 5] = [
            ("ms", 1),
            ("s", 1_000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
        ];

        proptest! {
            #![proptest_config(seeded(512))]

            #[test]
            fn a_duration_goes_back_by_the_sum_of_its_parts(
                parts in prop::collection::vec((0..100_000i64, 0..UNITS.len()), 1..4),
            ) {
                let text: String = parts
                    .iter()
                    .map(|(number, unit)| format!("{number}{}", UNITS[*unit].0))
                    .collect();
                let millis: i64 = parts.iter().map(|(n, unit)| n * UNITS[*unit].1).sum();
                let zone = FixedOffset::east_opt(0).unwrap();
                prop_assert_eq!(
                    since_at(&text, now(), &zone),
                    Ok(now() - TimeDelta::milliseconds(millis)),
                    "{}", text
                );
            }

            #[test]
            fn a_time_is_read_in_the_local_zone_unless_it_carries_one(
                seconds in 0..4_102_444_800i64,
                millis in 0..1000u32,
                east in -50_400..50_400i32,
                form in 0..5usize,
            ) {
                let zone = FixedOffset::east_opt(east - east % 60).unwrap();
                let instant = DateTime::from_timestamp(seconds, millis * 1_000_000).unwrap();
                let local = instant.with_timezone(&zone);
                let (text, want) = match form {
                    0 => (local.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(), instant),
                    1 => (local.format("%Y-%m-%d %H:%M:%S").to_string(), instant - TimeDelta::milliseconds(millis.into())),
                    2 => (local.to_rfc3339(), instant),
                    3 => (instant.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(), instant),
                    _ => {
                        let minute = local.format("%Y-%m-%dT%H:%M").to_string();
                        let floor = instant - TimeDelta::milliseconds(millis.into())
                            - TimeDelta::seconds(seconds % 60);
                        (minute, floor)
                    }
                };
                prop_assert_eq!(since_at(&text, now(), &zone), Ok(want), "{}", text);
            }

            #[test]
            fn any_value_is_a_time_or_an_error_that_names_it_never_a_panic(
                text in "[0-9]{0,22}(ms|s|m|h|d|x|)[0-9]{0,12}(ms|s|m|h|d|)|[0-9T:. Z+-]{0,30}|\\PC{0,12}",
            ) {
                let zone = FixedOffset::east_opt(3600).unwrap();
                if let Err(message) = since_at(&text, now(), &zone) {
                    prop_assert!(message.contains(&format!("{text:?}")), "{}", message);
                }
                if let Err(message) = parse_tail(&text) {
                    prop_assert!(message.contains("`all`"), "{}", message);
                }
            }
        }
    }
}
