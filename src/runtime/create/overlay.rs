//! Lays a container's `dockerConfig.config` / `dockerConfig.hostConfig` JSON over the request the
//! agent built, the way the official agent's `json.Unmarshal` into its already-filled structs does.
//!
//! The request is turned into JSON, each key present in the string replaces the agent's value, and
//! the result is read back into bollard's types. Where both sides hold a JSON object (a struct such
//! as `LogConfig`, or a map such as `PortBindings`, `ExposedPorts`, `Labels`), their keys merge
//! (recursively), as Go does when it decodes into an existing struct or non-nil map; arrays and
//! scalars are replaced whole; `null` clears the field.
//!
//! Known limits: Go matches JSON keys to struct fields case-insensitively, this matches them
//! exactly (ECS sends the Docker API's own PascalCase names); keys bollard's models do not know
//! are dropped, as Go drops keys its structs do not know.

use bollard::models::ContainerCreateBody;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::CreateError;
use crate::model::DockerConfig;

pub(super) const CONFIG_FIELD: &str = "dockerConfig.config";
pub(super) const HOST_CONFIG_FIELD: &str = "dockerConfig.hostConfig";

/// Top-level keys of the create body that are not Docker `Config` fields, so a
/// `dockerConfig.config` string cannot set them (Go's `Config` has no such fields).
const NOT_CONFIG_KEYS: [&str; 2] = ["HostConfig", "NetworkingConfig"];

/// `body` with `docker_config`'s `config` laid over its Config part and `hostConfig` over its
/// HostConfig.
pub(super) fn apply(
    mut body: ContainerCreateBody,
    docker_config: &DockerConfig,
    container: &str,
) -> Result<ContainerCreateBody, CreateError> {
    if let Some(mut overlay) = parse(docker_config.config.as_deref(), container, CONFIG_FIELD)? {
        for key in NOT_CONFIG_KEYS {
            overlay.remove(key);
        }
        let host_config = body.host_config.take();
        let networking_config = body.networking_config.take();
        body = lay_over(&body, overlay, container, CONFIG_FIELD)?;
        body.host_config = host_config;
        body.networking_config = networking_config;
    }
    let host_overlay = parse(
        docker_config.host_config.as_deref(),
        container,
        HOST_CONFIG_FIELD,
    )?;
    if let Some(overlay) = host_overlay {
        let base = body.host_config.take().unwrap_or_default();
        body.host_config = Some(lay_over(&base, overlay, container, HOST_CONFIG_FIELD)?);
    }
    Ok(body)
}

/// The overlay object, or `None` for an absent, blank or `null` string.
fn parse(
    text: Option<&str>,
    container: &str,
    field: &'static str,
) -> Result<Option<Map<String, Value>>, CreateError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    serde_json::from_str(text).map_err(|source| CreateError::InvalidDockerConfig {
        container: container.to_string(),
        field,
        source,
    })
}

/// `base` with every key of `overlay` laid over it (see the module doc).
fn lay_over<T: Serialize + DeserializeOwned>(
    base: &T,
    overlay: Map<String, Value>,
    container: &str,
    field: &'static str,
) -> Result<T, CreateError> {
    let mut value = serde_json::to_value(base).map_err(|source| CreateError::Encode {
        container: container.to_string(),
        source,
    })?;
    if !value.is_object() {
        value = Value::Object(Map::new());
    }
    if let Value::Object(map) = &mut value {
        merge(map, overlay);
    }
    serde_json::from_value(value).map_err(|source| CreateError::InvalidDockerConfig {
        container: container.to_string(),
        field,
        source,
    })
}

/// Lays `overlay` over `base`: objects merge key by key, `null` removes, anything else replaces.
pub(super) fn merge(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (_, Value::Null) => {
                base.remove(&key);
            }
            (Some(Value::Object(existing)), Value::Object(inner)) => merge(existing, inner),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}
