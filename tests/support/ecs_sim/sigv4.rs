//! An independent SigV4 verifier (header form, `AWS4-HMAC-SHA256`).
//!
//! It rebuilds the canonical request from what arrived on the wire (method,
//! raw path, raw query, the headers named in `SignedHeaders`, the SHA-256 of
//! the body actually received), derives the signing key from the configured
//! secret and compares signatures, the way the service does. Only the primitive
//! functions of `aws_sigv4` are used (`generate_signing_key`,
//! `calculate_signature`, and its SHA-256 through `x-amz-content-sha256`); the
//! canonicalisation is our own, so it cannot share a bug with the agent's
//! signing path.
//!
//! Limits: no presigned (query-string) form, no chunked/streaming payloads, no
//! SigV4a. Path dot-segments are not normalised (the agent never sends any).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MAX_SKEW: Duration = Duration::from_secs(300);

/// The identity a request must be signed with.
#[derive(Debug, Clone)]
pub struct Identity {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
    pub service: String,
}

/// What arrived: header names in any case, repeated names allowed.
pub struct Received<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Why a request is refused, named as AWS names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No or malformed `Authorization`/`X-Amz-Date`: `IncompleteSignatureException`.
    Incomplete(String),
    /// Unknown access key or wrong session token: `UnrecognizedClientException`.
    Unrecognized(String),
    /// Wrong signature, scope or stale date: `InvalidSignatureException`.
    Invalid(String),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Incomplete(_) => "IncompleteSignatureException",
            AuthError::Unrecognized(_) => "UnrecognizedClientException",
            AuthError::Invalid(_) => "InvalidSignatureException",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            AuthError::Incomplete(m) | AuthError::Unrecognized(m) | AuthError::Invalid(m) => m,
        }
    }

    /// The HTTP status AWS JSON services answer with.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Incomplete(_) | AuthError::Unrecognized(_) => 400,
            AuthError::Invalid(_) => 403,
        }
    }
}

struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

/// Verifies the `Authorization` header of `req` at time `now`.
pub fn verify(req: &Received<'_>, id: &Identity, now: SystemTime) -> Result<(), AuthError> {
    let auth = header(req.headers, "authorization")
        .ok_or_else(|| AuthError::Incomplete("Missing Authentication Token".into()))?;
    let auth = parse_authorization(&auth)?;
    let amz_date = header(req.headers, "x-amz-date").ok_or_else(|| {
        AuthError::Incomplete(
            "Authorization header requires existence of a valid 'X-Amz-Date' header.".into(),
        )
    })?;
    let signed_at = parse_amz_date(&amz_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "X-Amz-Date {amz_date:?} is not in ISO8601 basic format"
        ))
    })?;
    check_identity(req, &auth, id)?;
    check_scope(&auth, &amz_date, id)?;
    check_skew(signed_at, &amz_date, now)?;
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(AuthError::Invalid(format!(
                "'{required}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }
    }
    let canonical = canonical_request(req, &auth.signed_headers)?;
    let scope = format!("{}/{}/{}/aws4_request", auth.date, id.region, id.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let key = v4::generate_signing_key(&id.secret_access_key, signed_at, &id.region, &id.service);
    let expected = v4::calculate_signature(key, string_to_sign.as_bytes());
    if expected != auth.signature {
        return Err(AuthError::Invalid(format!(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. The Canonical String for this \
             request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
        )));
    }
    Ok(())
}

fn parse_authorization(value: &str) -> Result<Authorization, AuthError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| {
            AuthError::Incomplete(format!("Unsupported Authorization Type {value:?}"))
        })?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {
                return Err(AuthError::Incomplete(format!(
                    "Authorization header element {part:?} is malformed"
                )))
            }
        }
    }
    let missing = |what: &str| {
        AuthError::Incomplete(format!("Authorization header requires '{what}' parameter."))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = parts[..] else {
        return Err(AuthError::Incomplete(format!(
            "Credential should be <key>/<date>/<region>/<service>/aws4_request, not {credential:?}"
        )));
    };
    Ok(Authorization {
        access_key: access_key.into(),
        date: date.into(),
        region: region.into(),
        service: service.into(),
        signed_headers: signed.split(';').map(str::to_string).collect(),
        signature: signature.into(),
    })
}

