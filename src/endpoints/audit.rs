//! The credentials audit log (`ECS_AUDIT_LOGFILE`, off with `ECS_AUDIT_LOGFILE_DISABLED`): one
//! line per credentials request, in the official agent's format:
//! `<time> <status> <client> "<path>" "<user agent>" <task ARN> <event type> 2 <cluster> <instance ARN>`.
//! It names the task, never the credentials.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::credentials::RoleType;

/// Where audit lines go.
pub struct AuditLog {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
    cluster: String,
    instance_arn: String,
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

impl AuditLog {
    /// An audit log writing to `sink`; `None` records nothing.
    pub fn new(sink: Option<Box<dyn Write + Send>>, cluster: &str, instance_arn: &str) -> Self {
        AuditLog {
            sink: sink.map(Mutex::new),
            cluster: cluster.to_owned(),
            instance_arn: instance_arn.to_owned(),
        }
    }

    /// The line for one request (without the newline).
    pub fn line(&self, now: &str, r: &Audited) -> String {
        let common = format!(
            "{now} {} {} \"{}\" \"{}\" {}",
            r.status,
            r.peer,
            r.path,
            r.user_agent,
            or_dash(r.arn)
        );
        let event = match r.role {
            Some(RoleType::Task) => "GetCredentials",
            Some(RoleType::Execution) => "GetCredentialsExecutionRole",
            // The official agent writes no event fields for failed requests.
            None => return format!("{common} "),
        };
        format!(
            "{common} {event} 2 {} {}",
            or_dash(&self.cluster),
            or_dash(&self.instance_arn)
        )
    }

    /// Records one request.
    pub fn record(&self, r: &Audited) {
        let Some(sink) = &self.sink else { return };
        let line = self.line(&rfc3339_now(), r);
        let mut w = sink.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(w, "{line}");
        let _ = w.flush();
    }
}

/// One audited request.
pub struct Audited<'a> {
    pub peer: SocketAddr,
    pub path: &'a str,
    pub user_agent: &'a str,
    /// The task the credentials belong to; empty when none was found.
    pub arn: &'a str,
    pub status: u16,
    pub role: Option<RoleType>,
}

/// Current UTC time as RFC 3339 with seconds (`2026-11-26T14:00:00Z`).
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (y, m, d) = crate::app::civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_the_official_format() {
        let log = AuditLog::new(
            None,
            "prod",
            "arn:aws:ecs:us-west-2:1:container-instance/prod/abc",
        );
        let peer: SocketAddr = "172.17.0.2:40000".parse().unwrap();
        let req = |path, user_agent, arn, status, role| Audited {
            peer,
            path,
            user_agent,
            arn,
            status,
            role,
        };
        let now = "2026-11-26T14:00:00Z";
        let ok = log.line(
            now,
            &req(
                "/v2/credentials",
                "aws-sdk",
                "arn:task",
                200,
                Some(RoleType::Task),
            ),
        );
        assert_eq!(
            ok,
            "2026-11-26T14:00:00Z 200 172.17.0.2:40000 \"/v2/credentials\" \"aws-sdk\" arn:task GetCredentials 2 prod arn:aws:ecs:us-west-2:1:container-instance/prod/abc"
        );
        let bad = log.line(now, &req("/v1/credentials", "", "", 400, None));
        assert_eq!(
            bad,
            "2026-11-26T14:00:00Z 400 172.17.0.2:40000 \"/v1/credentials\" \"\" - "
        );
    }
}
