//! Value parsers for configuration variables, in the forms the official agent accepts.
//!
//! Each parser takes a [`Raw`] value (text from the environment or `ecs.config`, or a JSON
//! value from the config file) and returns the typed value or a message saying what is allowed.
//! The message never repeats the value itself: the caller decides whether the value may be shown
//! (secrets are redacted there). Pure: no I/O.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// A raw configuration value, before parsing.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    /// Text from the environment or an `ecs.config` file.
    Text(&'a str),
    /// A value from the JSON configuration file.
    Json(&'a Value),
}

impl<'a> Raw<'a> {
    /// The value as text: JSON strings unquoted, other JSON values in compact form.
    pub fn text(&self) -> Cow<'a, str> {
        match self {
            Raw::Text(s) => Cow::Borrowed(s),
            Raw::Json(Value::String(s)) => Cow::Borrowed(s.as_str()),
            Raw::Json(v) => Cow::Owned(v.to_string()),
        }
    }
}

/// Why a value was refused: what the variable allows.
pub type ParseResult<T> = Result<T, String>;

/// A plain string, kept as given.
pub fn string(raw: Raw) -> ParseResult<String> {
    Ok(raw.text().into_owned())
}

/// A string with surrounding white space removed (the official agent trims these).
pub fn trimmed(raw: Raw) -> ParseResult<String> {
    Ok(raw.text().trim().to_owned())
}

/// An optional string: present means set.
pub fn opt_string(raw: Raw) -> ParseResult<Option<String>> {
    Ok(Some(raw.text().trim().to_owned()))
}

/// A word without white space, such as a profile or runtime name.
pub fn token(raw: Raw) -> ParseResult<String> {
    let text = raw.text();
    let v = text.trim();
    if v.is_empty() || v.chars().any(char::is_whitespace) {
        return Err("a single word without spaces".to_owned());
    }
    Ok(v.to_owned())
}

/// An optional word without white space.
pub fn opt_token(raw: Raw) -> ParseResult<Option<String>> {
    token(raw).map(Some)
}

/// An absolute file system path.
pub fn abs_path(raw: Raw) -> ParseResult<String> {
    let text = raw.text();
    let v = text.trim();
    if !v.starts_with('/') || v.contains('\0') {
        return Err("an absolute path, such as /var/lib/ecs/data".to_owned());
    }
    Ok(v.to_owned())
}

/// An optional absolute path.
pub fn opt_abs_path(raw: Raw) -> ParseResult<Option<String>> {
    abs_path(raw).map(Some)
}

/// An absolute path, or empty for "none" (the agent's log file).
pub fn abs_path_or_empty(raw: Raw) -> ParseResult<String> {
    if raw.text().trim().is_empty() {
        return Ok(String::new());
    }
    abs_path(raw).map_err(|e| format!("{e}, or empty for none"))
}

/// An AWS region name such as `us-west-2`.
pub fn region(raw: Raw) -> ParseResult<Option<String>> {
    let text = raw.text();
    let v = text.trim();
    let ok = v.len() <= 64
        && v.contains('-')
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if !ok {
        return Err("an AWS region name, such as us-west-2".to_owned());
    }
    Ok(Some(v.to_owned()))
}

/// A cluster name (up to 255 letters, digits, `-`, `_`) or a cluster ARN.
pub fn cluster(raw: Raw) -> ParseResult<String> {
    const ALLOWED: &str =
        "a cluster name (1-255 letters, digits, - and _) or a cluster ARN (arn:aws:ecs:<region>:<account>:cluster/<name>)";
    let text = raw.text();
    let v = text.trim();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 255
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let ok = match v.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            parts.len() == 5
                && parts[1] == "ecs"
                && parts[4].strip_prefix("cluster/").is_some_and(name_ok)
        }
        None => name_ok(v),
    };
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ALLOWED.to_owned())
    }
}

/// A host name or URL without white space (an endpoint override).
pub fn endpoint(raw: Raw) -> ParseResult<Option<String>> {
    token(raw)
        .map(Some)
        .map_err(|_| "a host name or URL, such as ecs.us-west-2.amazonaws.com".to_owned())
}

