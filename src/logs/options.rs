//! The `awslogs` log options of a container (its `LogConfig.Config`, secret options included):
//! parsed and checked as Docker's awslogs driver checks them (unknown options and bad values are
//! refused, naming the option), the stream name as ECS builds it, and the pattern that starts a
//! multiline event. Pure.
//!
//! An error quotes a bad value only when the option did not come from a secret
//! (`logConfiguration.secretOptions`): a secret's value never reaches an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Options Docker's awslogs driver accepts (plus ECS's `awslogs-stream-prefix`).
const KNOWN: &[&str] = &[
    "awslogs-region",
    "awslogs-endpoint",
    "awslogs-group",
    "awslogs-create-group",
    "awslogs-stream",
    "awslogs-stream-prefix",
    "awslogs-datetime-format",
    "awslogs-multiline-pattern",
    "awslogs-credentials-endpoint",
    "awslogs-force-flush-interval-seconds",
    "awslogs-max-buffered-events",
    "awslogs-format",
    "tag",
    "mode",
    "max-buffer-size",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
];

/// What a container's awslogs configuration says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsLogsOptions {
    pub group: String,
    pub region: Option<String>,
    pub stream_prefix: Option<String>,
    /// An explicit `awslogs-stream`.
    pub stream: Option<String>,
    pub create_group: bool,
    pub datetime_format: Option<String>,
    pub multiline_pattern: Option<String>,
    pub endpoint: Option<String>,
    /// `awslogs-credentials-endpoint`: a relative URI of this agent's credentials endpoint
    /// (`/v2/credentials/<id>`), whose credentials sign this container's calls.
    pub credentials_endpoint: Option<String>,
    /// `blocking` or `non-blocking`: accepted; the agent never blocks the container either way.
    pub mode: Option<String>,
    pub max_buffer_size: Option<String>,
}

/// A bad awslogs configuration, naming the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("awslogs-group is required")]
    NoGroup,
    #[error("unknown log opt '{0}' for awslogs log driver")]
    Unknown(String),
    #[error("{option}: {value} is not true or false")]
    NotBool { option: &'static str, value: Shown },
    #[error("{option}: {value} is not one of blocking, non-blocking")]
    BadMode { option: &'static str, value: Shown },
    #[error("{option}: {value} is not a positive integer")]
    NotPositive { option: &'static str, value: Shown },
    #[error("awslogs-datetime-format and awslogs-multiline-pattern cannot both be set")]
    BothPatterns,
    #[error("awslogs-credentials-endpoint: {0:?} is not a /v2/credentials/<id> URI of the agent's credentials endpoint")]
    BadCredentialsEndpoint(String),
    #[error("{option}: invalid regular expression: {reason}")]
    BadPattern {
        option: &'static str,
        reason: String,
    },
}

/// A bad value as an error shows it: quoted, or only said to come from a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Value(String),
    FromSecret,
}

impl Shown {
    fn of(option: &str, value: &str, secret: &BTreeSet<String>) -> Shown {
        if secret.contains(option) {
            Shown::FromSecret
        } else {
            Shown::Value(value.to_owned())
        }
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shown::Value(v) => write!(f, "{v:?}"),
            Shown::FromSecret => f.write_str("the value from its secret"),
        }
    }
}

impl AwsLogsOptions {
    /// Parses options none of which came from a secret.
    pub fn parse(options: &BTreeMap<String, String>) -> Result<Self, OptionsError> {
        Self::parse_with_secrets(options, &BTreeSet::new())
    }

