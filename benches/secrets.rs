//! Secrets and the credentials endpoint.
//!
//! 1. Time to resolve the secrets of one task with 20 SSM parameters and 10 Secrets Manager
//!    secrets against moto, as the driver does it (`secrets::resolve_task`: both SSM batches and
//!    every `GetSecretValue` at once), over `RUNS` runs; the baseline, in the same run, is the
//!    same calls made one after another.
//! 2. The task credentials endpoint (`endpoints::credentials`, with its rate limiter and an
//!    audit log file) served by a child process on a current-thread runtime pinned to core 0
//!    (`taskset -c 0`), loaded from core 1 by `CONNECTIONS` keep-alive connections for
//!    `LOAD_SECONDS`: requests per second and p50/p99/p999 latency.
//!
//! Prints figures, asserts nothing. Run with `cargo bench --bench secrets` after
//! `scripts/test-env up`. Everything talks to 127.0.0.1 only.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_config::SdkConfig;
use ecs_agent::credentials::{Entry, RoleType, Store};
use ecs_agent::endpoints::audit::AuditLog;
use ecs_agent::endpoints::credentials::{serve_on, CredentialsApi};
use ecs_agent::endpoints::ratelimit::RateLimiter;
use ecs_agent::model::RoleCredentials;
use ecs_agent::secrets::{resolve_task, SecretRef, TaskSecretRefs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SSM: usize = 20;
const ASM: usize = 10;
const RUNS: usize = 20;
const CONNECTIONS: usize = 16;
const LOAD_SECONDS: u64 = 5;
const CREDENTIALS_ID: &str = "bench-credentials-id";

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--serve-credentials") {
        return serve_credentials();
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("secrets: measures only under `cargo bench --bench secrets`");
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(resolve_bench())?;
    credentials_bench()
}

fn role() -> RoleCredentials {
    RoleCredentials {
        credentials_id: CREDENTIALS_ID.into(),
        role_arn: "arn:aws:iam::123456789012:role/bench".into(),
        access_key_id: "AKIDBENCH".into(),
        secret_access_key: "bench-secret-access-key".into(),
        session_token: "bench-session-token".into(),
        expiration: "2026-11-27T20:00:00Z".into(),
        credential_scope: None,
    }
}

async fn resolve_bench() -> Result<()> {
    let sdk = support::aws::moto_config().await;
    let unique = support::env::unique_name("bench-secrets");
    let mut refs = Vec::new();
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    for i in 0..SSM {
        let name = format!("/ecs-agent-bench/{unique}/p{i}");
        ssm.put_parameter()
            .name(&name)
            .value(format!("value-{i}"))
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await?;
        refs.push(secret(&format!("P{i}"), &name, "ssm"));
    }
    let asm = aws_sdk_secretsmanager::Client::new(&sdk);
    for i in 0..ASM {
        let out = asm
            .create_secret()
            .name(format!("{unique}-s{i}"))
            .secret_string(format!(r#"{{"password":"pw-{i}"}}"#))
            .send()
            .await?;
        let arn = out.arn().context("secret ARN")?;
        refs.push(secret(
            &format!("S{i}"),
            &format!("{arn}:password::"),
            "asm",
        ));
    }
    let task: TaskSecretRefs = [("app".to_owned(), refs)].into();
    let role = role();
    // One run first so connections and clients are warm for both measures.
    resolve_task(&sdk, Some(&role), "us-west-2", &task)
        .await
        .map_err(anyhow::Error::msg)?;
    let mut concurrent = Vec::new();
    let mut sequential = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let got = resolve_task(&sdk, Some(&role), "us-west-2", &task)
            .await
            .map_err(anyhow::Error::msg)?;
        concurrent.push(start.elapsed());
        if got["app"].env.len() != SSM + ASM {
            bail!(
                "resolved {} secrets, not {}",
                got["app"].env.len(),
                SSM + ASM
            );
        }
        let start = Instant::now();
        one_after_another(&sdk, &task["app"]).await?;
        sequential.push(start.elapsed());
    }
    println!("secrets: one task, {SSM} SSM parameters + {ASM} Secrets Manager secrets, moto on 127.0.0.1, {RUNS} runs");
    println!(
        "  resolve_task (all calls at once): {}",
        summary(&mut concurrent)
    );
    println!(
        "  baseline, the same calls one after another: {}",
        summary(&mut sequential)
    );
    Ok(())
}

fn secret(name: &str, value_from: &str, provider: &str) -> SecretRef {
    SecretRef {
        name: name.into(),
        value_from: value_from.into(),
        provider: Some(provider.into()),
        region: Some("us-west-2".into()),
        target: None,
    }
}

/// The same service calls as `resolve_task`, made one after another.
async fn one_after_another(sdk: &SdkConfig, refs: &[SecretRef]) -> Result<()> {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let asm = aws_sdk_secretsmanager::Client::new(sdk);
    let names: Vec<String> = refs
        .iter()
        .filter(|r| r.provider.as_deref() == Some("ssm"))
        .map(|r| r.value_from.clone())
        .collect();
    for batch in names.chunks(10) {
        ssm.get_parameters()
            .set_names(Some(batch.to_vec()))
            .with_decryption(true)
            .send()
            .await?;
    }
    for r in refs.iter().filter(|r| r.provider.as_deref() == Some("asm")) {
        let id = r.value_from.trim_end_matches(":password::");
        asm.get_secret_value().secret_id(id).send().await?;
    }
    Ok(())
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    )
}

