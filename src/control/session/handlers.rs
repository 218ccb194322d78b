//! One handler per ACS message: what the agent does and what it answers. Handlers are quick and
//! never block: the engine is told through its channel, replies go back to the session loop.

use super::{refused_task, Ended, Reply, SessionContext, SessionState};
use crate::control::acs::{
    self, AckRequest, HeartbeatAckRequest, IamRoleCredentialsAckRequest, IamRoleCredentialsMessage,
    Inbound, PayloadMessage, TaskIdentifier, TaskManifestMessage, TaskStopVerificationAck,
    TaskStopVerificationMessage,
};
use crate::credentials::{Entry, RoleType};
use crate::engine::Input;
use crate::model::{RoleCredentials, Status, Task};

/// Handles one frame: the replies to send, and whether the connection should end.
pub(super) fn handle(
    ctx: &SessionContext,
    state: &mut SessionState,
    frame: &str,
) -> (Vec<Reply>, Option<Ended>) {
    let message = match acs::decode(frame) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "malformed ACS frame dropped");
            return (Vec::new(), None);
        }
    };
    match message {
        Inbound::Heartbeat(h) => (
            h.message_id
                .map(|id| Reply::HeartbeatAck(HeartbeatAckRequest::new(&id)))
                .into_iter()
                .collect(),
            None,
        ),
        Inbound::Payload(p) => (payload(ctx, state, p), None),
        Inbound::IamRoleCredentials(m) => (role_credentials(ctx, m).into_iter().collect(), None),
        Inbound::TaskManifest(m) => (manifest(ctx, state, m), None),
        Inbound::TaskStopVerificationAck(a) => {
            stop_verified(ctx, state, a);
            (Vec::new(), None)
        }
        Inbound::Exception { kind, message } => {
            tracing::warn!(kind = %kind, message = %message, "ACS reported an error");
            let end = (kind == "InactiveInstanceException").then_some(Ended::Inactive);
            (Vec::new(), end)
        }
        Inbound::Close(c) => {
            tracing::info!(message = ?c.message, "ACS CloseMessage");
            (Vec::new(), None)
        }
        Inbound::Error(e) => {
            tracing::warn!(message = ?e.message, "ACS ErrorMessage");
            (Vec::new(), None)
        }
        Inbound::Unknown { kind } => {
            tracing::info!(kind = %kind, "unknown ACS message dropped");
            (Vec::new(), None)
        }
        other => {
            tracing::warn!(message = ?std::mem::discriminant(&other), "ACS message for a feature this agent does not have; ignored");
            (Vec::new(), None)
        }
    }
}

