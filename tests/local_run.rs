//! `ecs-agent local run TASKDEF.json` as an operator uses it, against the test dockerd: exit
//! codes, the progress view and prefixed logs, task definition errors, container removal,
//! Ctrl-C with stop timeouts, dynamic host ports and the shipped examples.
//!
//! Every test runs the binary with a cleared environment and `prefer-cached` pulls (the busybox
//! image is local, nothing is pulled), gives its task definition a family or `--cluster` of its
//! own, and removes whatever containers carry that label when it ends, pass or fail.

mod support;

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bollard::models::ContainerSummary;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const FAMILY_LABEL: &str = "com.amazonaws.ecs.task-definition-family";
const CLUSTER_LABEL: &str = "com.amazonaws.ecs.cluster";
const CONTAINER_NAME_LABEL: &str = "com.amazonaws.ecs.container-name";

/// How long a task that should stop by itself may take, start to exit.
const RUN_LIMIT: Duration = Duration::from_secs(25);

/// A task definition written to a temporary directory, and where the agent's config would be.
struct TaskDef {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl TaskDef {
    fn new(json: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("taskdef.json");
        std::fs::write(&path, json).expect("write task definition");
        TaskDef { dir, path }
    }
}

/// `ecs-agent local run PATH ARGS…` with only the environment it needs.
fn local_run(config_dir: &Path, taskdef: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecs-agent"));
    cmd.env_clear()
        .env("ECS_AGENT_CONFIG_FILE_PATH", config_dir.join("absent.json"))
        .env("ECS_LOGFILE", "")
        .env("ECS_IMAGE_PULL_BEHAVIOR", "prefer-cached")
        // Nothing here talks to AWS; should anything try IMDS, it gets "connection refused".
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
        .args(["--ecs-config", "/nonexistent", "local", "run"])
        .arg(taskdef)
        .args(args);
    for var in ["PATH", "DOCKER_HOST"] {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running `local run`: its stdout line by line as it comes, its stderr at the end.
struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

/// How a `local run` ended.
struct Finished {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: String,
    took: Duration,
}

impl Finished {
    fn has(&self, line: &str) -> bool {
        self.stdout.iter().any(|l| l == line)
    }

    /// Index of the first stdout line equal to `line`; panics showing the output if none is.
    fn position(&self, line: &str) -> usize {
        self.stdout
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no line {line:?} in\n{self}"))
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.took,
            self.stdout.join("\n"),
            self.stderr
        )
    }
}

impl Agent {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ecs-agent starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Agent {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
            started: Instant::now(),
        }
    }

    /// The first stdout line, read so far or still to come, that satisfies `wanted`; panics if
    /// none comes within `limit`.
    fn wait_for_line(
        &mut self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        if let Some(seen) = self.stdout.iter().find(|l| wanted(l)) {
            return seen.clone();
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no {what} on stdout ({e:?}) after {:?}:\n{}",
                    self.started.elapsed(),
                    self.stdout.join("\n")
                ),
            }
        }
    }

    /// Ctrl-C, as a terminal sends it.
    fn interrupt(&self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"));
        kill(pid, Signal::SIGINT).expect("SIGINT delivered");
    }

    /// Waits for the process to exit by itself; kills it and panics after `limit`.
    fn finish(mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for ecs-agent") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain();
                panic!(
                    "ecs-agent still running after {limit:?}; stdout:\n{}",
                    self.stdout.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = self.started.elapsed();
        self.drain();
        Finished {
            code: status.code(),
            stdout: std::mem::take(&mut self.stdout),
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
            took,
        }
    }

    /// Collects what is left of stdout (the pipe closes when the process is gone).
    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(line);
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `local run` to its end.
fn run_to_end(taskdef: &TaskDef, args: &[&str]) -> Finished {
    Agent::spawn(local_run(taskdef.dir.path(), &taskdef.path, args, &[])).finish(RUN_LIMIT)
}

/// Runs `fut` on a fresh thread with its own runtime, so it works from any context.
fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(fut)
        })
        .join()
        .expect("docker thread")
    })
}

/// The containers carrying one label (`key=value`); removes them all when dropped.
struct Labelled {
    label: String,
}

impl Labelled {
    fn new(key: &str, value: &str) -> Self {
        Labelled {
            label: format!("{key}={value}"),
        }
    }