/// The child: the credentials endpoint on a current-thread runtime, its port on stdout.
fn serve_credentials() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = std::fs::File::create(dir.path().join("audit.log"))?;
    let store = Store::default();
    store.put(Entry {
        task_arn: "arn:aws:ecs:us-west-2:123456789012:task/bench/1".into(),
        role_type: RoleType::Task,
        credentials: role(),
    });
    let api = Arc::new(CredentialsApi {
        store,
        // One client (127.0.0.1) makes every request: a limit that never bites, so the figure
        // is the cost of serving (the limiter's check included).
        limiter: RateLimiter::new(u32::MAX, u32::MAX),
        audit: AuditLog::new(
            Some(Box::new(audit)),
            "bench",
            "arn:aws:ecs:us-west-2:123456789012:container-instance/bench",
        ),
    });
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("{}", listener.local_addr()?.port());
            serve_on(listener, api).await?;
            Ok(())
        })
}

fn credentials_bench() -> Result<()> {
    let me = std::env::current_exe()?;
    let mut server = Command::new("taskset")
        .args(["-c", "0"])
        .arg(&me)
        .arg("--serve-credentials")
        .stdout(Stdio::piped())
        .spawn()
        .context("taskset runs the server")?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("server stdout")?).read_line(&mut line)?;
    let port: u16 = line.trim().parse().context("the server's port")?;
    // The load generator on the other core, so the server has core 0 to itself.
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(load(port));
    let _ = server.kill();
    let _ = server.wait();
    let (count, non_ok, elapsed, mut latencies) = result?;
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len() - 1);
        latencies[i].as_secs_f64() * 1e6
    };
    println!(
        "credentials endpoint: GET /v2/credentials/{{id}}, server on one core (current-thread runtime, taskset -c 0), {CONNECTIONS} keep-alive connections{} for {LOAD_SECONDS} s",
        if pinned { " from core 1" } else { " (load generator not pinned)" }
    );
    println!(
        "  {:.0} requests/s ({count} requests, {non_ok} not 200); latency p50 {:.0} µs, p99 {:.0} µs, p999 {:.0} µs",
        count as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
        at(0.999)
    );
    Ok(())
}

type Load = (usize, usize, Duration, Vec<Duration>);

async fn load(port: u16) -> Result<Load> {
    let start = Instant::now();
    let until = start + Duration::from_secs(LOAD_SECONDS);
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(connection(port, until)))
        .collect();
    let mut latencies = Vec::new();
    let mut non_ok = 0;
    for w in workers {
        let (l, n) = w.await??;
        latencies.extend(l);
        non_ok += n;
    }
    Ok((latencies.len(), non_ok, start.elapsed(), latencies))
}

/// One keep-alive connection sending requests one after another until `until`.
async fn connection(port: u16, until: Instant) -> Result<(Vec<Duration>, usize)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET /v2/credentials/{CREDENTIALS_ID} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n"
    );
    let mut latencies = Vec::new();
    let mut non_ok = 0;
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < until {
        let sent = Instant::now();
        stream.write_all(request.as_bytes()).await?;
        let status = read_response(&mut stream, &mut buf).await?;
        latencies.push(sent.elapsed());
        if status != 200 {
            non_ok += 1;
        }
    }
    Ok((latencies, non_ok))
}

/// Reads one HTTP/1.1 response with a Content-Length body; its status.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("status")?;
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .context("content-length")?;
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    bail!("connection closed");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
