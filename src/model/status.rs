//! Task and container statuses, ordered as the official agent orders them, and the words the
//! ECS backend uses for them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A known or desired status. Containers use every step; tasks skip `ResourcesProvisioned`.
/// Statuses only move forward (the `Ord` is the lifecycle order).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    #[default]
    None,
    ManifestPulled,
    Pulled,
    Created,
    Running,
    ResourcesProvisioned,
    Stopped,
}

impl Status {
    /// The agent's own word for the status (`NONE`, `PULLED`, `RUNNING`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::None => "NONE",
            Status::ManifestPulled => "MANIFEST_PULLED",
            Status::Pulled => "PULLED",
            Status::Created => "CREATED",
            Status::Running => "RUNNING",
            Status::ResourcesProvisioned => "RESOURCES_PROVISIONED",
            Status::Stopped => "STOPPED",
        }
    }

    /// Parses a desired status as ACS sends it; unknown words are `None`.
    pub fn from_acs(word: &str) -> Option<Status> {
        Some(match word {
            "NONE" => Status::None,
            "MANIFEST_PULLED" => Status::ManifestPulled,
            "PULLED" => Status::Pulled,
            "CREATED" => Status::Created,
            "RUNNING" => Status::Running,
            "RESOURCES_PROVISIONED" => Status::ResourcesProvisioned,
            "STOPPED" => Status::Stopped,
            _ => return None,
        })
    }

    /// The backend's word: `PENDING`, `RUNNING` or `STOPPED`.
    pub fn backend(&self) -> &'static str {
        match self {
            Status::None | Status::ManifestPulled | Status::Pulled | Status::Created => "PENDING",
            Status::Running | Status::ResourcesProvisioned => "RUNNING",
            Status::Stopped => "STOPPED",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Docker's health status of a container with a health check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Health {
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_ordered_by_lifecycle() {
        assert!(Status::None < Status::Pulled);
        assert!(Status::Pulled < Status::Created);
        assert!(Status::Created < Status::Running);
        assert!(Status::Running < Status::Stopped);
    }

    #[test]
    fn backend_words() {
        assert_eq!(Status::Created.backend(), "PENDING");
        assert_eq!(Status::Running.backend(), "RUNNING");
        assert_eq!(Status::Stopped.backend(), "STOPPED");
        assert_eq!(Status::from_acs("RUNNING"), Some(Status::Running));
        assert_eq!(Status::from_acs("running"), None);
    }
}