    async fn list_with(&self, docker: &bollard::Docker) -> Result<Vec<ContainerSummary>, String> {
        let filters = HashMap::from([("label".to_owned(), vec![self.label.clone()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        docker
            .list_containers(Some(options))
            .await
            .map_err(|e| e.to_string())
    }

    /// Every container with the label, running or not (`docker ps -a`).
    fn list(&self) -> Vec<ContainerSummary> {
        block_on(async {
            let docker = support::env::docker().await;
            self.list_with(&docker).await
        })
        .unwrap_or_else(|e| panic!("docker ps -a --filter label={}: {e}", self.label))
    }

    fn container_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .list()
            .iter()
            .filter_map(|c| c.labels.as_ref()?.get(CONTAINER_NAME_LABEL).cloned())
            .collect();
        names.sort();
        names
    }

    async fn remove_all(&self) {
        let Ok(docker) = bollard::Docker::connect_with_unix_defaults() else {
            return;
        };
        let rm = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        for c in self.list_with(&docker).await.unwrap_or_default() {
            if let Some(id) = c.id.as_deref() {
                let _ = docker.remove_container(id, Some(rm.clone())).await;
            }
        }
    }
}

impl Drop for Labelled {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failed test unwinds.
        let this = &*self;
        let _ = std::thread::scope(|s| {
            s.spawn(|| {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(this.remove_all());
                }
            })
            .join()
        });
    }
}

/// A family no other test, run or process uses, and the guard for its containers.
fn family(prefix: &str) -> (String, Labelled) {
    let family = support::env::unique_name(&format!("lr-{prefix}"));
    let guard = Labelled::new(FAMILY_LABEL, &family);
    (family, guard)
}

/// A task definition with these containers (JSON objects, without the image, which is added).
fn taskdef(family: &str, containers: &[&str]) -> TaskDef {
    let image = support::env::image();
    let containers: Vec<String> = containers
        .iter()
        .map(|c| format!(r#"{{"image":"{image}","memory":32,{c}}}"#))
        .collect();
    TaskDef::new(&format!(
        r#"{{"family":"{family}","containerDefinitions":[{}]}}"#,
        containers.join(",")
    ))
}

/// `ECS_DYNAMIC_HOST_PORT_RANGE` for one test: ten ports no other test or test process of this
/// file uses. Every `local run` starts allocating at the bottom of its range without asking
/// the host, so two of them on the default range would both pick the same port.
fn port_range(slot: u16) -> (u16, u16) {
    // Below the kernel's ephemeral range (32768+): no outgoing connection holds one of them.
    let base = 24_000 + (std::process::id() % 400) as u16 * 20 + slot * 10;
    (base, base + 9)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// `GET /` on a loopback port, retried until something answers or `limit` passes.
fn http_get(port: u16, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match get_once(port) {
            Ok(response) if !response.is_empty() => return response,
            Ok(_) => last = "empty response".to_owned(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("nothing answered HTTP on 127.0.0.1:{port} in {limit:?}: {last}");
}

fn get_once(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn exits_with_the_essential_containers_exit_code() {
    let (family, _guard) = family("exit");
    let def = taskdef(
        &family,
        &[r#""name":"app","command":["sh","-c","echo hi; exit 7"]"#],
    );
    let out = run_to_end(&def, &[]);
    assert_eq!(out.code, Some(7), "{out}");
    assert!(out.has("app | hi"), "{out}");
    assert!(out.has("[app] exited with code 7"), "{out}");
    assert!(
        out.has("essential container app exited with code 7"),
        "{out}"
    );
}

#[test]
fn streams_each_containers_logs_with_its_name() {
    let (family, _guard) = family("logs");
    let def = taskdef(
        &family,
        &[
            r#""name":"first","essential":false,"command":["sh","-c","echo from first"]"#,
            r#""name":"second","command":["sh","-c","echo from second"],
                "dependsOn":[{"containerName":"first","condition":"COMPLETE"}]"#,
        ],
    );
    let out = run_to_end(&def, &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.has("first | from first"), "{out}");
    assert!(out.has("second | from second"), "{out}");
    assert!(
        out.position("[first] exited with code 0") < out.position("[second] running"),
        "second ran before first completed:\n{out}"
    );
}

#[test]
fn rejects_an_invalid_task_definition_naming_every_field_before_starting() {
    let (family, guard) = family("invalid");
    let image = support::env::image();
    let def = TaskDef::new(&format!(
        r#"{{"family":"{family}","containerDefinitions":[
            {{"name":"app","memory":32,"command":["true"]}},
            {{"name":"helper","image":"{image}","memory":32,"essential":false,
              "dependsOn":[{{"containerName":"ghost","condition":"START"}}]}}]}}"#
    ));
    let out = run_to_end(&def, &[]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("containerDefinitions[0].image"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("containerDefinitions[1].dependsOn[0].containerName"),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "nothing may start:\n{out}");
    let made = guard.list();
    assert!(made.is_empty(), "containers were created: {made:?}");
}

/// Two quick containers, both of which exit 0.
fn two_quick_containers(family: &str) -> TaskDef {
    taskdef(
        family,
        &[
            r#""name":"first","essential":false,"command":["true"]"#,
            r#""name":"second","command":["sh","-c","exit 0"],
                "dependsOn":[{"containerName":"first","condition":"SUCCESS"}]"#,
        ],
    )
}

#[test]
fn removes_the_containers_after_the_task_stops() {
    let (family, guard) = family("remove");
    let out = run_to_end(&two_quick_containers(&family), &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.iter().any(|l| l.starts_with("[first] created ")),
        "{out}"
    );
    assert!(
        out.stdout
            .iter()
            .any(|l| l.starts_with("[second] created ")),
        "{out}"
    );
    let left = guard.list();
    assert!(left.is_empty(), "containers left behind: {left:?}\n{out}");
}

#[test]
fn keep_leaves_the_containers() {
    let (family, guard) = family("keep");
    let out = run_to_end(&two_quick_containers(&family), &["--keep"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(guard.container_names(), ["first", "second"], "{out}");
    // Docker 20.10 sends `die` before its container list records the exit, so the
    // list may say "running" for a moment after the agent has seen both exits.
    let all_exited = |list: &[ContainerSummary]| {
        list.iter()
            .all(|c| c.state.as_ref().map(|s| s.to_string()).as_deref() == Some("exited"))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut list = guard.list();
    while !all_exited(&list) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        list = guard.list();
    }
    assert!(all_exited(&list), "{list:?}");
}

#[test]
fn ctrl_c_stops_the_task_with_its_stop_timeouts() {
    let (family, guard) = family("ctrlc");
    let def = taskdef(
        &family,
        &[
            r#""name":"app","command":["sh","-c",
                "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"]"#,
            // PID 1 without a TERM handler ignores SIGTERM: only its stopTimeout ends it.
            r#""name":"stubborn","essential":false,"stopTimeout":2,"command":["sh","-c",
                "echo ignoring TERM; while true; do sleep 0.1; done"]"#,
        ],
    );
    let mut agent = Agent::spawn(local_run(def.dir.path(), &def.path, &[], &[]));
    agent.wait_for_line("app | ready", RUN_LIMIT, |l| l == "app | ready");
    agent.wait_for_line("stubborn | ignoring TERM", RUN_LIMIT, |l| {
        l == "stubborn | ignoring TERM"
    });
    agent.interrupt();
    // The default stop timeout is 30 s; stubborn's own 2 s must be the one used.
    let out = agent.finish(Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.iter().any(|l| l.starts_with("stopping")),
        "{out}"
    );
    assert!(out.has("[stubborn] stopping"), "{out}");
    assert!(out.has("[app] exited with code 0"), "{out}");
    assert!(out.has("[stubborn] exited with code 137"), "{out}");
    assert!(guard.list().is_empty(), "containers left behind\n{out}");
}

#[test]
fn the_examples_run() {
    let cluster = support::env::unique_name("lr-examples");
    let guard = Labelled::new(CLUSTER_LABEL, &cluster);
    let config = tempfile::tempdir().expect("temp dir");
    let cluster_args = ["--cluster", cluster.as_str()];

    let hello = Agent::spawn(local_run(
        config.path(),
        &example("hello.json"),
        &cluster_args,
        &[],
    ))
    .finish(RUN_LIMIT);
    assert_eq!(hello.code, Some(0), "{hello}");
    assert!(
        hello.has("hello | hello from ecs-agent local run"),
        "{hello}"
    );

    let (lo, hi) = port_range(0);
    let range = format!("{lo}-{hi}");
    let mut web = Agent::spawn(local_run(
        config.path(),
        &example("web-with-sidecar.json"),
        &cluster_args,
        &[("ECS_DYNAMIC_HOST_PORT_RANGE", &range)],
    ));
    // web's health check runs every 5 s; sidecar starts once web is healthy.
    web.wait_for_line("the sidecar's fetch", RUN_LIMIT, |l| {
        l == "sidecar | sidecar got: hello from the init container"
    });
    web.interrupt();
    // web (busybox httpd as PID 1) ignores SIGTERM: Docker kills it after its stopTimeout 5 s.
    let out = web.finish(Duration::from_secs(20));
    assert!(out.has("[web] healthy"), "{out}");
    assert!(out.has("[sidecar] exited with code 0"), "{out}");
    assert!(out.has("[web] exited with code 137"), "{out}");
    assert_eq!(out.code, Some(137), "{out}");
    let left = guard.list();
    assert!(left.is_empty(), "containers left behind: {left:?}\n{out}");
}

#[test]
fn a_dynamic_port_answers_http_while_the_task_runs() {
    let (family, guard) = family("port");
    let def = taskdef(
        &family,
        &[
            r#""name":"web","portMappings":[{"containerPort":8080}],"command":["sh","-c",
            "trap 'exit 0' TERM; mkdir -p /www; echo dynamic port works > /www/index.html; httpd -f -p 8080 -h /www & wait"]"#,
        ],
    );
    let (lo, hi) = port_range(1);
    let range = format!("{lo}-{hi}");
    let mut agent = Agent::spawn(local_run(
        def.dir.path(),
        &def.path,
        &[],
        &[("ECS_DYNAMIC_HOST_PORT_RANGE", &range)],
    ));
    let running = agent.wait_for_line("web's running line", RUN_LIMIT, |l| {
        l.starts_with("[web] running")
    });
    let host_port: u16 = running
        .strip_prefix("[web] running, ports ")
        .and_then(|p| p.strip_suffix("->8080/tcp"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no host port for 8080/tcp in {running:?}"));
    assert!(
        (lo..=hi).contains(&host_port),
        "{host_port} outside ECS_DYNAMIC_HOST_PORT_RANGE {range}"
    );
    let response = http_get(host_port, Duration::from_secs(10));
    let status = response.lines().next().and_then(|l| l.split(' ').nth(1));
    assert_eq!(status, Some("200"), "{response}");
    assert!(response.contains("dynamic port works"), "{response}");
    agent.interrupt();
    let out = agent.finish(Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(guard.list().is_empty(), "containers left behind\n{out}");
}

/// `ECS_ENGINE_AUTH_TYPE`/`ECS_ENGINE_AUTH_DATA` (both forms) authenticate pulls from the
/// loopback registry; a wrong password fails the task with CannotPullContainerError, never
/// printing the password.
#[test]
fn engine_auth_data_authenticates_private_registry_pulls() {
    let (family, _guard) = family("engineauth");
    let image = format!("{}/busybox:latest", support::env::registry());
    let def = TaskDef::new(&format!(
        r#"{{"family":"{family}","containerDefinitions":[{{"name":"app","image":"{image}","memory":32,"command":["true"]}}]}}"#
    ));
    let registry = support::env::registry();
    let password = support::env::registry_password();
    let user = support::env::registry_user();
    let dockercfg_auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    let cases = [
        (
            "docker",
            format!(r#"{{"{registry}":{{"username":"{user}","password":"{password}"}}}}"#),
            Some(0),
        ),
        (
            "dockercfg",
            format!(r#"{{"https://{registry}":{{"auth":"{dockercfg_auth}","email":"a@b.c"}}}}"#),
            Some(0),
        ),
        (
            "docker",
            format!(r#"{{"{registry}":{{"username":"{user}","password":"wrong-pass-123"}}}}"#),
            Some(1),
        ),
    ];
    for (kind, data, code) in cases {
        let env = [
            ("ECS_IMAGE_PULL_BEHAVIOR", "always"),
            ("ECS_ENGINE_AUTH_TYPE", kind),
            ("ECS_ENGINE_AUTH_DATA", data.as_str()),
        ];
        let out = Agent::spawn(local_run(def.dir.path(), &def.path, &[], &env)).finish(RUN_LIMIT);
        assert_eq!(out.code, code, "{kind}: {out}");
        if code == Some(1) {
            assert!(
                out.stdout
                    .iter()
                    .any(|l| l.contains("CannotPullContainerError")),
                "{out}"
            );
            assert!(
                !format!("{out}").contains("wrong-pass-123"),
                "password printed: {out}"
            );
        }
    }
}