/// The Docker endpoint: `unix:///path` or `tcp://host:port`.
pub fn docker_host(raw: Raw) -> ParseResult<String> {
    let text = raw.text();
    let v = text.trim();
    let ok = v
        .strip_prefix("unix://")
        .is_some_and(|p| p.starts_with('/'))
        || v.strip_prefix("tcp://")
            .is_some_and(|h| !h.is_empty() && !h.contains(' '));
    if ok {
        Ok(v.to_owned())
    } else {
        Err("unix:///path/to/docker.sock or tcp://host:port".to_owned())
    }
}

/// A Docker size such as `16m` (digits with an optional k, m or g).
pub fn docker_size(raw: Raw) -> ParseResult<String> {
    let text = raw.text();
    let v = text.trim();
    let digits = v.trim_end_matches(['k', 'm', 'g', 'K', 'M', 'G']);
    if digits.is_empty()
        || !digits.chars().all(|c| c.is_ascii_digit())
        || v.len() - digits.len() > 1
    {
        return Err("a size such as 16m (digits with an optional k, m or g)".to_owned());
    }
    Ok(v.to_owned())
}

/// A boolean in Go's `strconv.ParseBool` forms: 1, t, T, TRUE, true, True and the false forms.
pub fn boolean(raw: Raw) -> ParseResult<bool> {
    match raw.text().trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("a boolean: true or false (also 1/0, t/f, TRUE/FALSE)".to_owned()),
    }
}

/// An unsigned 16-bit integer (MiB of reserved memory, for example).
pub fn uint16(raw: Raw) -> ParseResult<u16> {
    raw.text()
        .trim()
        .parse::<u16>()
        .map_err(|_| "a whole number from 0 to 65535".to_owned())
}

/// A non-negative whole number.
pub fn count(raw: Raw) -> ParseResult<u32> {
    raw.text()
        .trim()
        .parse::<u32>()
        .map_err(|_| "a whole number (0 or more)".to_owned())
}

/// A percentage: a whole number from 0 to 100.
pub fn percent(raw: Raw) -> ParseResult<u8> {
    match raw.text().trim().parse::<u8>() {
        Ok(v) if v <= 100 => Ok(v),
        _ => Err("a whole number from 0 to 100 (percent)".to_owned()),
    }
}

/// An optional whole number.
pub fn opt_count(raw: Raw) -> ParseResult<Option<u32>> {
    count(raw).map(Some)
}

/// A positive decimal number (megabytes of log file, for example).
pub fn positive_float(raw: Raw) -> ParseResult<f64> {
    match raw.text().trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("a number greater than 0, such as 5 or 0.5".to_owned()),
    }
}

const DURATION_ALLOWED: &str =
    "a duration such as 30s, 500ms, 3h or 1h30m (units ns, us, ms, s, m, h)";

/// A duration in Go's `time.ParseDuration` syntax; from the JSON file a number is nanoseconds,
/// as Go's JSON encoding of `time.Duration` has it.
pub fn duration(raw: Raw) -> ParseResult<Duration> {
    if let Raw::Json(Value::Number(n)) = raw {
        return n
            .as_u64()
            .map(Duration::from_nanos)
            .ok_or_else(|| format!("{DURATION_ALLOWED}; a JSON number means nanoseconds"));
    }
    go_duration(raw.text().trim()).ok_or_else(|| DURATION_ALLOWED.to_owned())
}

/// Parses Go's duration syntax (`1h30m`, `1.5s`, `300ms`, `0`). Negative durations are refused:
/// no agent setting means anything by them.
pub fn go_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * nanos_per_unit;
        rest = next;
    }
    if total > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration the way Go prints it (`30s`, `3h0m0s`, `500ms`, `1m30s`), so that
