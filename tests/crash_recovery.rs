//! Crash recovery end to end: the agent binary, the control-plane simulator, the IMDS stub and
//! the real dockerd. The agent is killed with SIGKILL at many points of its tasks' lives
//! (failpoints: during a pull, after a create before the start, after a start, after a report
//! was accepted but before it was recorded, during a stop, during cleanup, right after a state
//! save; and at arbitrary times), restarted each time, and the test checks what ECS and Docker
//! see: never two containers for one task container, no lost task, every task's and every
//! container's reports in order with exit codes on the stopped containers, each state change
//! accepted once except where a kill fell between ECS accepting it and the agent saving that
//! (read from the state file while the agent is dead), no host port leaked, nothing left
//! behind after cleanup. At least 50 of the kills are the agent's own failpoints (every named
//! one at least once); kills by the test at random times come on top.
//!
//! The agent only ever talks to 127.0.0.1: IMDS is the stub, ECS is the simulator.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use support::agent::{payload, Agent};
use support::ecs_sim::{EcsSim, WsKind};
use support::imds::{ImdsConfig, ImdsStub};

/// How long the simulator gets to finish a dead agent's last requests before its death is
/// recorded and the next life starts.
const DEATH_SETTLE: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(60);
/// The tests of this file run one at a time: one restarts dockerd, and all use the fixed
/// credentials endpoint port.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Failpoint kills the fault-injection test must survive (kills by the test do not count).
const KILLS: usize = 50;
/// Where each life of the agent dies: a failpoint and its occurrence, or `None` for a kill
/// by the test at a time of its choosing.
const SCHEDULE: &[Option<&str>] = &[
    Some("pulling:1"),
    Some("created:1"),
    Some("started:1"),
    Some("reported:1"),
    Some("saved:2"),
    Some("stopping:1"),
    Some("stopped:1"),
    Some("removed:1"),
    None,
    Some("created:2"),
    Some("saved:7"),
    Some("started:2"),
    Some("reported:2"),
    None,
    Some("saved:13"),
    Some("removed:2"),
];

/// One test's cluster, simulator, IMDS stub and agent data directory, kept across restarts.
struct Stand {
    sim: EcsSim,
    imds: ImdsStub,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    cluster: String,
}