fn check_identity(
    req: &Received<'_>,
    auth: &Authorization,
    id: &Identity,
) -> Result<(), AuthError> {
    let invalid_token =
        || AuthError::Unrecognized("The security token included in the request is invalid.".into());
    if auth.access_key != id.access_key_id {
        return Err(invalid_token());
    }
    if header(req.headers, "x-amz-security-token") != id.session_token {
        return Err(invalid_token());
    }
    Ok(())
}

fn check_scope(auth: &Authorization, amz_date: &str, id: &Identity) -> Result<(), AuthError> {
    if !amz_date.starts_with(&auth.date) {
        return Err(AuthError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            &amz_date[..amz_date.len().min(8)]
        )));
    }
    if auth.region != id.region {
        return Err(AuthError::Invalid(format!(
            "Credential should be scoped to a valid region, not '{}'. Valid region is '{}'.",
            auth.region, id.region
        )));
    }
    if auth.service != id.service {
        return Err(AuthError::Invalid(format!(
            "Credential should be scoped to correct service: '{}'.",
            id.service
        )));
    }
    Ok(())
}

fn check_skew(signed_at: SystemTime, amz_date: &str, now: SystemTime) -> Result<(), AuthError> {
    let (skew, signed_before_now) = match now.duration_since(signed_at) {
        Ok(skew) => (skew, true),
        Err(e) => (e.duration(), false),
    };
    if skew <= MAX_SKEW {
        return Ok(());
    }
    let (word, bound, sign) = if signed_before_now {
        ("earlier", now - MAX_SKEW, '-')
    } else {
        ("later", now + MAX_SKEW, '+')
    };
    Err(AuthError::Invalid(format!(
        "Signature expired: {amz_date} is now {word} than {} ({} {sign} 5 min.)",
        format_amz_date(bound),
        format_amz_date(now)
    )))
}

/// The canonical request of SigV4 (non-S3 rules: the path is encoded once more).
pub fn canonical_request(req: &Received<'_>, signed: &[String]) -> Result<String, AuthError> {
    let mut sorted = signed.to_vec();
    sorted.sort();
    if sorted != signed
        || signed
            .iter()
            .any(|h| h.is_empty() || *h != h.to_lowercase())
    {
        return Err(AuthError::Invalid(
            "SignedHeaders must be lowercase and sorted".into(),
        ));
    }
    let mut headers = String::new();
    for name in signed {
        let value = header(req.headers, name).ok_or_else(|| {
            AuthError::Invalid(format!(
                "Signed header '{name}' is not present in the request"
            ))
        })?;
        headers.push_str(&format!("{name}:{}\n", normalize_value(&value)));
    }
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{}",
        req.method,
        uri_encode(req.path, false),
        canonical_query(req.query),
        signed.join(";"),
        sha256_hex(req.body)
    ))
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), true),
                uri_encode(&percent_decode(v), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// All values of header `name` (case-insensitive), joined with `,` as SigV4 does.
pub fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn normalize_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 3986 encoding of everything but unreserved characters (and `/` in paths).
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space), as Go and aws-sigv4 read queries.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lower-case hex SHA-256, taken from aws-sigv4's `x-amz-content-sha256` header (its
/// SHA-256 function is crate-private; this is the same function through a public door).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let identity = Credentials::new("AKID", "secret", None, None, "sha256").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sha256")
        .time(UNIX_EPOCH)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let request = SignableRequest::new(
        "GET",
        "http://localhost/",
        std::iter::empty(),
        SignableBody::Bytes(bytes),
    )
    .expect("signable request");
    let (instructions, _) = sign(request, &params).expect("sign").into_parts();
    let hash = instructions
        .headers()
        .find(|(name, _)| *name == "x-amz-content-sha256")
        .map(|(_, value)| value.to_string());
    hash.expect("aws-sigv4 adds x-amz-content-sha256")
}

/// Parses `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Formats `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Hinnant's algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