fn note_seq(ctx: &SessionContext, state: &mut SessionState, seq: Option<i64>) {
    if let Some(s) = seq {
        let last = state.last_seq.map_or(s, |l| l.max(s));
        state.last_seq = Some(last);
        ctx.seq.fetch_max(last, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Tasks to the engine (stops first); acks only when every task was accepted.
fn payload(ctx: &SessionContext, state: &mut SessionState, p: PayloadMessage) -> Vec<Reply> {
    let Some(message_id) = p.message_id.clone() else {
        tracing::warn!("PayloadMessage without messageId dropped");
        return Vec::new();
    };
    note_seq(ctx, state, p.seq_num);
    let mut accepted: Vec<Task> = Vec::new();
    for t in &p.tasks {
        match &t.decoded {
            Ok(task) => accepted.push(task.clone()),
            Err(rejected) => {
                tracing::error!(task = ?rejected.arn, reason = %rejected.reason, "task refused");
                if let Some(arn) = &rejected.arn {
                    let _ = ctx.reports.send(refused_task(
                        arn,
                        format!("UnrecognizedTaskError: {}", rejected.reason),
                    ));
                }
            }
        }
    }
    // Stops before starts, so that a replaced task frees its resources first.
    accepted.sort_by_key(|t| t.desired_status.as_deref() != Some("STOPPED"));
    let mut acks = Vec::new();
    for task in accepted {
        for (creds, role) in [
            (&task.role_credentials, RoleType::Task),
            (&task.execution_role_credentials, RoleType::Execution),
        ] {
            if let Some(c) = creds.as_ref().filter(|c| !c.credentials_id.is_empty()) {
                store(ctx, &task.arn, role, c.clone());
                acks.push(Reply::IamRoleCredentialsAck(
                    IamRoleCredentialsAckRequest::new(
                        &message_id,
                        &c.credentials_id,
                        &c.expiration,
                    ),
                ));
            }
        }
        ctx.to_engine(Input::AddTask(Box::new(task)));
    }
    if !p.all_tasks_decoded() {
        return Vec::new();
    }
    let cluster = p.cluster_arn.as_deref().unwrap_or(&ctx.cluster);
    let instance = p
        .container_instance_arn
        .as_deref()
        .unwrap_or(&ctx.instance_arn);
    let mut replies = vec![Reply::Ack(AckRequest::new(cluster, instance, &message_id))];
    replies.extend(acks);
    replies
}

fn store(ctx: &SessionContext, task_arn: &str, role_type: RoleType, credentials: RoleCredentials) {
    ctx.credentials.put(Entry {
        task_arn: task_arn.to_owned(),
        role_type,
        credentials,
    });
}

/// Stores refreshed credentials and acks them; anything incomplete is not acked.
fn role_credentials(ctx: &SessionContext, m: IamRoleCredentialsMessage) -> Option<Reply> {
    let message_id = m.message_id?;
    let task_arn = m.task_arn?;
    let creds = m
        .role_credentials
        .filter(|c| !c.credentials_id.is_empty())?;
    let Some(role) = m.role_type.as_deref().and_then(RoleType::from_acs) else {
        tracing::warn!(role_type = ?m.role_type, "IAMRoleCredentialsMessage with an unknown role type dropped");
        return None;
    };
    let reply =
        IamRoleCredentialsAckRequest::new(&message_id, &creds.credentials_id, &creds.expiration);
    store(ctx, &task_arn, role, creds);
    Some(Reply::IamRoleCredentialsAck(reply))
}

/// Acks a fresh manifest and proposes to stop the tasks running here that it does not list.
fn manifest(ctx: &SessionContext, state: &mut SessionState, m: TaskManifestMessage) -> Vec<Reply> {
    let Some(message_id) = m.message_id.clone() else {
        return Vec::new();
    };
    if let (Some(seq), Some(last)) = (m.timeline, state.last_seq) {
        if seq <= last {
            tracing::info!(seq, last, "stale task manifest dropped");
            return Vec::new();
        }
    }
    note_seq(ctx, state, m.timeline);
    state.last_manifest = Some(message_id.clone());
    let cluster = m.cluster_arn.as_deref().unwrap_or(&ctx.cluster);
    let instance = m
        .container_instance_arn
        .as_deref()
        .unwrap_or(&ctx.instance_arn);
    let mut replies = vec![Reply::Ack(AckRequest::new(cluster, instance, &message_id))];
    let wanted: Vec<&str> = m
        .tasks
        .iter()
        .filter(|t| t.desired_status.as_deref() == Some("RUNNING"))
        .filter_map(|t| t.task_arn.as_deref())
        .collect();
    let snapshot = ctx.snapshots.borrow().clone();
    let candidates: Vec<TaskIdentifier> = snapshot
        .iter()
        .filter(|t| {
            t.desired < Status::Stopped && t.known < Status::Stopped && !wanted.contains(&t.arn())
        })
        .map(|t| TaskIdentifier {
            desired_status: Some("STOPPED".into()),
            task_arn: Some(t.arn().to_owned()),
            task_cluster_arn: t
                .task
                .task_cluster_arn
                .clone()
                .or_else(|| Some(cluster.to_owned())),
        })
        .collect();
    if !candidates.is_empty() {
        replies.push(Reply::TaskStopVerification(TaskStopVerificationMessage {
            message_id: Some(message_id),
            stop_candidates: candidates,
        }));
    }
    replies
}

/// Stops the tasks ACS confirmed, if the ack answers the last manifest.
fn stop_verified(ctx: &SessionContext, state: &mut SessionState, a: TaskStopVerificationAck) {
    if a.message_id.is_none() || a.message_id != state.last_manifest {
        tracing::info!(message_id = ?a.message_id, "TaskStopVerificationAck for an older manifest ignored");
        return;
    }
    state.last_manifest = None;
    for t in a.stop_tasks {
        if let Some(arn) = t.task_arn {
            tracing::info!(task = %arn, "stopping a task ACS no longer wants");
            ctx.to_engine(Input::Desired {
                task_arn: arn,
                status: Status::Stopped,
            });
        }
    }
}