impl Stand {
    async fn new(prefix: &str, first_port: u16) -> Stand {
        let cluster = support::env::unique_name(prefix);
        let sim = EcsSim::for_cluster(&cluster).await;
        let imds = ImdsStub::start(ImdsConfig::default()).await;
        let env = vec![
            ("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION".into(), "1s".into()),
            (
                "ECS_DYNAMIC_HOST_PORT_RANGE".into(),
                format!("{first_port}-{}", first_port + 2),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        Stand {
            sim,
            imds,
            dir,
            env,
            cluster,
        }
    }

    /// Starts the agent on the kept data directory, armed with `failpoint`.
    fn start(&self, failpoint: Option<&str>) -> Agent {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(f) = failpoint {
            env.push(("ECS_AGENT_FAILPOINT", f));
        }
        let mut agent = Agent::start_in(&self.sim, &self.imds, &env, self.dir.path());
        agent.remove_containers = false;
        agent
    }

    fn task(&self, n: usize, exits_by_itself: bool) -> Value {
        let main = if exits_by_itself {
            "sleep 2"
        } else {
            "trap 'exit 0' TERM; while true; do sleep 0.1; done"
        };
        json!({
            "arn": format!("arn:aws:ecs:us-west-2:123456789012:task/{}/crash{n}", self.cluster),
            "family": "crash", "version": "1", "desiredStatus": "RUNNING", "launchType": "EC2",
            "networkMode": "bridge",
            "containers": [
                {"name": "app", "image": support::env::image(), "essential": true, "cpu": 10,
                 "memory": 16, "command": ["sh", "-c", main],
                 "portMappings": [{"containerPort": 8080, "protocol": "tcp"}]},
                {"name": "side", "image": support::env::image(), "essential": false, "cpu": 10,
                 "memory": 16,
                 "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]}
            ]
        })
    }

    /// Statuses ECS received for each task, in order.
    /// Sends ACS a PayloadMessage with `tasks`.
    fn acs_payload(&self, message_id: &str, seq: i64, tasks: Vec<Value>) {
        self.sim
            .acs_send(payload(&self.sim, message_id, seq, tasks))
            .unwrap();
    }

    fn reports(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.sim.task_state_changes() {
            let task = r.body["task"].as_str().unwrap_or_default().to_owned();
            let status = r.body["status"].as_str().unwrap_or_default().to_owned();
            out.entry(task).or_default().push(status);
        }
        out
    }

    fn acked(&self, message_id: &str) -> bool {
        self.sim.acs_frames().iter().any(|f| {
            f.msg_type.as_deref() == Some("AckRequest") && f.message_id() == Some(message_id)
        })
    }
}

/// The cluster's containers as `(task ARN, container name) → how many`.
async fn containers_by_task(cluster: &str) -> HashMap<(String, String), usize> {
    let docker = support::env::docker().await;
    let label = format!("com.amazonaws.ecs.cluster={cluster}");
    let mut out = HashMap::new();
    for c in support::env::containers_labelled(&docker, &label)
        .await
        .unwrap()
    {
        let labels = c.labels.unwrap_or_default();
        let key = (
            labels
                .get("com.amazonaws.ecs.task-arn")
                .cloned()
                .unwrap_or_default(),
            labels
                .get("com.amazonaws.ecs.container-name")
                .cloned()
                .unwrap_or_default(),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// A task of the workload and where ECS stands with it.
struct Tracked {
    json: Value,
    /// Desired STOPPED was sent (or the task stops by itself).
    stopping: bool,
    exits_by_itself: bool,
}

/// Payloads sent to ACS and not acknowledged yet: ACS sends them again on a new connection and
/// after a while without an ack (a frame sent while a dead connection was still the
/// simulator's current one is lost, as on a real network).
#[derive(Default)]
struct Outbox {
    next_id: usize,
    unacked: Vec<(String, Value, Instant)>,
}

/// How long ACS waits for an ack before sending a payload again.
const RETRANSMIT: Duration = Duration::from_secs(3);

impl Outbox {
    fn send(&mut self, stand: &Stand, tasks: Vec<Value>) {
        self.next_id += 1;
        let id = format!("crash-payload-{}", self.next_id);
        let frame = payload(&stand.sim, &id, self.next_id as i64, tasks);
        let _ = stand.sim.acs_send(frame.clone());
        self.unacked.push((id, frame, Instant::now()));
    }

    /// Sends again what was not acked: all of it (`all`, a new connection) or what waited
    /// longer than [`RETRANSMIT`].
    fn resend(&mut self, stand: &Stand, all: bool) {
        self.unacked.retain(|(id, _, _)| !stand.acked(id));
        for (_, frame, at) in &mut self.unacked {
            if all || at.elapsed() > RETRANSMIT {
                let _ = stand.sim.acs_send(frame.clone());
                *at = Instant::now();
            }
        }
    }

    /// Waits until every payload is acked, sending again as ACS does.
    async fn settle(&mut self, stand: &Stand) {
        let deadline = Instant::now() + WAIT;
        while !self.unacked.is_empty() {
            assert!(Instant::now() < deadline, "payloads never acked");
            self.resend(stand, false);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Checks no task container exists twice; panics with the duplicates.
async fn assert_no_duplicates(cluster: &str) {
    let dupes: Vec<_> = containers_by_task(cluster)
        .await
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(dupes.is_empty(), "duplicate containers: {dupes:?}");
}

/// One thing a report tells ECS: a task's status, or a container's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Task(String, String),
    Container(String, String, String),
}

/// The order of the backend statuses.
fn rank(backend: &str) -> u8 {
    match backend {
        "PENDING" => 1,
        "RUNNING" => 2,
        "STOPPED" => 3,
        other => panic!("not a backend status: {other}"),
    }
}

/// The backend status a saved engine status (`sent`) covers.
fn saved_rank(status: &str) -> u8 {
    match status {
        "NONE" => 0,
        "MANIFEST_PULLED" | "PULLED" | "CREATED" => 1,
        "RUNNING" | "RESOURCES_PROVISIONED" => 2,
        "STOPPED" => 3,
        other => panic!("not an engine status: {other}"),
    }
}

/// The items of one accepted report.
fn items_of(body: &Value) -> (Item, Vec<Item>) {
    let task = body["task"].as_str().unwrap_or_default().to_owned();
    let status = body["status"].as_str().unwrap_or_default().to_owned();
    let containers = body["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            Item::Container(
                task.clone(),
                c["containerName"].as_str().unwrap_or_default().to_owned(),
                c["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (Item::Task(task, status), containers)
}

/// What the agent's saved state (read while it is dead) records as accepted by ECS, as
/// "does it cover this item".
struct Saved(Value);

impl Saved {
    /// The state file the next life will load: the current one, else the previous copy.
    fn read(dir: &std::path::Path) -> Saved {
        let parse = |name: &str| {
            std::fs::read(dir.join("data").join(name))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        };
        Saved(
            parse("ecs-agent-data.json")
                .or_else(|| parse("ecs-agent-data.json.prev"))
                .unwrap_or(Value::Null),
        )
    }

    /// Whether a restart could send `item` again: ECS accepted it and the state does not say
    /// so. A task the state no longer holds is never reported again.
    fn may_repeat(&self, item: &Item) -> bool {
        let task_of = |arn: &str| {
            self.0["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["task"]["arn"] == arn)
                .cloned()
        };
        match item {
            Item::Task(arn, status) => task_of(arn)
                .is_some_and(|t| saved_rank(t["sent"].as_str().unwrap_or("NONE")) < rank(status)),
            Item::Container(arn, name, status) => task_of(arn).is_some_and(|t| {
                t["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["name"] == name.as_str())
                    .any(|c| saved_rank(c["sent"].as_str().unwrap_or("NONE")) < rank(status))
            }),
        }
    }
}

/// One life of the agent, once it is over.
struct Death {
    /// The failpoint it was armed with, `None` for a kill by the test at a random time.
    point: Option<&'static str>,
    /// The armed failpoint killed it (not the test after waiting in vain).
    real: bool,
    /// When the test saw it dead: reports accepted before then belong to this life or earlier.
    at: SystemTime,
    /// Items ECS had accepted that the saved state did not record: the ones the next life may
    /// legitimately send again.
    window: BTreeSet<Item>,
}

/// Everything ECS accepted so far, as items.
fn accepted_items(stand: &Stand) -> BTreeSet<Item> {
    let mut out = BTreeSet::new();
    for r in stand.sim.task_state_changes() {
        let (task, containers) = items_of(&r.body);
        out.insert(task);
        out.extend(containers);
    }
    out
}

/// The checks on what ECS received over all lives:
/// * each task: RUNNING then STOPPED, nothing else, in that order;
/// * each container of each task: its statuses never go backwards and end STOPPED, with an
///   exit code on every STOPPED;
/// * exactly once as far as ECS can tell: an item is accepted again only by a later life, and
///   only as many times as it was in a death's window (accepted by ECS, not yet saved as sent).
///   A task status counts as sent again when a report carries it with nothing new (a report
///   that carries new container statuses at the task's current status is their vehicle).
///
/// Returns how many items were sent again.
fn check_reports(stand: &Stand, tasks: &[Tracked], deaths: &[Death]) -> usize {
    let life_of = |at: SystemTime| deaths.iter().filter(|d| d.at < at).count();
    // Where each item was sent (the life of each copy).
    let mut copies: BTreeMap<Item, Vec<usize>> = BTreeMap::new();
    let mut per_task: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut per_container: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in stand.sim.task_state_changes() {
        let life = life_of(r.at);
        let (task, containers) = items_of(&r.body);
        let anything_new = containers.iter().any(|c| !copies.contains_key(c));
        if !anything_new || !copies.contains_key(&task) {
            copies.entry(task.clone()).or_default().push(life);
        }
        for c in &containers {
            copies.entry(c.clone()).or_default().push(life);
        }
        let Item::Task(arn, status) = task else {
            unreachable!()
        };
        per_task.entry(arn.clone()).or_default().push(status);
        for c in r.body["containers"].as_array().into_iter().flatten() {
            let name = c["containerName"].as_str().unwrap_or_default().to_owned();
            let status = c["status"].as_str().unwrap_or_default().to_owned();
            if status == "STOPPED" {
                assert!(
                    c["exitCode"].is_i64(),
                    "{arn} {name}: STOPPED without an exit code: {}",
                    r.body
                );
            }
            per_container
                .entry((arn.clone(), name))
                .or_default()
                .push(status);
        }
    }
    for t in tasks {
        let arn = t.json["arn"].as_str().unwrap();
        let seen = per_task.get(arn).cloned().unwrap_or_default();
        let mut distinct = seen.clone();
        distinct.dedup();
        // Desired STOPPED is only sent once RUNNING was reported, so each task ran.
        assert_eq!(
            distinct,
            ["RUNNING", "STOPPED"],
            "{arn}: reports out of order or missing: {seen:?}"
        );
        for name in ["app", "side"] {
            let key = (arn.to_owned(), name.to_owned());
            let statuses = per_container.get(&key).cloned().unwrap_or_default();
            assert!(
                statuses.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
                "{arn} {name}: statuses out of order: {statuses:?}"
            );
            assert_eq!(
                statuses.last().map(String::as_str),
                Some("STOPPED"),
                "{arn} {name}: never reported STOPPED: {statuses:?}"
            );
        }
    }
    let mut repeats = 0;
    for (item, lives) in &copies {
        let windows = deaths.iter().filter(|d| d.window.contains(item)).count();
        assert!(
            lives.len() <= 1 + windows,
            "{item:?} accepted {} times (in lives {lives:?}) but only {windows} deaths could \
             make it repeat",
            lives.len()
        );
        assert!(
            lives.windows(2).all(|w| w[0] < w[1]),
            "{item:?} sent twice by one life: {lives:?}"
        );
        repeats += lives.len() - 1;
    }
    repeats
}

/// The failpoints of [`SCHEDULE`], each of which must kill the agent at least once.
fn failpoint_names() -> BTreeSet<&'static str> {
    SCHEDULE
        .iter()
        .flatten()
        .map(|p| p.split_once(':').unwrap().0)
        .collect()
}

/// How a failpoint kill counts: every named point fired, and at least [`KILLS`] of them.
fn enough_real_kills(deaths: &[Death]) -> bool {
    let real: Vec<&str> = deaths
        .iter()
        .filter(|d| d.real)
        .filter_map(|d| d.point)
        .map(|p| p.split_once(':').unwrap().0)
        .collect();
    real.len() >= KILLS && failpoint_names().iter().all(|n| real.contains(n))
}

#[tokio::test]
async fn fifty_sigkills_lose_nothing_and_duplicate_nothing() {
    let _serial = SERIAL.lock().await;
    // Below the kernel's ephemeral range (32768+): no outgoing connection holds one of them.
    let port = 21000 + (std::process::id() % 1000) as u16 * 3;
    let stand = Stand::new("crash", port).await;
    let mut outbox = Outbox::default();
    let mut tasks: Vec<Tracked> = Vec::new();
    let mut deaths: Vec<Death> = Vec::new();
    let mut agent = stand.start(SCHEDULE[0]);
    let mut born = Instant::now();
    let mut connections = 0;
    let deadline = Instant::now() + Duration::from_secs(420);
    loop {
        assert!(
            Instant::now() < deadline,
            "no end after {} deaths ({} real); reports: {:?}; last log:\n{}",
            deaths.len(),
            deaths.iter().filter(|d| d.real).count(),
            stand.reports(),
            agent.log()
        );
        assert_no_duplicates(&stand.cluster).await;
        let reports = stand.reports();
        let done = |t: &Tracked| {
            reports
                .get(t.json["arn"].as_str().unwrap())
                .is_some_and(|r| r.iter().any(|s| s == "STOPPED"))
        };
        let enough = enough_real_kills(&deaths);
        if enough && tasks.iter().all(done) {
            break;
        }
        // The agent died (at its failpoint) or its time is up: restart it. A failpoint not
        // reached in time is a kill by the test too, and does not count as a failpoint kill.
        let point = SCHEDULE[deaths.len() % SCHEDULE.len()];
        let timed_out = match point {
            None => {
                born.elapsed() > Duration::from_millis(400 + (deaths.len() as u64 * 137) % 1800)
            }
            Some(_) => born.elapsed() > Duration::from_secs(20),
        };
        if timed_out {
            let _ = agent.child.kill();
        }
        if let Ok(Some(status)) = agent.child.try_wait() {
            let log = agent.log();
            assert_eq!(
                status.signal(),
                Some(9),
                "the agent ended otherwise than by SIGKILL ({status:?}); log:\n{log}"
            );
            let real = point.is_some() && !timed_out;
            assert!(
                !real || log.contains("failpoint reached"),
                "killed by something else than its failpoint {point:?}; log:\n{log}"
            );
            // A request the agent wrote just before it died may still be in the simulator's
            // hands: let it be accepted now, before the next life starts, so that it counts in
            // this death's window and this life (CI once saw such a copy counted in the next).
            tokio::time::sleep(DEATH_SETTLE).await;
            let saved = Saved::read(stand.dir.path());
            let window = accepted_items(&stand)
                .into_iter()
                .filter(|i| saved.may_repeat(i))
                .collect();
            deaths.push(Death {
                point,
                real,
                at: SystemTime::now(),
                window,
            });
            connections = stand.sim.acs_connections();
            agent = stand.start(SCHEDULE[deaths.len() % SCHEDULE.len()]);
            born = Instant::now();
        }
        if stand.sim.acs_connections() > connections && stand.sim.is_connected(WsKind::Acs) {
            connections = stand.sim.acs_connections();
            outbox.resend(&stand, true);
        }
        outbox.resend(&stand, false);
        if !stand.sim.is_connected(WsKind::Acs) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        // Keep up to three tasks going while kills remain to be made.
        let active = tasks.iter().filter(|t| !done(t)).count();
        if !enough && active < 3 {
            let task = stand.task(tasks.len(), tasks.len() % 3 == 2);
            outbox.send(&stand, vec![task.clone()]);
            tasks.push(Tracked {
                exits_by_itself: tasks.len() % 3 == 2,
                json: task,
                stopping: false,
            });
        }
        // Stop the running ones.
        for t in tasks.iter_mut().filter(|t| !t.stopping) {
            let arn = t.json["arn"].as_str().unwrap();
            if reports
                .get(arn)
                .is_some_and(|r| r.iter().any(|s| s == "RUNNING"))
            {
                t.stopping = true;
                if !t.exits_by_itself {
                    outbox.send(&stand, vec![stopped(&t.json)]);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(agent);

    // A last life without a failpoint: all three dynamic ports must be free again (a leaked
    // port leaves one of these tasks without a RUNNING report).
    let agent = start_connected(&stand).await;
    outbox.resend(&stand, true);
    let last: Vec<Value> = (0..3).map(|i| stand.task(1000 + i, false)).collect();
    outbox.send(&stand, last.clone());
    outbox.settle(&stand).await;
    for t in &last {
        report(&stand, t, "RUNNING", &agent).await;
    }
    let stops: Vec<Value> = last.iter().map(stopped).collect();
    outbox.send(&stand, stops);
    outbox.settle(&stand).await;
    for t in &last {
        tasks.push(Tracked {
            json: t.clone(),
            stopping: true,
            exits_by_itself: false,
        });
    }
    // Everything is reported and cleaned up: no container of the cluster is left.
    let settled = Instant::now() + WAIT;
    loop {
        let reports = stand.reports();
        let all_stopped = tasks.iter().all(|t| {
            reports
                .get(t.json["arn"].as_str().unwrap())
                .is_some_and(|r| r.iter().any(|s| s == "STOPPED"))
        });
        let left = containers_by_task(&stand.cluster).await;
        if all_stopped && left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < settled,
            "not settled: {} containers left {left:?}; log:\n{}",
            left.len(),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let repeats = check_reports(&stand, &tasks, &deaths);
    let mut histogram: BTreeMap<String, usize> = BTreeMap::new();
    for d in &deaths {
        let name = match (d.point, d.real) {
            (Some(p), true) => p.to_owned(),
            (Some(p), false) => format!("{p}(missed, test kill)"),
            (None, _) => "random(test kill)".to_owned(),
        };
        *histogram.entry(name).or_default() += 1;
    }
    let windows: usize = deaths.iter().map(|d| d.window.len()).sum();
    eprintln!(
        "{} deaths, {} at failpoints {histogram:?}; {} tasks; {repeats} items sent again, \
         {windows} items in crash windows",
        deaths.len(),
        deaths.iter().filter(|d| d.real).count(),
        tasks.len()
    );
    assert!(enough_real_kills(&deaths));
}

/// Starts the agent and waits for its ACS connection.
async fn start_connected(stand: &Stand) -> Agent {
    let before = stand.sim.acs_connections();
    let agent = stand.start(None);
    assert!(
        stand
            .sim
            .wait_connected(WsKind::Acs, before + 1, WAIT)
            .await,
        "the agent did not connect; log:\n{}",
        agent.log()
    );
    agent
}

/// Waits for a report of `status` for the task and returns it.
async fn report(stand: &Stand, task: &Value, status: &str, agent: &Agent) -> Value {
    let (arn, status_s) = (task["arn"].clone(), status.to_owned());
    stand
        .sim
        .wait_task_state_change(
            move |b| b["task"] == arn && b["status"] == json!(status_s),
            WAIT,
        )
        .await
        .unwrap_or_else(|| panic!("no {status} report; log:\n{}", agent.log()))
        .body
}

/// Kills the agent with SIGKILL and waits for it.
fn kill(mut agent: Agent) {
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
}

fn stopped(task: &Value) -> Value {
    let mut t = task.clone();
    t["desiredStatus"] = json!("STOPPED");
    t
}

/// The credentials endpoint's status for `id`, once it answers.
async fn credentials_status(id: &str) -> u16 {
    let path = format!("/v2/credentials/{id}");
    for _ in 0..100 {
        if let Ok(r) = support::http::get("127.0.0.1:51679", &path, &[]).await {
            return r.status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the credentials endpoint does not answer")
}

#[tokio::test]
async fn a_restart_adopts_the_running_task_and_its_credentials_wait_for_acs() {
    let _serial = SERIAL.lock().await;
    let stand = Stand::new("adopt", 45500).await;
    let agent = start_connected(&stand).await;
    let mut task = stand.task(1, false);
    let cid = support::env::unique_name("cid");
    task["roleCredentials"] = json!({"credentialsId": cid, "roleArn": "arn:aws:iam::123456789012:role/app",
        "accessKeyId": "ASIATEST", "secretAccessKey": "SECRETKEY", "sessionToken": "TOKEN", "expiration": "2030-01-01T00:00:00Z"});
    stand.acs_payload("adopt-1", 1, vec![task.clone()]);
    let running = report(&stand, &task, "RUNNING", &agent).await;
    let before = containers_by_task(&stand.cluster).await;
    assert_eq!(credentials_status(&cid).await, 200);
    kill(agent);

    let agent = start_connected(&stand).await;
    assert_eq!(
        credentials_status(&cid).await,
        503,
        "a known task's credentials wait for ACS to send them again"
    );
    let state = std::fs::read_to_string(stand.dir.path().join("data/ecs-agent-data.json")).unwrap();
    assert!(!state.contains("SECRETKEY"), "no secret in the saved state");
    stand.sim.acs_send(json!({"type": "IAMRoleCredentialsMessage", "message": {
        "messageId": "adopt-creds", "taskArn": task["arn"], "roleType": "TaskApplication",
        "roleCredentials": {"credentialsId": cid, "roleArn": "arn:aws:iam::123456789012:role/app",
            "accessKeyId": "ASIATEST2", "secretAccessKey": "SECRETKEY2", "sessionToken": "TOKEN2", "expiration": "2030-01-01T00:00:00Z"}
    }})).unwrap();
    let mut status = 0;
    for _ in 0..50 {
        status = credentials_status(&cid).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "served once ACS sent them");
    assert_eq!(
        containers_by_task(&stand.cluster).await,
        before,
        "the running containers were adopted, none created"
    );
    stand.acs_payload("adopt-2", 2, vec![stopped(&task)]);
    let done = report(&stand, &task, "STOPPED", &agent).await;
    let ids = |r: &Value| -> BTreeMap<String, Value> {
        r["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["containerName"].as_str().unwrap_or_default().to_owned(),
                    c["runtimeId"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        ids(&done),
        ids(&running),
        "the same containers were stopped"
    );
}

#[tokio::test]
async fn a_corrupt_state_file_is_set_aside_and_the_previous_copy_used() {
    let _serial = SERIAL.lock().await;
    let stand = Stand::new("corrupt", 45510).await;
    let agent = start_connected(&stand).await;
    let arn = stand.sim.container_instance_arn().unwrap();
    let task = stand.task(1, false);
    stand.acs_payload("corrupt-1", 1, vec![task.clone()]);
    report(&stand, &task, "RUNNING", &agent).await;
    kill(agent);
    let path = stand.dir.path().join("data/ecs-agent-data.json");
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();

    let agent = start_connected(&stand).await;
    assert!(
        agent.log().contains("unreadable"),
        "says what it did:\n{}",
        agent.log()
    );
    assert!(stand
        .dir
        .path()
        .join("data/ecs-agent-data.json.corrupt")
        .exists());
    let last = stand.sim.registrations().last().unwrap().body.clone();
    assert_eq!(
        last["containerInstanceArn"],
        json!(arn),
        "the same instance"
    );
    stand.acs_payload("corrupt-2", 2, vec![stopped(&task)]);
    report(&stand, &task, "STOPPED", &agent).await;
    assert_no_duplicates(&stand.cluster).await;
    drop(agent);
    support::agent::remove_containers(&stand.cluster).await;
}

/// Runs a task, has `scripts/test-env <how>` take dockerd down and up again under it, and
/// checks the agent reports the task's dead containers (with exit codes) and goes on with the
/// new dockerd. Prints when dockerd answered again and when the report was in.
async fn docker_outage_is_survived(prefix: &str, port: u16, how: &str) {
    let stand = Stand::new(prefix, port).await;
    let agent = start_connected(&stand).await;
    let task = stand.task(1, false);
    stand.acs_payload(&format!("{prefix}-1"), 1, vec![task.clone()]);
    report(&stand, &task, "RUNNING", &agent).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-env");
    let outage = Instant::now();
    let out = std::process::Command::new(script)
        .arg(how)
        .output()
        .unwrap();
    let back = outage.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped_report = report(&stand, &task, "STOPPED", &agent).await;
    eprintln!(
        "{how}: dockerd answered again after {} ms, the STOPPED report was in after {} ms",
        back.as_millis(),
        outage.elapsed().as_millis()
    );
    assert_eq!(
        stopped_report["reason"], "Essential container in task exited",
        "{stopped_report}"
    );
    // Every container's last report says STOPPED, with the exit code Docker recorded.
    let last = last_container_reports(&stand, &task);
    for name in ["app", "side"] {
        let c = last
            .get(name)
            .unwrap_or_else(|| panic!("{name} never reported"));
        assert_eq!(c["status"], "STOPPED", "{name}: {c}");
        assert!(c["exitCode"].is_i64(), "{name} without an exit code: {c}");
    }
    // The agent goes on with the new dockerd.
    let next = stand.task(2, false);
    stand.acs_payload(&format!("{prefix}-2"), 2, vec![next.clone()]);
    report(&stand, &next, "RUNNING", &agent).await;
    drop(agent);
    support::agent::remove_containers(&stand.cluster).await;
}

#[tokio::test]
async fn a_docker_restart_is_survived_and_the_dead_containers_reported() {
    let _serial = SERIAL.lock().await;
    docker_outage_is_survived("dockerd", 45520, "restart-dockerd").await;
}

#[tokio::test]
async fn a_killed_dockerd_is_survived_and_the_dead_containers_reported() {
    let _serial = SERIAL.lock().await;
    docker_outage_is_survived("dockerkill", 45540, "kill-dockerd").await;
}

#[tokio::test]
async fn containers_of_the_cluster_unknown_to_the_state_are_reported_and_removed_when_asked() {
    use bollard::models::ContainerCreateBody;
    use bollard::query_parameters::CreateContainerOptionsBuilder;
    let _serial = SERIAL.lock().await;
    let mut stand = Stand::new("unknown", 45530).await;
    let docker = support::env::docker().await;
    let name = support::env::unique_name("ecs-unknown");
    let labels = HashMap::from([
        (
            "com.amazonaws.ecs.cluster".to_owned(),
            stand.cluster.clone(),
        ),
        (
            "com.amazonaws.ecs.task-arn".to_owned(),
            format!(
                "arn:aws:ecs:us-west-2:123456789012:task/{}/lost",
                stand.cluster
            ),
        ),
    ]);
    let body = ContainerCreateBody {
        image: Some(support::env::image()),
        cmd: Some(vec!["true".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    docker.create_container(Some(options), body).await.unwrap();
    let exists = || async { docker.inspect_container(&name, None).await.is_ok() };

    let agent = start_connected(&stand).await;
    let mut logged = false;
    for _ in 0..100 {
        logged = agent.log().contains("unknown to the agent state");
        if logged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "reported; log:\n{}", agent.log());
    assert!(exists().await, "left alone unless asked");
    kill(agent);

    stand
        .env
        .push(("ECS_REMOVE_UNKNOWN_CONTAINERS".into(), "true".into()));
    let agent = start_connected(&stand).await;
    let mut gone = false;
    for _ in 0..100 {
        gone = !exists().await;
        if gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "removed when asked; log:\n{}", agent.log());
}

/// The saved state as JSON (current file).
fn saved_json(stand: &Stand) -> Value {
    let bytes = std::fs::read(stand.dir.path().join("data/ecs-agent-data.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The Docker IDs of the cluster's containers, by container name.
async fn ids_by_name(cluster: &str) -> BTreeMap<String, Vec<String>> {
    let docker = support::env::docker().await;
    let label = format!("com.amazonaws.ecs.cluster={cluster}");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in support::env::containers_labelled(&docker, &label)
        .await
        .unwrap()
    {
        let labels = c.labels.unwrap_or_default();
        let name = labels
            .get("com.amazonaws.ecs.container-name")
            .cloned()
            .unwrap_or_default();
        out.entry(name).or_default().extend(c.id);
    }
    out
}

/// Waits (off the runtime) for the agent to end; panics unless SIGKILL ended it.
async fn died_at_failpoint(agent: Agent) {
    let (agent, status) = tokio::task::spawn_blocking(move || {
        let mut agent = agent;
        let status = agent.child.wait().unwrap();
        (agent, status)
    })
    .await
    .unwrap();
    assert_eq!(status.signal(), Some(9), "log:\n{}", agent.log());
    assert!(agent.log().contains("failpoint reached"), "{}", agent.log());
}

#[tokio::test]
async fn a_container_created_just_before_a_crash_is_adopted_by_name_not_created_again() {
    let _serial = SERIAL.lock().await;
    let stand = Stand::new("byname", 45550).await;
    let agent = stand.start(Some("created:1"));
    assert!(
        stand.sim.wait_connected(WsKind::Acs, 1, WAIT).await,
        "log:\n{}",
        agent.log()
    );
    let task = stand.task(1, false);
    stand.acs_payload("byname-1", 1, vec![task.clone()]);
    // Dies right after Docker created a container, before its ID was saved (the creates of a
    // task's containers run side by side: the other one may be there too).
    died_at_failpoint(agent).await;
    let before = ids_by_name(&stand.cluster).await;
    let saved = saved_json(&stand);
    let orphans: BTreeMap<String, String> = saved["tasks"][0]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["in_flight"] == "CREATED" && c["docker_id"].is_null())
        .filter_map(|c| {
            let name = c["name"].as_str().unwrap().to_owned();
            let ids = before.get(&name)?;
            assert_eq!(ids.len(), 1, "{name}: {ids:?}");
            Some((name, ids[0].clone()))
        })
        .collect();
    assert!(
        !orphans.is_empty(),
        "a container exists whose create was under way and whose ID was never saved: \
         {before:?}; {saved}"
    );

    // The next life creates them again by the same names: Docker says 409, the agent adopts.
    let agent = start_connected(&stand).await;
    let running = report(&stand, &task, "RUNNING", &agent).await;
    let after = ids_by_name(&stand.cluster).await;
    assert_eq!(after.values().map(Vec::len).sum::<usize>(), 2, "{after:?}");
    let last = last_container_reports(&stand, &task);
    for (name, id) in &orphans {
        assert_eq!(
            after[name],
            std::slice::from_ref(id),
            "{name}: the same container, not a second"
        );
        assert_eq!(last[name]["runtimeId"], json!(id), "{running}");
    }
    drop(agent);
    support::agent::remove_containers(&stand.cluster).await;
}

/// Each container's last report for the task, by container name.
fn last_container_reports(stand: &Stand, task: &Value) -> BTreeMap<String, Value> {
    let mut last = BTreeMap::new();
    for r in stand.sim.task_state_changes() {
        if r.body["task"] == task["arn"] {
            for c in r.body["containers"].as_array().into_iter().flatten() {
                last.insert(c["containerName"].as_str().unwrap().to_owned(), c.clone());
            }
        }
    }
    last
}

#[tokio::test]
async fn a_container_that_exited_while_the_agent_was_down_is_reported_stopped_with_its_exit_code() {
    let _serial = SERIAL.lock().await;
    let stand = Stand::new("downexit", 45560).await;
    let agent = start_connected(&stand).await;
    let task = stand.task(1, false);
    stand.acs_payload("downexit-1", 1, vec![task.clone()]);
    report(&stand, &task, "RUNNING", &agent).await;
    kill(agent);
    // While the agent is down, the essential container is killed (exit code 137).
    let app = ids_by_name(&stand.cluster).await["app"][0].clone();
    let docker = support::env::docker().await;
    docker
        .kill_container(
            &app,
            Some(
                bollard::query_parameters::KillContainerOptionsBuilder::default()
                    .signal("KILL")
                    .build(),
            ),
        )
        .await
        .unwrap();
    let mut waited = docker.wait_container(
        &app,
        None::<bollard::query_parameters::WaitContainerOptions>,
    );
    while futures_util::StreamExt::next(&mut waited).await.is_some() {}

    let agent = start_connected(&stand).await;
    let stopped_report = report(&stand, &task, "STOPPED", &agent).await;
    assert_eq!(
        stopped_report["reason"], "Essential container in task exited",
        "{stopped_report}"
    );
    let last = last_container_reports(&stand, &task);
    let reported = last
        .get("app")
        .cloned()
        .unwrap_or_else(|| panic!("{last:?}"));
    assert_eq!(reported["status"], "STOPPED");
    assert_eq!(reported["exitCode"], 137, "{reported}");
    assert_eq!(reported["runtimeId"], json!(app));
    drop(agent);
    support::agent::remove_containers(&stand.cluster).await;
}

/// A role credentials set as ACS sends it.
fn role_credentials(id: &str, key: &str) -> Value {
    json!({"credentialsId": id, "roleArn": "arn:aws:iam::123456789012:role/app",
        "accessKeyId": key, "secretAccessKey": "SECRETKEY", "sessionToken": "TOKEN",
        "expiration": "2030-01-01T00:00:00Z"})
}

/// `task` without the credentials ACS sends with it.
fn without_credentials(task: &Value) -> Value {
    let mut t = task.clone();
    let fields = t.as_object_mut().unwrap();
    fields.remove("roleCredentials");
    fields.remove("executionRoleCredentials");
    t
}

/// Waits for the agent to log that it cleaned up `task`.
async fn cleaned_up(task: &Value, agent: &Agent) {
    let arn = task["arn"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + WAIT;
    let done = |log: &str| {
        log.lines()
            .any(|l| l.contains("task cleaned up") && l.contains(&arn))
    };
    while !done(&agent.log()) {
        assert!(
            Instant::now() < deadline,
            "{arn} was not cleaned up; log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_task_role_ends_at_the_stop_and_the_execution_role_at_cleanup() {
    let _serial = SERIAL.lock().await;
    let mut stand = Stand::new("credlife", 45540).await;
    // Long enough that the checks right after the STOPPED report come before the cleanup.
    stand.env[0].1 = "5s".into();
    let agent = start_connected(&stand).await;
    let mut task = stand.task(1, false);
    let (task_id, exec_id) = (
        support::env::unique_name("task-cid"),
        support::env::unique_name("exec-cid"),
    );
    task["roleCredentials"] = role_credentials(&task_id, "ASIATASK");
    task["executionRoleCredentials"] = role_credentials(&exec_id, "ASIAEXEC");
    stand.acs_payload("credlife-1", 1, vec![task.clone()]);
    report(&stand, &task, "RUNNING", &agent).await;
    assert_eq!(credentials_status(&task_id).await, 200);
    assert_eq!(credentials_status(&exec_id).await, 200);

    stand.acs_payload("credlife-2", 2, vec![stopped(&task)]);
    report(&stand, &task, "STOPPED", &agent).await;
    assert_eq!(
        credentials_status(&task_id).await,
        400,
        "the task role is gone once the task stopped"
    );
    assert_eq!(
        credentials_status(&exec_id).await,
        200,
        "the execution role stays until cleanup (log drivers may still need it)"
    );
    cleaned_up(&task, &agent).await;
    assert_eq!(
        credentials_status(&exec_id).await,
        400,
        "the execution role is gone after cleanup"
    );
    let audit = std::fs::read_to_string(stand.dir.path().join("audit.log")).unwrap();
    assert!(
        audit.contains(" GetCredentialsExecutionRole 2 "),
        "requests are audited:\n{audit}"
    );
    assert!(!audit.contains(&exec_id) && !audit.contains("SECRETKEY"));
}

#[tokio::test]
async fn after_a_restart_credentials_acs_will_not_resend_answer_400_not_503() {
    let _serial = SERIAL.lock().await;
    let mut stand = Stand::new("credstop", 45550).await;
    stand.env[0].1 = "1h".into();
    stand
        .env
        .push(("ECS_AUDIT_LOGFILE_DISABLED".into(), "true".into()));
    let agent = start_connected(&stand).await;
    let (mut running, mut done) = (stand.task(1, false), stand.task(2, false));
    let ids: Vec<String> = (0..4)
        .map(|i| support::env::unique_name(&format!("cid{i}")))
        .collect();
    running["roleCredentials"] = role_credentials(&ids[0], "ASIA0");
    running["executionRoleCredentials"] = role_credentials(&ids[1], "ASIA1");
    done["roleCredentials"] = role_credentials(&ids[2], "ASIA2");
    done["executionRoleCredentials"] = role_credentials(&ids[3], "ASIA3");
    stand.acs_payload("credstop-1", 1, vec![running.clone(), done.clone()]);
    report(&stand, &running, "RUNNING", &agent).await;
    report(&stand, &done, "RUNNING", &agent).await;
    stand.acs_payload("credstop-2", 2, vec![without_credentials(&stopped(&done))]);
    report(&stand, &done, "STOPPED", &agent).await;
    assert_eq!(credentials_status(&ids[3]).await, 200, "not cleaned up yet");
    kill(agent);

    let agent = start_connected(&stand).await;
    assert_eq!(credentials_status(&ids[0]).await, 503);
    assert_eq!(credentials_status(&ids[1]).await, 503);
    for id in &ids[2..] {
        assert_eq!(
            credentials_status(id).await,
            400,
            "a task stopped before the restart gets no credentials from ACS again"
        );
    }
    // The running task stops before ACS resent its credentials.
    stand.acs_payload(
        "credstop-3",
        3,
        vec![without_credentials(&stopped(&running))],
    );
    report(&stand, &running, "STOPPED", &agent).await;
    assert_eq!(
        credentials_status(&ids[0]).await,
        400,
        "the stopped task's role is unknown now, not waiting for ever"
    );
    assert!(
        !stand.dir.path().join("audit.log").exists(),
        "ECS_AUDIT_LOGFILE_DISABLED: no audit file"
    );
    drop(agent);
    support::agent::remove_containers(&stand.cluster).await;
}