    /// Parses options; those named in `secret` came from secrets, and an error about one of
    /// them does not show its value.
    pub fn parse_with_secrets(
        options: &BTreeMap<String, String>,
        secret: &BTreeSet<String>,
    ) -> Result<Self, OptionsError> {
        if let Some(unknown) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(OptionsError::Unknown(unknown.clone()));
        }
        let get = |k: &str| options.get(k).filter(|v| !v.is_empty()).cloned();
        let create_group = match options.get("awslogs-create-group").map(String::as_str) {
            None | Some("") => false,
            Some(value) => parse_go_bool(value).ok_or_else(|| OptionsError::NotBool {
                option: "awslogs-create-group",
                value: Shown::of("awslogs-create-group", value, secret),
            })?,
        };
        let mode = get("mode");
        if let Some(m) = mode
            .as_deref()
            .filter(|m| !matches!(*m, "blocking" | "non-blocking"))
        {
            return Err(OptionsError::BadMode {
                option: "mode",
                value: Shown::of("mode", m, secret),
            });
        }
        for option in [
            "awslogs-force-flush-interval-seconds",
            "awslogs-max-buffered-events",
        ] {
            check_positive(option, options.get(option), secret)?;
        }
        let parsed = AwsLogsOptions {
            group: get("awslogs-group").ok_or(OptionsError::NoGroup)?,
            region: get("awslogs-region"),
            stream_prefix: get("awslogs-stream-prefix"),
            stream: get("awslogs-stream"),
            create_group,
            datetime_format: get("awslogs-datetime-format"),
            multiline_pattern: get("awslogs-multiline-pattern"),
            endpoint: get("awslogs-endpoint"),
            credentials_endpoint: get("awslogs-credentials-endpoint"),
            mode,
            max_buffer_size: get("max-buffer-size"),
        };
        parsed.start_pattern()?;
        parsed.credentials_id()?;
        Ok(parsed)
    }

    /// The credentials ID `awslogs-credentials-endpoint` names (`/v2/credentials/<id>`), for
    /// the agent's own credentials store; other endpoints are refused (the agent does not
    /// fetch credentials over HTTP from elsewhere).
    pub fn credentials_id(&self) -> Result<Option<&str>, OptionsError> {
        let Some(uri) = &self.credentials_endpoint else {
            return Ok(None);
        };
        match uri.strip_prefix("/v2/credentials/") {
            Some(id) if !id.is_empty() && !id.contains(['/', '?', '#']) => Ok(Some(id)),
            _ => Err(OptionsError::BadCredentialsEndpoint(uri.clone())),
        }
    }

    /// ECS's naming: `prefix/container-name/task-id` with `awslogs-stream-prefix`, else an
    /// explicit `awslogs-stream`, else the Docker container ID.
    pub fn stream_name(&self, container_name: &str, task_id: &str, docker_id: &str) -> String {
        match (&self.stream_prefix, &self.stream) {
            (Some(prefix), _) => format!("{prefix}/{container_name}/{task_id}"),
            (None, Some(stream)) => stream.clone(),
            (None, None) => docker_id.to_owned(),
        }
    }

    /// The pattern a line must match to start a new event: the multiline pattern as given, or
    /// the datetime format as a regex anchored at the line start (Docker's driver does not
    /// anchor it, so a timestamp inside a continuation line starts an event there but not
    /// here); `None` for one event a line.
    pub fn start_pattern(&self) -> Result<Option<regex_lite::Regex>, OptionsError> {
        let (option, source) = match (&self.datetime_format, &self.multiline_pattern) {
            (Some(_), Some(_)) => return Err(OptionsError::BothPatterns),
            (Some(f), None) => ("awslogs-datetime-format", format!("^{}", strftime_regex(f))),
            (None, Some(p)) => ("awslogs-multiline-pattern", p.clone()),
            (None, None) => return Ok(None),
        };
        regex_lite::Regex::new(&source)
            .map(Some)
            .map_err(|e| OptionsError::BadPattern {
                option,
                reason: e.to_string(),
            })
    }
}

/// Docker refuses a numeric option that is not a positive integer, though the agent does not
/// use these two (it flushes and buffers on its own terms).
fn check_positive(
    option: &'static str,
    value: Option<&String>,
    secret: &BTreeSet<String>,
) -> Result<(), OptionsError> {
    match value.map(String::as_str) {
        None | Some("") => Ok(()),
        Some(v) if v.parse::<i64>().is_ok_and(|n| n > 0) => Ok(()),
        Some(v) => Err(OptionsError::NotPositive {
            option,
            value: Shown::of(option, v, secret),
        }),
    }
}

/// A boolean as Go's `strconv.ParseBool` reads it, which is how Docker reads
/// `awslogs-create-group` (task definitions written for Docker say `True` or `1` too).
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A strftime format as a regex, code by code as Docker's awslogs driver converts it (its
/// `strftimeToRegex` table, quirks included: `%Z` is `[A-Z]{1,4}T`, which takes `UTC` or `CEST`
/// but not `Z`; a code outside the table stands for nothing). `%%` is a `%`. Other characters
/// stand for themselves (Docker leaves them as regex syntax; we escape them).
fn strftime_regex(format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('%', Some(code)) => {
                chars.next();
                out.push_str(strftime_code(code));
            }
            _ => out.push_str(&regex_lite::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out
}

/// The regex for one strftime code (the letter after `%`), from Docker's table.
fn strftime_code(code: char) -> &'static str {
    match code {
        'a' => r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)",
        'A' => r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)",
        'w' => r"[0-6]",
        'd' => r"(?:0[1-9]|[1,2][0-9]|3[0,1])",
        'b' => r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)",
        'B' => {
            r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
        }
        'm' => r"(?:0[1-9]|1[0-2])",
        'Y' => r"\d{4}",
        'y' => r"\d{2}",
        'H' => r"(?:[0,1][0-9]|2[0-3])",
        'I' => r"(?:0[0-9]|1[0-2])",
        'p' => r"[A,P]M",
        'M' | 'S' => r"[0-5][0-9]",
        'f' => r"\d{6}",
        'z' => r"[+-]\d{4}",
        'Z' => r"[A-Z]{1,4}T",
        'j' => r"(?:0[0-9][1-9]|[1,2][0-9][0-9]|3[0-5][0-9]|36[0-6])",
        'L' => r"\.\d{3}",
        '%' => "%",
        _ => "",
    }
}

