//! What each ECS operation does once the request passed the front door
//! (the Submit* state changes live in `submit`).
//!
//! The state rules follow the service where the agent can notice: clusters
//! must exist (`default` only after CreateCluster), registration echoes the
//! sent attributes plus `ecs.availability-zone` and keeps an ARN the simulator
//! issued (or one already given for the same `clientToken`), polls need a
//! known, active instance. Attribute names and values are limited to 128
//! characters, resource types to INTEGER/LONG/DOUBLE/STRINGSET.
//!
//! Limits: the identity document's signature is not verified, nor its region.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::api::ApiError;
use super::state::{Instance, Recorded, Shared, State};
use super::submit;

const RESOURCE_TYPES: &[&str] = &["INTEGER", "LONG", "DOUBLE", "STRINGSET"];

pub(super) fn dispatch(shared: &Shared, operation: &str, req: &Value) -> Result<Value, ApiError> {
    match operation {
        "RegisterContainerInstance" => register(shared, req),
        "DeregisterContainerInstance" => deregister(shared, req),
        "DiscoverPollEndpoint" => discover(shared, req),
        "SubmitTaskStateChange" => submit::task(shared, req),
        "SubmitContainerStateChange" => submit::container(shared, req),
        "SubmitAttachmentStateChanges" => submit::attachments(shared, req),
        "CreateCluster" => create_cluster(shared, req),
        "DescribeClusters" => describe_clusters(shared, req),
        "UpdateContainerInstancesState" => update_instances_state(shared, req),
        other => Err(ApiError::new(400, "UnknownOperationException", other)),
    }
}

pub(super) fn str_of<'a>(req: &'a Value, key: &str) -> Option<&'a str> {
    req.get(key).and_then(Value::as_str)
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The cluster name a request's `cluster` refers to (a name or this account's ARN).
pub(super) fn resolve_cluster(
    shared: &Shared,
    state: &State,
    reference: Option<&str>,
) -> Result<String, ApiError> {
    let reference = reference.filter(|r| !r.is_empty()).unwrap_or("default");
    let name = match reference.strip_prefix("arn:") {
        Some(_) => reference
            .strip_prefix(&shared.cluster_arn(""))
            .ok_or_else(ApiError::cluster_not_found)?,
        None => reference,
    };
    if state.clusters.contains(name) {
        Ok(name.to_string())
    } else {
        Err(ApiError::cluster_not_found())
    }
}

fn register(shared: &Shared, req: &Value) -> Result<Value, ApiError> {
    let document = identity_document(req)?;
    check_resources(req)?;
    check_attributes(req)?;
    shared.update(|s| {
        let cluster = resolve_cluster(shared, s, str_of(req, "cluster"))?;
        let arn = instance_arn_for(shared, s, req, &cluster);
        let mut attributes = req["attributes"].as_array().cloned().unwrap_or_default();
        if let Some(az) = document.get("availabilityZone").and_then(Value::as_str) {
            attributes.retain(|a| a["name"] != "ecs.availability-zone");
            attributes.push(json!({"name": "ecs.availability-zone", "value": az}));
        }
        let version = s.instance(&arn).map_or(1, |i| i.version + 1);
        let resources = req.get("totalResources").cloned().unwrap_or(json!([]));
        let mut record = json!({
            "containerInstanceArn": arn,
            "version": version,
            "status": "ACTIVE",
            "agentConnected": s.agent_connected(&arn),
            "registeredResources": resources,
            "remainingResources": resources,
            "attributes": attributes,
            "runningTasksCount": 0,
            "pendingTasksCount": 0,
            "registeredAt": now_epoch(),
            "tags": req.get("tags").cloned().unwrap_or(json!([])),
        });
        if let Some(id) = document.get("instanceId") {
            record["ec2InstanceId"] = id.clone();
        }
        if let Some(info) = req.get("versionInfo") {
            record["versionInfo"] = info.clone();
        }
        s.instances.retain(|i| i.arn != arn);
        s.instances.push(Instance {
            arn: arn.clone(),
            cluster,
            status: "ACTIVE".into(),
            version,
            record: record.clone(),
        });
        s.registrations.push(Recorded {
            at: SystemTime::now(),
            body: req.clone(),
        });
        Ok(json!({ "containerInstance": record }))
    })
}

/// The parsed identity document (`{}` when none was sent, as in ECS Anywhere mode).
fn identity_document(req: &Value) -> Result<Value, ApiError> {
    let text = str_of(req, "instanceIdentityDocument").unwrap_or("");
    if text.is_empty() {
        return Ok(json!({}));
    }
    if str_of(req, "instanceIdentityDocumentSignature")
        .unwrap_or("")
        .is_empty()
    {
        return Err(ApiError::invalid_parameter(
            "instanceIdentityDocumentSignature is required with instanceIdentityDocument",
        ));
    }
    let document: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::invalid_parameter(format!("instanceIdentityDocument is not valid JSON: {e}"))
    })?;
    if document
        .get("availabilityZone")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(ApiError::invalid_parameter(
            "instanceIdentityDocument has no availabilityZone",
        ));
    }
    Ok(document)
}

fn check_resources(req: &Value) -> Result<(), ApiError> {
    for (i, r) in req["totalResources"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (Some(_), Some(kind)) = (str_of(r, "name"), str_of(r, "type")) else {
            return Err(ApiError::invalid_parameter(format!(
                "totalResources[{i}] needs a name and a type"
            )));
        };
        if !RESOURCE_TYPES.contains(&kind) {
            return Err(ApiError::invalid_parameter(format!(
                "totalResources[{i}].type {kind:?} is not one of {RESOURCE_TYPES:?}"
            )));
        }
    }
    Ok(())
}

