//! The credentials store: task-role and execution-role credentials delivered by ACS (with a
//! task in a PayloadMessage, refreshed by IAMRoleCredentialsMessage), keyed by credentials ID.
//!
//! In memory only, never written to disk or logged (the official agent does the same; ACS resends
//! them after a restart because the first connection asks with `sendCredentials=true`). Until
//! then the IDs of restored tasks are *pending*: known, not yet delivered. Removing a task's
//! role (task role at STOPPED, execution role at cleanup) also forgets its pending IDs, so an
//! ID ACS will never resend answers "unknown", not "wait".

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::model::RoleCredentials;

/// Which role a credential set belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleType {
    /// The task role (`TaskApplication`): served to the task's containers.
    Task,
    /// The execution role (`TaskExecution`): used by the agent for the task (pulls, logs, secrets).
    Execution,
}

impl RoleType {
    /// Parses ACS's `roleType`.
    pub fn from_acs(word: &str) -> Option<Self> {
        match word {
            "TaskApplication" => Some(RoleType::Task),
            "TaskExecution" => Some(RoleType::Execution),
            _ => None,
        }
    }
}

/// One stored credential set.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub task_arn: String,
    pub role_type: RoleType,
    pub credentials: RoleCredentials,
}

/// Shared store; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Store(
    Arc<RwLock<HashMap<String, Entry>>>,
    /// Pending IDs with the task and role they belong to.
    Arc<RwLock<HashMap<String, (String, RoleType)>>>,
);

impl Store {
    /// Stores (or refreshes in place) a credential set under its credentials ID.
    pub fn put(&self, entry: Entry) {
        let id = entry.credentials.credentials_id.clone();
        self.1
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entry);
    }

    /// Marks an ID as known but not yet delivered (a task restored after an agent restart,
    /// until ACS resends its credentials): the endpoint answers 503, not 400.
    pub fn mark_pending(&self, task_arn: &str, role_type: RoleType, credentials_id: &str) {
        if self.get(credentials_id).is_none() {
            self.1
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(credentials_id.to_owned(), (task_arn.to_owned(), role_type));
        }
    }

    pub fn is_pending(&self, credentials_id: &str) -> bool {
        self.1
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(credentials_id)
    }

    pub fn get(&self, credentials_id: &str) -> Option<Entry> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(credentials_id)
            .cloned()
    }

    /// Removes every set of `task_arn` with `role_type`, delivered or pending.
    pub fn remove_task(&self, task_arn: &str, role_type: RoleType) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| !(e.task_arn == task_arn && e.role_type == role_type));
        self.1
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (arn, role)| !(arn == task_arn && *role == role_type));
    }

    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, task: &str, role: RoleType, key: &str) -> Entry {
        Entry {
            task_arn: task.into(),
            role_type: role,
            credentials: RoleCredentials {
                credentials_id: id.into(),
                access_key_id: key.into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn refresh_replaces_in_place_and_removal_is_per_role() {
        let s = Store::default();
        s.put(entry("c1", "t1", RoleType::Task, "OLD"));
        s.put(entry("c1", "t1", RoleType::Task, "NEW"));
        s.put(entry("c2", "t1", RoleType::Execution, "EXEC"));
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("c1").unwrap().credentials.access_key_id, "NEW");
        s.remove_task("t1", RoleType::Task);
        assert!(s.get("c1").is_none());
        assert!(s.get("c2").is_some());
        assert_eq!(
            RoleType::from_acs("TaskExecution"),
            Some(RoleType::Execution)
        );
        assert_eq!(RoleType::from_acs("Other"), None);
    }

    #[test]
    fn removing_a_role_forgets_its_pending_ids_and_delivery_ends_pending() {
        let s = Store::default();
        s.mark_pending("t1", RoleType::Task, "c1");
        s.mark_pending("t1", RoleType::Execution, "c2");
        s.mark_pending("t2", RoleType::Task, "c3");
        assert!(s.is_pending("c1") && s.is_pending("c2") && s.is_pending("c3"));
        s.remove_task("t1", RoleType::Task);
        assert!(!s.is_pending("c1"), "the stopped task's role is forgotten");
        assert!(s.is_pending("c2"), "its execution role waits for cleanup");
        assert!(s.is_pending("c3"), "another task is untouched");
        s.remove_task("t1", RoleType::Execution);
        assert!(!s.is_pending("c2"));
        s.put(entry("c3", "t2", RoleType::Task, "K"));
        assert!(!s.is_pending("c3"), "delivered");
        s.mark_pending("t2", RoleType::Task, "c3");
        assert!(
            !s.is_pending("c3"),
            "a delivered ID is never marked pending again"
        );
    }
}
