//! Following containers' logs and shipping them: one task per container reads Docker's
//! json-file log (or, where the files are not readable, the Docker logs API with timestamps)
//! from its checkpoint, reassembles lines Docker split into pieces (per stream: stdout and
//! stderr pieces interleave), groups lines into events (multiline or datetime patterns), splits
//! oversize ones, batches them within CloudWatch's limits, delivers each batch and saves the
//! checkpoint after CloudWatch accepted it. Docker keeps the backlog in its own rotating files:
//! the agent reads only as fast as it ships, so its memory stays bounded whatever the container
//! logs (a line without a newline goes out in event-sized pieces), and the container never
//! waits on the network.
//!
//! A checkpoint read from the file is the file's inode and byte offset, exact whatever order
//! Docker's timestamps come in (stdout and stderr are stamped separately, so they do not);
//! timestamps are compared only to skip up to a resume point when no offset can be used.
//!
//! A container that stops is followed until task cleanup asks to [`Shipper::drain`] it; one
//! that starts again (restart policy) is followed again from the checkpoint. A drain waits at
//! most its deadline (`ECS_AWSLOGS_DRAIN_TIMEOUT`): past it, shipping stops and an error
//! counts the lines left unshipped, so an unreachable CloudWatch never keeps a container.
//!
//! Known limits: when a crash falls while a line longer than an event is incomplete, or while
//! a long stdout line waits for its end and stderr lines were shipped meanwhile, what was sent
//! of them is sent again after the restart (repeated, never lost). Through the Docker API,
//! lines out of timestamp order right at a resume point may be skipped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::{ContainerState, ContainerStateStatusEnum};
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::batch::{split_oversize, Batcher, Event, MAX_EVENT_BYTES};
use super::checkpoint::{Checkpoints, FileOffset, Position, Record};
use super::cloudwatch::{CloudWatch, Counters};
use super::jsonfile::JsonLog;
use super::multiline::{Grouper, Line};

/// Longest time a line waits in the agent before it is sent (as Docker's awslogs driver).
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How much of a log file one blocking read takes at most.
const READ_CHUNK: usize = 4 << 20;

struct Follower {
    drain: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    task: tokio::task::AbortHandle,
    /// The end of the last batch CloudWatch accepted.
    shipped: watch::Receiver<Option<Position>>,
    counters: Arc<Counters>,
}

/// Where a container's log is read from.
enum LogSource {
    /// Docker's json-file log, read directly.
    File(JsonLog),
    /// Docker's log API (the agent cannot read Docker's files).
    Api,
    /// Not started yet: no log file so far.
    NotStarted,
}

/// Aborts a task when dropped (delivery, when its follower is aborted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Ships the logs of every container the agent gave a local log driver instead of awslogs.
pub struct Shipper {
    docker: bollard::Docker,
    cloudwatch: CloudWatch,
    checkpoints: Checkpoints,
    followers: Mutex<HashMap<String, Follower>>,
    drain_timeout: Duration,
}