/// `config check` shows values in the form operators write them.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos as f64 / 1e6));
    }
    let total_secs = d.as_secs();
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = (total_secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    let secs = format!("{}s", trim_fraction(secs));
    match (hours, minutes) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

fn trim_fraction(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// A JSON array of port numbers, such as `[22, 2375]`.
pub fn port_list(raw: Raw) -> ParseResult<Vec<u16>> {
    json_of::<Vec<u16>>(
        raw,
        "a JSON array of port numbers (0-65535), such as [22,2375]",
    )
}

/// A JSON array of strings, such as `["json-file","awslogs"]`.
pub fn string_list(raw: Raw) -> ParseResult<Vec<String>> {
    json_of::<Vec<String>>(
        raw,
        "a JSON array of strings, such as [\"json-file\",\"awslogs\"]",
    )
}

/// A JSON object of string keys and string values, such as `{"team":"web"}`.
pub fn string_map(raw: Raw) -> ParseResult<BTreeMap<String, String>> {
    json_of::<BTreeMap<String, String>>(
        raw,
        "a JSON object of string keys and values, such as {\"team\":\"web\"}",
    )
}

fn json_of<T: serde::de::DeserializeOwned>(raw: Raw, allowed: &str) -> ParseResult<T> {
    let parsed = match raw {
        Raw::Json(v) if !v.is_string() => serde_json::from_value::<T>(v.clone()),
        _ => serde_json::from_str::<T>(raw.text().trim()),
    };
    parsed.map_err(|_| allowed.to_owned())
}

/// A comma-separated list, as `ECS_EXCLUDE_UNTRACKED_IMAGE` takes it.
pub fn comma_list(raw: Raw) -> ParseResult<Vec<String>> {
    if let Raw::Json(Value::Array(_)) = raw {
        return string_list(raw);
    }
    Ok(raw
        .text()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// A host port range `start-end`, as `ECS_DYNAMIC_HOST_PORT_RANGE` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Parses `start-end` with 1 <= start <= end <= 65535.
pub fn port_range(raw: Raw) -> ParseResult<Option<PortRange>> {
    const ALLOWED: &str = "a port range start-end, such as 32768-60999 (1-65535, start <= end)";
    let text = raw.text();
    let (start, end) = text.trim().split_once('-').ok_or(ALLOWED)?;
    let start: u16 = start.trim().parse().map_err(|_| ALLOWED)?;
    let end: u16 = end.trim().parse().map_err(|_| ALLOWED)?;
    if start == 0 || start > end {
        return Err(ALLOWED.to_owned());
    }
    Ok(Some(PortRange { start, end }))
}

/// The task metadata rate limit `steady,burst`, such as `40,60`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub steady: u32,
    pub burst: u32,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.steady, self.burst)
    }
}

/// Parses `steady,burst`, both positive whole numbers.
pub fn rate_limit(raw: Raw) -> ParseResult<RateLimit> {
    const ALLOWED: &str = "two positive whole numbers steady,burst, such as 40,60";
    let text = raw.text();
    let (steady, burst) = text.split_once(',').ok_or(ALLOWED)?;
    let steady: u32 = steady.trim().parse().map_err(|_| ALLOWED)?;
    let burst: u32 = burst.trim().parse().map_err(|_| ALLOWED)?;
    if steady == 0 || burst == 0 {
        return Err(ALLOWED.to_owned());
    }
    Ok(RateLimit { steady, burst })
}

/// A JSON array of CIDR blocks, as `ECS_AWSVPC_ADDITIONAL_LOCAL_ROUTES` takes it.
pub fn cidr_list(raw: Raw) -> ParseResult<Vec<String>> {
    const ALLOWED: &str = "a JSON array of CIDR blocks, such as [\"10.0.0.0/8\"]";
    let list = json_of::<Vec<String>>(raw, ALLOWED)?;
    if list.iter().all(|c| is_cidr(c)) {
        Ok(list)
    } else {
        Err(ALLOWED.to_owned())
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len <= 32,
        Ok(std::net::IpAddr::V6(_)) => len <= 128,
        Err(_) => false,
    }
}

/// Defines a configuration enum: its variants, the words that name them, and a parser.
/// Words are matched exactly; the JSON file may also give the Go enum's number.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $parser:ident { $($(#[$vmeta:meta])* $variant:ident = [$($word:literal),+]),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The word operators write for this value.
            pub fn word(&self) -> &'static str {
                match self { $($name::$variant => [$($word),+][0]),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.word())
            }
        }

        /// Parses one of the words (or, from the JSON file, the Go enum's number).
        pub fn $parser(raw: $crate::config::parse::Raw) -> $crate::config::parse::ParseResult<$name> {
            let text = raw.text();
            let word = text.trim();
            $( if [$($word),+].contains(&word) { return Ok($name::$variant); } )+
            if let $crate::config::parse::Raw::Json(serde_json::Value::Number(n)) = raw {
                if let Some(v) = n.as_u64().and_then(|i| $name::ALL.get(i as usize)) {
                    return Ok(*v);
                }
            }
            let words: Vec<&str> = vec![$($($word),+),+];
            Err(format!("one of: {}", words.join(", ")))
        }
    };
}
pub(crate) use word_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> Raw<'_> {
        Raw::Text(s)
    }

    #[test]
    fn go_durations_parse_like_go() {
        let cases = [
            ("30s", 30_000),
            ("3h", 3 * 3600 * 1000),
            ("1h30m", 90 * 60 * 1000),
            ("500ms", 500),
            ("1.5s", 1500),
            ("0", 0),
            ("2m0s", 120_000),
            ("+10s", 10_000),
        ];
        for (text, ms) in cases {
            assert_eq!(go_duration(text), Some(Duration::from_millis(ms)), "{text}");
        }
        assert_eq!(go_duration("1000us"), Some(Duration::from_millis(1)));
        assert_eq!(go_duration("1000µs"), Some(Duration::from_millis(1)));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in [
            "", "30", "s", "1x", "-5s", "1..5s", "h1", "1 h", "abc", "5S",
        ] {
            assert_eq!(go_duration(text), None, "{text:?} should be refused");
        }
    }

    #[test]
    fn durations_print_in_go_form() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(3 * 3600)), "3h0m0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn json_number_duration_means_nanoseconds() {
        let v = serde_json::json!(30_000_000_000u64);
        assert_eq!(duration(Raw::Json(&v)), Ok(Duration::from_secs(30)));
        let s = serde_json::json!("45s");
        assert_eq!(duration(Raw::Json(&s)), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn booleans_take_go_forms_only() {
        for yes in ["1", "t", "T", "TRUE", "true", "True", " true "] {
            assert_eq!(boolean(t(yes)), Ok(true), "{yes}");
        }
        for no in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(boolean(t(no)), Ok(false), "{no}");
        }
        for bad in ["yes", "no", "on", "tRuE", "2", ""] {
            assert!(boolean(t(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_take_json_forms() {
        assert_eq!(port_list(t("[22,2375]")), Ok(vec![22, 2375]));
        assert_eq!(port_list(t(" [ ] ")), Ok(vec![]));
        assert!(port_list(t("22,2375")).is_err());
        assert!(port_list(t("[70000]")).is_err());
        assert_eq!(
            string_list(t(r#"["json-file","awslogs"]"#)),
            Ok(vec!["json-file".to_owned(), "awslogs".to_owned()])
        );
        let json = serde_json::json!([1, 2]);
        assert_eq!(port_list(Raw::Json(&json)), Ok(vec![1, 2]));
    }

    #[test]
    fn port_ranges_and_rate_limits() {
        assert_eq!(
            port_range(t("32768-60999")),
            Ok(Some(PortRange {
                start: 32768,
                end: 60999
            }))
        );
        for bad in ["60999-32768", "0-10", "1-70000", "100", "a-b"] {
            assert!(port_range(t(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            rate_limit(t("40,60")),
            Ok(RateLimit {
                steady: 40,
                burst: 60
            })
        );
        assert_eq!(
            rate_limit(t(" 5 , 7 ")),
            Ok(RateLimit {
                steady: 5,
                burst: 7
            })
        );
        for bad in ["40", "0,60", "a,b", "40,60,80"] {
            assert!(rate_limit(t(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentages_run_from_0_to_100() {
        assert_eq!(percent(t("0")), Ok(0));
        assert_eq!(percent(t(" 90 ")), Ok(90));
        assert_eq!(percent(t("100")), Ok(100));
        for bad in ["101", "-1", "90%", "0.5", "", "256"] {
            assert!(percent(t(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs_are_checked() {
        assert!(cidr_list(t(r#"["10.0.0.0/8","fd00::/64"]"#)).is_ok());
        assert!(cidr_list(t(r#"["10.0.0.0/33"]"#)).is_err());
        assert!(cidr_list(t(r#"["10.0.0.0"]"#)).is_err());
    }

    proptest! {
        #[test]
        fn printed_durations_parse_back(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(go_duration(&format_duration(d)), Some(d));
        }

        #[test]
        fn duration_parser_never_panics(s in "\\PC{0,12}") {
            let _ = go_duration(&s);
        }
    }
}