/// The log driver a container gets instead of awslogs: Docker's `json-file` with rotation
/// (5 files of 25 MB), so writing never waits on the network and Docker's files hold the
/// backlog — about 125 MB of log files a container while CloudWatch is out of reach.
pub fn local_log_driver() -> (&'static str, BTreeMap<String, String>) {
    let options = [("max-size", "25m"), ("max-file", "5")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    ("json-file", options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn streams_are_named_as_ecs_names_them() {
        let base = [("awslogs-group", "g")];
        let prefixed =
            AwsLogsOptions::parse(&opts(&[base[0], ("awslogs-stream-prefix", "web")])).unwrap();
        assert_eq!(
            prefixed.stream_name("app", "abc123", "d0c"),
            "web/app/abc123"
        );
        let explicit = AwsLogsOptions::parse(&opts(&[base[0], ("awslogs-stream", "s")])).unwrap();
        assert_eq!(explicit.stream_name("app", "abc123", "d0c"), "s");
        let plain = AwsLogsOptions::parse(&opts(&base)).unwrap();
        assert_eq!(plain.stream_name("app", "abc123", "d0c"), "d0c");
    }

    #[test]
    fn bad_options_are_refused_naming_the_option() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "awslogs-group is required"),
            (
                &[("awslogs-group", "g"), ("awslogs-foo", "1")],
                "awslogs-foo",
            ),
            (
                &[("awslogs-group", "g"), ("awslogs-create-group", "maybe")],
                "awslogs-create-group",
            ),
            (&[("awslogs-group", "g"), ("mode", "sometimes")], "mode"),
            (
                &[
                    ("awslogs-group", "g"),
                    ("awslogs-force-flush-interval-seconds", "0"),
                ],
                "awslogs-force-flush-interval-seconds: \"0\" is not a positive integer",
            ),
            (
                &[
                    ("awslogs-group", "g"),
                    ("awslogs-max-buffered-events", "ten"),
                ],
                "awslogs-max-buffered-events",
            ),
            (
                &[("awslogs-group", "g"), ("awslogs-multiline-pattern", "(")],
                "awslogs-multiline-pattern",
            ),
            (
                &[
                    ("awslogs-group", "g"),
                    ("awslogs-credentials-endpoint", "http://10.0.0.1/creds"),
                ],
                "awslogs-credentials-endpoint: \"http://10.0.0.1/creds\" is not a /v2/credentials/<id>",
            ),
            (
                &[
                    ("awslogs-group", "g"),
                    ("awslogs-credentials-endpoint", "/v2/credentials/"),
                ],
                "awslogs-credentials-endpoint",
            ),
            (
                &[
                    ("awslogs-group", "g"),
                    ("awslogs-multiline-pattern", "^a"),
                    ("awslogs-datetime-format", "%Y"),
                ],
                "cannot both be set",
            ),
        ];
        for (pairs, expected) in cases {
            let err = AwsLogsOptions::parse(&opts(pairs)).unwrap_err().to_string();
            assert!(err.contains(expected), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn errors_never_show_the_value_of_an_option_from_a_secret() {
        let cases: &[(&str, &str)] = &[
            ("awslogs-create-group", "s3cret-bool"),
            ("mode", "s3cret-mode"),
            ("awslogs-force-flush-interval-seconds", "s3cret-n"),
            ("awslogs-max-buffered-events", "s3cret-m"),
        ];
        for (option, value) in cases {
            let options = opts(&[("awslogs-group", "g"), (option, value)]);
            let plain = AwsLogsOptions::parse(&options).unwrap_err().to_string();
            assert!(
                plain.contains(value),
                "a plain option's value is shown: {plain}"
            );
            let secret = [option.to_string()].into();
            let err = AwsLogsOptions::parse_with_secrets(&options, &secret)
                .unwrap_err()
                .to_string();
            assert!(err.contains(option), "the option is named: {err}");
            assert!(!err.contains("s3cret"), "no secret value: {err}");
        }
        let pattern = opts(&[
            ("awslogs-group", "g"),
            ("awslogs-multiline-pattern", "(s3cret"),
        ]);
        let secret = ["awslogs-multiline-pattern".to_owned()].into();
        let err = AwsLogsOptions::parse_with_secrets(&pattern, &secret)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn every_option_ecs_users_set_is_read() {
        let o = AwsLogsOptions::parse(&opts(&[
            ("awslogs-group", "/ecs/app"),
            ("awslogs-region", "eu-west-1"),
            ("awslogs-create-group", "true"),
            ("awslogs-endpoint", "http://127.0.0.1:5000"),
            ("mode", "non-blocking"),
            ("max-buffer-size", "25m"),
            ("awslogs-credentials-endpoint", "/v2/credentials/x"),
            ("awslogs-force-flush-interval-seconds", "5"),
            ("awslogs-max-buffered-events", "1000"),
            ("tag", "{{.Name}}"),
            ("labels", "a,b"),
            ("env", "A"),
            ("env-regex", "^A"),
        ]))
        .unwrap();
        assert_eq!(o.group, "/ecs/app");
        assert_eq!(o.region.as_deref(), Some("eu-west-1"));
        assert!(o.create_group);
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(o.max_buffer_size.as_deref(), Some("25m"));
        assert_eq!(o.credentials_id(), Ok(Some("x")));
        assert_eq!(
            o.start_pattern().unwrap().map(|r| r.as_str().to_owned()),
            None
        );
    }

    #[test]
    fn create_group_accepts_the_booleans_docker_accepts() {
        let cases = [
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("1", true),
            ("t", true),
            ("false", false),
            ("False", false),
            ("0", false),
            ("f", false),
            ("", false),
        ];
        for (value, expected) in cases {
            let o = AwsLogsOptions::parse(&opts(&[
                ("awslogs-group", "g"),
                ("awslogs-create-group", value),
            ]))
            .unwrap();
            assert_eq!(o.create_group, expected, "{value:?}");
        }
        for refused in ["yes", "maybe", "tRuE", " true"] {
            let err = AwsLogsOptions::parse(&opts(&[
                ("awslogs-group", "g"),
                ("awslogs-create-group", refused),
            ]))
            .unwrap_err();
            assert_eq!(
                err,
                OptionsError::NotBool {
                    option: "awslogs-create-group",
                    value: Shown::Value(refused.to_owned())
                }
            );
        }
    }

    #[test]
    fn datetime_formats_become_anchored_patterns() {
        let o = AwsLogsOptions::parse(&opts(&[
            ("awslogs-group", "g"),
            ("awslogs-datetime-format", "%Y-%m-%d %H:%M:%S"),
        ]))
        .unwrap();
        let re = o.start_pattern().unwrap().unwrap();
        assert!(re.is_match("2024-01-02 03:04:05 started"));
        assert!(!re.is_match("  at 2024-01-02 03:04:05"));
        assert!(!re.is_match("2024-13-02 03:04:05"));
        let bracketed = strftime_regex("[%b %d, %Y %H:%M:%S%L]");
        let re = regex_lite::Regex::new(&format!("^{bracketed}")).unwrap();
        assert!(re.is_match("[Jan 02, 2024 03:04:05.123] x"));
    }

    #[test]
    fn each_strftime_code_matches_what_docker_matches() {
        // (format, matches at the line start, does not)
        let cases = [
            ("%a", "Tue x", "tue"),
            ("%A", "Tuesday", "Tue"),
            ("%w", "6", "7"),
            ("%d", "31", "32"),
            ("%b", "Jan", "jan"),
            ("%B", "January", "Jan "),
            ("%m", "12", "13"),
            ("%Y", "2024", "202"),
            ("%y", "24", "2"),
            ("%H", "23", "24"),
            ("%I", "12", "13"),
            ("%p", "PM", "pm"),
            ("%M", "59", "60"),
            ("%S", "59", "60"),
            ("%f", "123456", "12345"),
            ("%z", "+0100", "0100"),
            ("%Z", "CEST", "Z"),
            ("%j", "366", "367"),
            ("%L", ".123", "123"),
            ("%%", "%", "x"),
            ("[%H]", "[23]", "23"),
            ("%H.%M", "23.59", "23:59"),
            ("a+b", "a+b", "aab"),
            ("%e%H", "23", "e23"),
            ("100%", "100%", "100"),
            ("é%H", "é23", "e23"),
        ];
        for (format, yes, no) in cases {
            let re = regex_lite::Regex::new(&format!("^{}", strftime_regex(format))).unwrap();
            assert!(re.is_match(yes), "{format:?} should match {yes:?}");
            assert!(!re.is_match(no), "{format:?} should not match {no:?}");
        }
    }

    #[test]
    fn the_local_driver_rotates() {
        let (driver, options) = local_log_driver();
        assert_eq!(driver, "json-file");
        assert_eq!(options["max-size"], "25m");
        assert_eq!(options["max-file"], "5");
    }
}