impl Shipper {
    /// `drain_timeout`: the longest [`Shipper::drain`] waits.
    pub fn new(
        docker: bollard::Docker,
        cloudwatch: CloudWatch,
        checkpoints: Checkpoints,
        drain_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Shipper {
            docker,
            cloudwatch,
            checkpoints,
            followers: Mutex::new(HashMap::new()),
            drain_timeout,
        })
    }

    /// Starts following a container (no-op when it is followed already).
    pub fn ship(self: &Arc<Self>, record: Record) {
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        if followers.contains_key(&record.docker_id) {
            return;
        }
        // Created again after a restart (adopted by name): carry on from the saved position.
        let mut record = record;
        if record.shipped.is_none() {
            record.shipped = self
                .checkpoints
                .load(&record.docker_id)
                .and_then(|r| r.shipped);
        }
        let (drain, drain_rx) = watch::channel(false);
        let (done_tx, done) = watch::channel(false);
        let (shipped_tx, shipped) = watch::channel(record.shipped);
        let counters = Arc::new(Counters::default());
        let id = record.docker_id.clone();
        self.checkpoints.save(&record);
        let this = self.clone();
        let progress = Progress {
            shipped: shipped_tx,
            counters: counters.clone(),
        };
        let task = tokio::spawn(async move {
            this.follow(record, drain_rx, progress).await;
            let _ = done_tx.send(true);
        });
        let follower = Follower {
            drain,
            done,
            task: task.abort_handle(),
            shipped,
            counters,
        };
        followers.insert(id, follower);
    }

    /// After a restart: follows again every saved container that `known` still has, from its
    /// checkpoint, and forgets the records of the others.
    pub fn resume(self: &Arc<Self>, known: &HashSet<String>) {
        for record in self.checkpoints.load_all() {
            if known.contains(&record.docker_id) {
                self.ship(record);
            } else {
                self.checkpoints.remove(&record.docker_id);
            }
        }
    }

    /// Returns once everything the (stopped) container logged is shipped, or at the drain
    /// deadline (shipping then stops; an error counts the lines left); the container may then
    /// be removed. Its record is forgotten.
    pub async fn drain(&self, docker_id: &str) {
        let follower = self
            .followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(docker_id);
        if let Some(f) = follower {
            let _ = f.drain.send(true);
            let mut done = f.done.clone();
            let finished = async move { done.wait_for(|d| *d).await.is_ok() };
            let waited = tokio::time::timeout(self.drain_timeout, finished).await;
            if waited.is_err() {
                f.task.abort();
                let shipped = *f.shipped.borrow();
                let deadline_s = self.drain_timeout.as_secs_f64();
                match self.count_unshipped(docker_id, shipped).await {
                    Some(lines) => tracing::error!(docker_id, lines, deadline_s, "container logs not shipped by the drain deadline; lost with the container"),
                    None => tracing::error!(docker_id, deadline_s, "container logs not all shipped by the drain deadline; the rest is lost with the container"),
                }
            }
            report_totals(docker_id, &f.counters);
        }
        self.checkpoints.remove(docker_id);
    }

    /// Complete lines in the container's json-file log after `shipped` (`None` when that
    /// cannot be told: no readable file, or a position without a file offset).
    async fn count_unshipped(&self, docker_id: &str, shipped: Option<Position>) -> Option<u64> {
        let inspect = self.docker.inspect_container(docker_id, None).await.ok()?;
        let path = inspect.log_path.filter(|p| !p.is_empty())?;
        let at = match shipped {
            Some(p) => Some(p.file?),
            None => None,
        };
        let count = tokio::task::spawn_blocking(move || {
            let mut log = JsonLog::new(path.into());
            if let Some(at) = at {
                if !log.resume_at(at).ok()? {
                    return None;
                }
            }
            let mut lines = 0;
            loop {
                let entries = log.read(READ_CHUNK).ok()?;
                if entries.is_empty() {
                    return Some(lines);
                }
                lines += entries.iter().filter(|e| e.log.ends_with('\n')).count() as u64;
            }
        });
        count.await.ok().flatten()
    }

    async fn follow(&self, record: Record, mut drain: watch::Receiver<bool>, progress: Progress) {
        let pattern = record
            .start_pattern
            .as_deref()
            .and_then(|p| regex_lite::Regex::new(p).ok());
        let mut pipe = Pipeline::new(Grouper::new(pattern), record.shipped);
        // Delivery runs beside reading, a batch or two behind, so reading never waits for a
        // round trip to CloudWatch unless two batches are already waiting.
        let (out, batches) = mpsc::channel(2);
        let mut delivery = AbortOnDrop(tokio::spawn(deliver_in_order(
            self.cloudwatch.clone(),
            self.checkpoints.clone(),
            progress,
            record.clone(),
            batches,
        )));
        let mut file = None;
        // Once the log is read through the Docker API it is never read from the file: the
        // file starts at the first line, the API where the last read ended.
        let mut through_api = false;
        loop {
            let draining = *drain.borrow();
            if file.is_none() && !through_api {
                match self.json_log(&record.docker_id, &mut pipe).await {
                    LogSource::File(log) => file = Some(log),
                    LogSource::Api => through_api = true,
                    // Stopped without ever starting: it logged nothing.
                    LogSource::NotStarted if draining => break,
                    LogSource::NotStarted => {
                        if self.wait_for_start(&record.docker_id, &mut drain).await {
                            continue;
                        }
                        break;
                    }
                }
            }
            if through_api {
                self.read(&record.docker_id, &mut pipe, &out, !draining)
                    .await;
            } else {
                self.read_file(&record.docker_id, &mut file, &mut pipe, &out, !draining)
                    .await;
                if file.is_none() {
                    // The file could not be read: on through the API from the last line read.
                    through_api = true;
                    continue;
                }
            }
            flush(&mut pipe, &out).await;
            if draining || !self.wait_for_more(&record.docker_id, &mut drain).await {
                break;
            }
        }
        drop(out);
        let _ = (&mut delivery.0).await;
    }

    /// Reads the container's log from the last line read until the stream ends (the
    /// container stopped, or `follow` is false and the log is read to its end).
    async fn read(&self, docker_id: &str, pipe: &mut Pipeline, out: &Batches, follow: bool) {
        let since = pipe.last.map_or(0, |p| p.nanos / 1_000_000_000);
        let options = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(i32::try_from(since).unwrap_or(0))
            .build();
        let mut stream = self.docker.logs(docker_id, Some(options));
        pipe.restart_stream();
        let mut deadline: Option<Instant> = None;
        loop {
            let frame = tokio::select! {
                f = stream.next() => f,
                _ = sleep_until(deadline) => {
                    deadline = None;
                    flush(pipe, out).await;
                    continue;
                }
            };
            let Some(Ok(frame)) = frame else { return };
            let stream = match &frame {
                bollard::container::LogOutput::StdErr { .. } => 1,
                _ => 0,
            };
            for batch in pipe.frame(stream, frame.as_ref()) {
                send(pipe, out, batch).await;
            }
            if pipe.holds_lines() {
                deadline.get_or_insert_with(|| Instant::now() + FLUSH_EVERY);
            } else {
                deadline = None;
            }
        }
    }

    /// The container's json-file log, when the agent can read Docker's files (it runs on the
    /// host); otherwise shipping goes through Docker's log API. A container that has not
    /// started yet has no log file (Docker names it at the start): it is waited for, never
    /// read through the API, which would race with the start and read the lines the file
    /// then holds again.
    /// Positioned at the checkpoint's file offset when it has one Docker still keeps (then
    /// nothing is skipped by timestamp).
    async fn json_log(&self, docker_id: &str, pipe: &mut Pipeline) -> LogSource {
        let Ok(inspect) = self.docker.inspect_container(docker_id, None).await else {
            return LogSource::Api;
        };
        let created = inspect
            .state
            .as_ref()
            .and_then(|s| s.status)
            .is_some_and(|s| s == ContainerStateStatusEnum::CREATED);
        let path = inspect.log_path.filter(|p| !p.is_empty());
        let Some(path) = path else {
            return if created {
                LogSource::NotStarted
            } else {
                LogSource::Api
            };
        };
        tracing::debug!(docker_id, path = %path, "following the container log file");
        match std::fs::metadata(&path) {
            Ok(_) => {
                let mut log = JsonLog::new(path.into());
                let at = pipe.skip_until.and_then(|p| p.file);
                match at.map(|at| log.resume_at(at)) {
                    Some(Ok(true)) => pipe.skip_until = None,
                    Some(_) => {
                        tracing::warn!(
                            docker_id,
                            "the checkpointed log file is gone; resuming by timestamp"
                        )
                    }
                    None => {}
                }
                LogSource::File(log)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && created => LogSource::NotStarted,
            Err(e) => {
                tracing::info!(path = %path, error = %e, "container log file not readable; following it through the Docker API");
                LogSource::Api
            }
        }
    }

    /// Until the container has started (true), is gone (false), or a drain is asked for
    /// (true: the caller looks once more).
    async fn wait_for_start(&self, docker_id: &str, drain: &mut watch::Receiver<bool>) -> bool {
        let started = |s: &ContainerState| {
            s.status
                .is_some_and(|s| s != ContainerStateStatusEnum::CREATED)
        };
        self.wait_until(
            docker_id,
            drain,
            started,
            Duration::from_millis(20),
            Duration::from_secs(1),
        )
        .await
    }

    /// Reads the json-file log until its end; following, until the end once the container
    /// stopped. A read error leaves `file` empty: shipping goes on through the Docker API.
    async fn read_file(
        &self,
        docker_id: &str,
        file: &mut Option<JsonLog>,
        pipe: &mut Pipeline,
        out: &Batches,
        mut follow: bool,
    ) {
        let mut deadline: Option<Instant> = None;
        let mut checked = Instant::now();
        loop {
            let Some(mut log) = file.take() else { return };
            let read = tokio::task::spawn_blocking(move || {
                let r = log.read(READ_CHUNK);
                (log, r)
            })
            .await;
            let entries = match read {
                Ok((log, Ok(entries))) => {
                    *file = Some(log);
                    entries
                }
                Ok((_, Err(e))) => {
                    tracing::warn!(docker_id, error = %e, "cannot read the container log file; following it through the Docker API");
                    return;
                }
                Err(_) => return,
            };
            if entries.is_empty() {
                if deadline.is_some_and(|d| d <= Instant::now()) {
                    deadline = None;
                    flush(pipe, out).await;
                }
                if !follow {
                    return;
                }
                if checked.elapsed() > Duration::from_millis(500) {
                    checked = Instant::now();
                    // Stopped: what it wrote is in the file; one more pass reads to the end.
                    follow = self.running(docker_id).await;
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            for e in entries {
                let Some(nanos) = parse_timestamp(&e.time) else {
                    continue;
                };
                let piece = Piece {
                    nanos,
                    stream: stream_index(&e.stream),
                    text: &e.log,
                    file: Some((e.start, e.end)),
                };
                for batch in pipe.entry(piece) {
                    send(pipe, out, batch).await;
                }
            }
            if pipe.holds_lines() {
                deadline.get_or_insert_with(|| Instant::now() + FLUSH_EVERY);
            } else {
                deadline = None;
            }
        }
    }

    async fn running(&self, docker_id: &str) -> bool {
        match self.docker.inspect_container(docker_id, None).await {
            Ok(i) => i.state.and_then(|s| s.running) == Some(true),
            Err(_) => false,
        }
    }

    /// After the stream ended: true when the container runs again (read on), false when it is
    /// gone or a drain was asked for and done here.
    async fn wait_for_more(&self, docker_id: &str, drain: &mut watch::Receiver<bool>) -> bool {
        let running = |s: &ContainerState| s.running == Some(true);
        self.wait_until(
            docker_id,
            drain,
            running,
            Duration::from_millis(100),
            Duration::from_secs(2),
        )
        .await
    }

    /// Polls the container (waits doubling from `first` to `most`) until its state is `ready`
    /// (true), it is gone (false) or a drain is asked for (true).
    async fn wait_until(
        &self,
        docker_id: &str,
        drain: &mut watch::Receiver<bool>,
        ready: impl Fn(&ContainerState) -> bool,
        first: Duration,
        most: Duration,
    ) -> bool {
        let mut wait = first;
        loop {
            match self.docker.inspect_container(docker_id, None).await {
                Ok(i) if i.state.as_ref().is_some_and(&ready) => return true,
                Ok(_) => {}
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return false,
                Err(_) => {}
            }
            tokio::select! {
                changed = drain.changed() => if changed.is_err() || *drain.borrow() { return true },
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(most);
        }
    }
}

/// Batches on their way to delivery, each with the log position it ends at.
type Batches = mpsc::Sender<(Vec<Event>, Option<Position>)>;

/// Hands a full batch to delivery.
async fn send(pipe: &mut Pipeline, out: &Batches, batch: Vec<Event>) {
    if batch.is_empty() {
        return;
    }
    let end = pipe.delivered(batch.len());
    let _ = out.send((batch, end)).await;
}

/// Hands whatever is pending to delivery.
async fn flush(pipe: &mut Pipeline, out: &Batches) {
    for batch in pipe.end_event() {
        send(pipe, out, batch).await;
    }
    let rest = pipe.batcher.take();
    send(pipe, out, rest).await;
}

/// What delivery tells the follower's owner.
struct Progress {
    shipped: watch::Sender<Option<Position>>,
    counters: Arc<Counters>,
}

/// Logs what happened to a container's events, once its shipping is over.
fn report_totals(docker_id: &str, counters: &Counters) {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let (events, rejected, dropped) = (
        get(&counters.events),
        get(&counters.rejected),
        get(&counters.dropped),
    );
    let retries = get(&counters.retries);
    if rejected > 0 || dropped > 0 {
        tracing::warn!(
            docker_id,
            events,
            rejected,
            dropped,
            retries,
            "container logs shipped; CloudWatch rejected or refused some events"
        );
    } else {
        tracing::info!(docker_id, events, retries, "container logs shipped");
    }
}

/// Delivers batches in order, saving the checkpoint after each one CloudWatch accepted.
async fn deliver_in_order(
    cloudwatch: CloudWatch,
    checkpoints: Checkpoints,
    progress: Progress,
    mut record: Record,
    mut batches: mpsc::Receiver<(Vec<Event>, Option<Position>)>,
) {
    while let Some((batch, end)) = batches.recv().await {
        cloudwatch
            .deliver(&record.destination, &batch, &progress.counters)
            .await;
        // Batches come in log order: each one's end is further than the last saved.
        if end.is_some() && end != record.shipped {
            record.shipped = end;
            checkpoints.save(&record);
            progress.shipped.send_replace(end);
        }
        crate::failpoint::hit("log-shipped");
    }
}

/// Which of a container's output streams a piece of log came from: stdout (0) or stderr (1).
fn stream_index(name: &str) -> usize {
    usize::from(name == "stderr")
}

/// One piece of a line as Docker logged it (a line ends with a newline; Docker splits a long
/// one into several pieces).
struct Piece<'a> {
    nanos: i64,
    /// [`stream_index`].
    stream: usize,
    text: &'a str,
    /// Where the piece starts and ends in the json-file log, when read from the file.
    file: Option<(FileOffset, FileOffset)>,
}

/// A line of one stream Docker split into pieces, waiting for its end.
struct Partial {
    /// The timestamp of its first piece.
    first: i64,
    text: String,
    /// Where its first piece starts in the file: a checkpoint may not pass it while it waits.
    start: Option<FileOffset>,
    /// Order of arrival among the partial lines.
    order: u64,
}

/// Lines → events → batches, with the log position each pending event ends at.
struct Pipeline {
    grouper: Grouper,
    batcher: Batcher,
    /// The position of each event in the batcher, in order.
    positions: VecDeque<Option<Position>>,
    /// The last line read (where reading through the Docker API starts again).
    last: Option<Position>,
    /// While reading again from before the checkpoint by timestamps (the Docker API, or a
    /// checkpoint without a usable file offset): lines at or before it are skipped, up to the
    /// first line after it. Only then: Docker stamps stdout and stderr separately, so lines
    /// can come out of timestamp order and a comparison while following would drop them.
    skip_until: Option<Position>,
    /// The last line of the current stream, skipped or not (for the index among lines with
    /// the same timestamp, which must be counted from the stream itself).
    stream_prev: Option<Position>,
    /// The last line given to the grouper, and the end of the last event emitted.
    grouped_end: Option<Position>,
    emitted_end: Option<Position>,
    /// Per stream (stdout, stderr): a line Docker split into several pieces.
    partial: [Option<Partial>; 2],
    partials_seen: u64,
}

impl Pipeline {
    fn new(grouper: Grouper, shipped: Option<Position>) -> Self {
        Pipeline {
            grouper,
            batcher: Batcher::default(),
            positions: VecDeque::new(),
            last: shipped,
            skip_until: shipped,
            stream_prev: None,
            grouped_end: shipped,
            emitted_end: shipped,
            partial: [None, None],
            partials_seen: 0,
        }
    }

    fn holds_lines(&self) -> bool {
        self.grouper.pending() || !self.batcher.is_empty()
    }

    /// Starts reading the log again through the Docker API from [`Pipeline::last`]: what
    /// was read already is skipped.
    fn restart_stream(&mut self) {
        self.stream_prev = None;
        self.partial = [None, None];
        self.skip_until = self.last;
    }

    /// Takes one frame of Docker's stream; returns the batches that filled up.
    fn frame(&mut self, stream: usize, bytes: &[u8]) -> Vec<Vec<Event>> {
        let text = String::from_utf8_lossy(bytes);
        let Some((stamp, rest)) = text.split_once(' ') else {
            return Vec::new();
        };
        match parse_timestamp(stamp) {
            Some(nanos) => self.entry(Piece {
                nanos,
                stream,
                text: rest,
                file: None,
            }),
            None => Vec::new(),
        }
    }

    /// Takes one piece of a line; returns the batches that filled up.
    fn entry(&mut self, piece: Piece<'_>) -> Vec<Vec<Event>> {
        let slot = piece.stream.min(1);
        let mut partial = match self.partial[slot].take() {
            Some(p) => p,
            None => {
                self.partials_seen += 1;
                Partial {
                    first: piece.nanos,
                    text: String::new(),
                    start: piece.file.map(|(start, _)| start),
                    order: self.partials_seen,
                }
            }
        };
        partial.text.push_str(piece.text);
        if !partial.text.ends_with('\n') {
            let full = self.emit_long(&mut partial);
            self.partial[slot] = Some(partial);
            return full;
        }
        let mut line = partial.text;
        line.pop();
        let pos = Position {
            nanos: piece.nanos,
            seq: match self.stream_prev {
                Some(p) if p.nanos == piece.nanos => p.seq + 1,
                _ => 0,
            },
            file: self.checkpointable(piece.file.map(|(_, end)| end)),
        };
        self.stream_prev = Some(pos);
        if let Some(skip) = self.skip_until {
            if pos.key() <= skip.key() {
                return Vec::new();
            }
            self.skip_until = None;
        }
        self.last = Some(pos);
        let before = self.grouped_end;
        self.grouped_end = Some(pos);
        let completed = self.grouper.push(Line {
            timestamp_ms: partial.first / 1_000_000,
            text: line,
        });
        let end = if self.grouper.pending() {
            before
        } else {
            Some(pos)
        };
        completed.map_or_else(Vec::new, |event| self.emit(event, end))
    }

    /// The file offset a checkpoint may record after a line ending at `end`: not past the
    /// start of a line of the other stream still waiting for its end.
    fn checkpointable(&self, end: Option<FileOffset>) -> Option<FileOffset> {
        let waiting = self.partial.iter().flatten().min_by_key(|p| p.order);
        match waiting {
            Some(p) => p.start,
            None => end,
        }
    }

    /// A line without its end yet that reached the size of an event goes out as an event of
    /// its own (the rest follows), so memory stays bounded. The checkpoint does not move: a
    /// crash before the line's end sends these pieces again (repeated, never lost).
    fn emit_long(&mut self, partial: &mut Partial) -> Vec<Vec<Event>> {
        let mut full = Vec::new();
        if partial.text.len() < MAX_EVENT_BYTES {
            return full;
        }
        full.extend(self.end_event());
        while partial.text.len() >= MAX_EVENT_BYTES {
            let mut cut = MAX_EVENT_BYTES;
            while !partial.text.is_char_boundary(cut) {
                cut -= 1;
            }
            let head: String = partial.text.drain(..cut).collect();
            let event = Event {
                timestamp_ms: partial.first / 1_000_000,
                message: head,
            };
            let at = self.emitted_end;
            full.extend(self.emit(event, at));
        }
        full
    }

    /// Ends the event being grouped (end of stream or flush timer).
    fn end_event(&mut self) -> Vec<Vec<Event>> {
        match self.grouper.flush() {
            Some(event) => {
                let end = self.grouped_end;
                self.emit(event, end)
            }
            None => Vec::new(),
        }
    }

    /// Splits an event into CloudWatch-sized pieces and batches them; earlier pieces carry
    /// the previous event's end, so a crash between pieces repeats rather than loses.
    fn emit(&mut self, event: Event, end: Option<Position>) -> Vec<Vec<Event>> {
        let pieces = split_oversize(&event.message);
        let count = pieces.len();
        let mut full = Vec::new();
        for (i, message) in pieces.into_iter().enumerate() {
            let at = if i + 1 == count {
                end
            } else {
                self.emitted_end
            };
            let piece = Event {
                timestamp_ms: event.timestamp_ms,
                message,
            };
            if let Some(batch) = self.batcher.push(piece) {
                full.push(batch);
            }
            self.positions.push_back(at);
        }
        self.emitted_end = end;
        full
    }

    /// `n` events (the oldest pending) were delivered: the position they end at.
    fn delivered(&mut self, n: usize) -> Option<Position> {
        let mut end = None;
        for _ in 0..n {
            end = self.positions.pop_front().flatten().or(end);
        }
        end
    }
}

/// Docker's RFC 3339 timestamp with nanoseconds (`2026-11-26T18:00:00.123456789Z`) as Unix
/// nanoseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let digits: String = frac.chars().take(9).collect();
    let nanos = format!("{digits:0<9}").parse::<i64>().ok()?;
    let days = days_from_civil(y, m, day);
    Some(((days * 24 + h) * 60 + mi) * 60 * 1_000_000_000 + sec * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stamp: &str, text: &str) -> Vec<u8> {
        format!("{stamp} {text}").into_bytes()
    }

    fn messages(batches: Vec<Vec<Event>>, pipe: &mut Pipeline) -> Vec<String> {
        let mut out: Vec<String> = batches.into_iter().flatten().map(|e| e.message).collect();
        for batch in pipe.end_event() {
            out.extend(batch.into_iter().map(|e| e.message));
        }
        out.extend(pipe.batcher.take().into_iter().map(|e| e.message));
        out
    }

    #[test]
    fn docker_timestamps_parse_to_unix_nanoseconds() {
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(
            parse_timestamp("2026-11-26T18:00:00.123456789Z"),
            Some(1_795_716_000_123_456_789)
        );
        assert_eq!(parse_timestamp("2026-11-26 18:00:00Z"), None);
    }

    #[test]
    fn lines_up_to_the_checkpoint_are_skipped_even_with_equal_timestamps() {
        let t = "2026-11-26T18:00:00.000000001Z";
        let nanos = parse_timestamp(t).unwrap();
        // Three lines share one timestamp; the first two were shipped before a restart.
        let shipped = Some(Position {
            nanos,
            seq: 1,
            file: None,
        });
        let mut pipe = Pipeline::new(Grouper::new(None), shipped);
        let mut batches = Vec::new();
        for text in ["a\n", "b\n", "c\n", "d\n"] {
            batches.extend(pipe.frame(0, &frame(t, text)));
        }
        assert_eq!(messages(batches, &mut pipe), ["c", "d"]);
    }

    #[test]
    fn a_line_docker_split_into_frames_is_one_line() {
        let mut pipe = Pipeline::new(Grouper::new(None), None);
        let mut batches = pipe.frame(0, &frame("2026-11-26T18:00:00.1Z", "abc"));
        batches.extend(pipe.frame(0, &frame("2026-11-26T18:00:00.2Z", "def\n")));
        assert_eq!(messages(batches, &mut pipe), ["abcdef"]);
        assert_eq!(
            pipe.last.map(|p| p.nanos),
            parse_timestamp("2026-11-26T18:00:00.2Z"),
            "the line ends at its last frame"
        );
    }

    fn piece(nanos: i64, stream: usize, text: &str, at: u64) -> Piece<'_> {
        let offset = |offset| FileOffset { ino: 1, offset };
        Piece {
            nanos,
            stream,
            text,
            file: Some((offset(at), offset(at + 1))),
        }
    }

    #[test]
    fn lines_out_of_timestamp_order_are_all_shipped_while_following() {
        // Docker stamps stdout and stderr separately: the file is not in timestamp order.
        let mut pipe = Pipeline::new(Grouper::new(None), None);
        let mut batches = pipe.entry(piece(20, 0, "out 1\n", 0));
        batches.extend(pipe.entry(piece(10, 1, "err 1\n", 1)));
        batches.extend(pipe.entry(piece(20, 0, "out 2\n", 2)));
        batches.extend(pipe.entry(piece(15, 1, "err 2\n", 3)));
        assert_eq!(
            messages(batches, &mut pipe),
            ["out 1", "err 1", "out 2", "err 2"]
        );
    }

    #[test]
    fn a_long_stdout_line_is_not_joined_with_stderr_and_holds_the_checkpoint() {
        let mut pipe = Pipeline::new(Grouper::new(None), None);
        let mut batches = pipe.entry(piece(1, 0, "long ", 0));
        batches.extend(pipe.entry(piece(2, 1, "err\n", 1)));
        batches.extend(pipe.entry(piece(3, 0, "stdout line\n", 2)));
        assert_eq!(pipe.batcher.len(), 2);
        let end = pipe.delivered(1).unwrap();
        assert_eq!(
            end.file.map(|f| f.offset),
            Some(0),
            "the stderr line may not move the checkpoint past the waiting stdout line"
        );
        assert_eq!(pipe.delivered(1).unwrap().file.map(|f| f.offset), Some(3));
        let mut pipe = Pipeline::new(Grouper::new(None), None);
        let mut batches = pipe.entry(piece(1, 0, "long ", 0));
        batches.extend(pipe.entry(piece(2, 1, "err\n", 1)));
        batches.extend(pipe.entry(piece(3, 0, "stdout line\n", 2)));
        assert_eq!(messages(batches, &mut pipe), ["err", "long stdout line"]);
    }

    #[test]
    fn a_multi_megabyte_line_without_newline_is_shipped_in_event_sized_pieces() {
        let mut pipe = Pipeline::new(Grouper::new(None), None);
        let chunk = "y".repeat(16 * 1024);
        let (mut shipped, mut events) = (0, 0);
        for i in 0..320 {
            // 5 MB in Docker's 16 KB pieces, never a newline.
            for batch in pipe.entry(piece(i, 0, &chunk, i as u64)) {
                shipped += batch.iter().map(|e| e.message.len()).sum::<usize>();
                events += batch.len();
            }
            let held = pipe.partial[0].as_ref().map_or(0, |p| p.text.len());
            assert!(held < MAX_EVENT_BYTES, "{held} bytes held for one line");
        }
        shipped += pipe.batcher.bytes() - pipe.batcher.len() * crate::logs::batch::EVENT_OVERHEAD;
        let held = pipe.partial[0].as_ref().map_or(0, |p| p.text.len());
        assert_eq!(shipped + held, 320 * chunk.len(), "nothing lost");
        events += pipe.batcher.len();
        assert_eq!(events, 320 * chunk.len() / MAX_EVENT_BYTES);
        assert!(
            pipe.delivered(events).is_none(),
            "the checkpoint stays before the unfinished line"
        );
    }

    #[test]
    fn a_delivered_batch_ends_at_its_last_complete_event() {
        let re = regex_lite::Regex::new("^S").unwrap();
        let mut pipe = Pipeline::new(Grouper::new(Some(re)), None);
        let stamps = [
            "2026-11-26T18:00:01Z",
            "2026-11-26T18:00:02Z",
            "2026-11-26T18:00:03Z",
        ];
        for (stamp, text) in stamps.iter().zip(["S1\n", "more\n", "S2\n"]) {
            assert!(pipe.frame(0, &frame(stamp, text)).is_empty());
        }
        // "S1\nmore" is batched; "S2" is still being grouped.
        assert_eq!(pipe.batcher.len(), 1);
        let end = pipe.delivered(1).unwrap();
        assert_eq!(
            Some(end.nanos),
            parse_timestamp(stamps[1]),
            "ends at `more`, not at S2"
        );
    }
}
