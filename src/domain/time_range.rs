use chrono::{DateTime, Utc};

use super::Invalid;

/// One end of a metrics time range: `now()`, a relative offset like `-5m`, or an RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    Now,
    /// Seconds before now.
    Ago(u64),
    At(DateTime<Utc>),
}

/// The longest span a relative bound may reach back (10 years).
const MAX_AGO_SECS: u64 = 10 * 366 * 24 * 3600;

impl TimeBound {
    /// `now()` (or `now`), `-<n><unit>` (n up to 12 digits, unit s m h d w; more than 10 years
    /// back counts as 10 years), or an RFC 3339 time: exactly what the OpenAPI document declares.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, Invalid> {
        if raw == "now()" || raw == "now" {
            return Ok(TimeBound::Now);
        }
        if let Some(rel) = raw.strip_prefix('-') {
            let secs = parse_duration(rel).ok_or_else(|| {
                Invalid::new(
                    field,
                    "must be now(), a relative time like -5m, -1h, -7d, or an RFC 3339 time",
                )
            })?;
            return Ok(TimeBound::Ago(secs.min(MAX_AGO_SECS)));
        }
        DateTime::parse_from_rfc3339(raw)
            .map(|t| TimeBound::At(t.with_timezone(&Utc)))
            .map_err(|_| {
                Invalid::new(
                    field,
                    "must be now(), a relative time like -5m, -1h, -7d, or an RFC 3339 time",
                )
            })
    }

    fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            TimeBound::Now => now,
            TimeBound::Ago(secs) => now - chrono::Duration::seconds(secs as i64),
            TimeBound::At(t) => t,
        }
    }

    /// The bound as an InfluxQL time expression.
    pub fn influxql(self) -> String {
        match self {
            TimeBound::Now => "now()".into(),
            TimeBound::Ago(secs) => format!("now() - {secs}s"),
            // InfluxDB's times are nanoseconds in an i64: held to 1678 .. 2262.
            TimeBound::At(t) => format!(
                "'{}'",
                t.clamp(influx_min(), influx_max())
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            ),
        }
    }
}

/// InfluxQL refuses time literals near the ends of its i64 nanoseconds ("underflows time
/// literal"): whole years inside them.
fn influx_min() -> DateTime<Utc> {
    DateTime::from_timestamp(-9_214_560_000, 0).unwrap_or_default() // 1678-01-01
}

fn influx_max() -> DateTime<Utc> {
    DateTime::from_timestamp(9_214_646_400, 0).unwrap_or_default() // 2262-01-01
}

/// From `start` to `stop`; a `start` after `stop` is an empty range (nothing matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: TimeBound,
    pub stop: TimeBound,
}

impl TimeRange {
    /// How long the range is, in seconds, as of now.
    pub fn seconds(&self) -> u64 {
        let now = Utc::now();
        (self.stop.resolve(now) - self.start.resolve(now))
            .num_seconds()
            .max(0) as u64
    }

    pub fn parse(start: Option<&str>, stop: Option<&str>) -> Result<Self, Invalid> {
        let start = TimeBound::parse("start", start.unwrap_or("-1h"))?;
        let stop = TimeBound::parse("stop", stop.unwrap_or("now()"))?;
        Ok(Self { start, stop })
    }
}

/// `every=1m&fn=mean`: one aggregated value per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downsample {
    pub every_secs: u64,
    pub function: Aggregate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Mean,
    Min,
    Max,
    Sum,
    Count,
    First,
    Last,
    Median,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Sum => "sum",
            Aggregate::Count => "count",
            Aggregate::First => "first",
            Aggregate::Last => "last",
            Aggregate::Median => "median",
        }
    }
}

impl Downsample {
    pub fn parse(every: Option<&str>, function: Option<&str>) -> Result<Option<Self>, Invalid> {
        // `fn` alone downsamples by the minute; `every` is held to 1 s .. 30 d.
        let every = match (every, function) {
            (None, None) => return Ok(None),
            (None, Some(_)) => "1m",
            (Some(every), _) => every,
        };
        let every_secs = parse_duration(every)
            .map(|s| s.clamp(1, 30 * 24 * 3600))
            .ok_or_else(|| {
                Invalid::new("every", "must be a duration like 10s, 1m, 1h, 7d or 2w")
            })?;
        let function = match function.unwrap_or("mean") {
            "mean" => Aggregate::Mean,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "sum" => Aggregate::Sum,
            "count" => Aggregate::Count,
            "first" => Aggregate::First,
            "last" => Aggregate::Last,
            "median" => Aggregate::Median,
            _ => {
                return Err(Invalid::new(
                    "fn",
                    "must be one of mean, min, max, sum, count, first, last, median",
                ))
            }
        };
        Ok(Some(Self {
            every_secs,
            function,
        }))
    }
}

/// `30s`, `5m`, `1h`, `7d`, `2w` → seconds.
fn parse_duration(raw: &str) -> Option<u64> {
    let split = raw.find(|c: char| !c.is_ascii_digit())?;
    if split == 0 || split > 12 {
        return None;
    }
    let (n, unit) = raw.split_at(split);
    let n: u64 = n.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_relative_and_absolute_bounds() {
        let r = TimeRange::parse(Some("-5m"), None).unwrap();
        assert_eq!((r.start, r.stop), (TimeBound::Ago(300), TimeBound::Now));
        assert_eq!(r.start.influxql(), "now() - 300s");
        let r = TimeRange::parse(
            Some("2026-02-12T16:00:00Z"),
            Some("2026-02-12T17:00:00+01:00"),
        )
        .unwrap();
        assert_eq!(r.start.influxql(), "'2026-02-12T16:00:00.000000000Z'");
        for bad in [
            "5m",
            "-5x",
            "-",
            "yesterday",
            "-9999999999999d",
            "'; DROP",
            " -5m",
        ] {
            assert!(TimeRange::parse(Some(bad), None).is_err(), "{bad}");
        }
        let empty = TimeRange::parse(Some("-1h"), Some("-2h")).unwrap();
        assert_eq!(empty.seconds(), 0, "start after stop: nothing");
        let far = TimeRange::parse(Some("-99999999999d"), None).unwrap();
        assert_eq!(far.start, TimeBound::Ago(MAX_AGO_SECS));
        let r =
            TimeRange::parse(Some("0001-01-01T00:00:00Z"), Some("9999-12-31T23:59:59Z")).unwrap();
        assert_eq!(r.start.influxql(), "'1678-01-01T00:00:00.000000000Z'");
        assert_eq!(r.stop.influxql(), "'2262-01-01T00:00:00.000000000Z'");
    }

    #[test]
    fn downsampling_needs_a_sane_interval_and_a_known_function() {
        assert_eq!(
            Downsample::parse(Some("1m"), Some("max")).unwrap(),
            Some(Downsample {
                every_secs: 60,
                function: Aggregate::Max
            })
        );
        assert_eq!(
            Downsample::parse(Some("0s"), None)
                .unwrap()
                .unwrap()
                .every_secs,
            1
        );
        assert_eq!(
            Downsample::parse(Some("99w"), None)
                .unwrap()
                .unwrap()
                .every_secs,
            30 * 86_400
        );
        assert!(Downsample::parse(Some("1m"), Some("stddev; DROP")).is_err());
        assert_eq!(
            Downsample::parse(None, Some("mean"))
                .unwrap()
                .unwrap()
                .every_secs,
            60
        );
    }
}