fn check_attributes(req: &Value) -> Result<(), ApiError> {
    for (i, a) in req["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for key in ["name", "value"] {
            if str_of(a, key).is_some_and(|v| v.chars().count() > 128) {
                return Err(ApiError::invalid_parameter(format!(
                    "attributes[{i}].{key} is longer than 128"
                )));
            }
        }
    }
    Ok(())
}

/// The same ARN for an instance the simulator issued (or a repeated clientToken), a new one otherwise.
fn instance_arn_for(shared: &Shared, s: &mut State, req: &Value, cluster: &str) -> String {
    let issued = str_of(req, "containerInstanceArn")
        .and_then(|arn| s.instance(arn))
        .filter(|i| i.cluster == cluster && i.status != "INACTIVE")
        .map(|i| i.arn.clone());
    let token = str_of(req, "clientToken").filter(|t| !t.is_empty());
    let by_token = token.and_then(|t| s.client_tokens.get(t).cloned());
    let arn = issued.or(by_token).unwrap_or_else(|| {
        let c = &shared.config;
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!(
            "arn:aws:ecs:{}:{}:container-instance/{cluster}/{id}",
            c.region, c.account_id
        )
    });
    if let Some(t) = token {
        s.client_tokens.insert(t.to_string(), arn.clone());
    }
    arn
}

fn known_instance<'a>(
    s: &'a State,
    reference: Option<&str>,
    cluster: &str,
) -> Result<&'a Instance, ApiError> {
    let reference = reference
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::invalid_parameter("containerInstance is required"))?;
    s.instance(reference)
        .filter(|i| i.cluster == cluster)
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "Container instance {reference} not found in cluster {cluster}."
            ))
        })
}

fn deregister(shared: &Shared, req: &Value) -> Result<Value, ApiError> {
    shared.update(|s| {
        let cluster = resolve_cluster(shared, s, str_of(req, "cluster"))?;
        let arn = known_instance(s, str_of(req, "containerInstance"), &cluster)?
            .arn
            .clone();
        let instance = s.instance_mut(&arn).expect("instance just found");
        instance.status = "INACTIVE".into();
        instance.record["status"] = json!("INACTIVE");
        Ok(json!({ "containerInstance": instance.record }))
    })
}

fn discover(shared: &Shared, req: &Value) -> Result<Value, ApiError> {
    shared.read(|s| {
        let cluster = resolve_cluster(shared, s, str_of(req, "cluster"))?;
        let instance = known_instance(s, str_of(req, "containerInstance"), &cluster)?;
        if instance.status == "INACTIVE" {
            return Err(ApiError::client(format!(
                "Container instance {} is inactive.",
                instance.arn
            )));
        }
        let base = &shared.endpoint;
        Ok(json!({
            "endpoint": format!("{base}/acs/"),
            "telemetryEndpoint": format!("{base}/tcs/"),
            "serviceConnectEndpoint": format!("{base}/sc/"),
            "systemLogsEndpoint": format!("{base}/syslogs/"),
        }))
    })
}

fn cluster_record(shared: &Shared, s: &State, name: &str) -> Value {
    let registered = s
        .instances
        .iter()
        .filter(|i| i.cluster == name && i.status == "ACTIVE")
        .count();
    json!({
        "clusterArn": shared.cluster_arn(name),
        "clusterName": name,
        "status": "ACTIVE",
        "registeredContainerInstancesCount": registered,
        "runningTasksCount": 0,
        "pendingTasksCount": 0,
        "activeServicesCount": 0,
    })
}

fn create_cluster(shared: &Shared, req: &Value) -> Result<Value, ApiError> {
    let name = str_of(req, "clusterName").unwrap_or("default");
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 255 || !name.chars().all(valid) {
        return Err(ApiError::invalid_parameter(
            "Cluster name can have up to 255 letters, numbers, hyphens and underscores.",
        ));
    }
    shared.update(|s| {
        s.clusters.insert(name.to_string());
        Ok(json!({ "cluster": cluster_record(shared, s, name) }))
    })
}

fn describe_clusters(shared: &Shared, req: &Value) -> Result<Value, ApiError> {
    let asked: Vec<&str> = match req["clusters"].as_array() {
        Some(list) => list.iter().filter_map(Value::as_str).collect(),
        None => vec!["default"],
    };
    shared.read(|s| {
        let (mut clusters, mut failures) = (vec![], vec![]);
        for reference in asked {
            match resolve_cluster(shared, s, Some(reference)) {
                Ok(name) => clusters.push(cluster_record(shared, s, &name)),
                Err(_) => failures.push(json!({"arn": reference, "reason": "MISSING"})),
            }
        }
        Ok(json!({"clusters": clusters, "failures": failures}))
    })
}

fn update_instances_state(shared: &Shared, req: &Value) -> Result<Value, ApiError> {
    let status = str_of(req, "status").unwrap_or_default().to_string();
    if status != "ACTIVE" && status != "DRAINING" {
        return Err(ApiError::invalid_parameter(
            "Container instance status can only be ACTIVE or DRAINING.",
        ));
    }
    shared.update(|s| {
        let cluster = resolve_cluster(shared, s, str_of(req, "cluster"))?;
        let (mut updated, mut failures) = (vec![], vec![]);
        for reference in req["containerInstances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            match s.instance_mut(reference).filter(|i| i.cluster == cluster) {
                Some(i) => {
                    i.status = status.clone();
                    i.record["status"] = json!(status);
                    updated.push(i.record.clone());
                }
                None => failures.push(json!({"arn": reference, "reason": "MISSING"})),
            }
        }
        Ok(json!({"containerInstances": updated, "failures": failures}))
    })
}
