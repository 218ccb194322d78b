//! A task's secrets resolved once, before the first of its containers is created: every
//! container's create waits for the same resolution and gets the same result, so a secret of
//! one container that cannot be had stops the task before any container exists. Held in memory
//! only, until the task is cleaned up ([`SecretsCache::release`]); after an agent restart they
//! are fetched again when a container needs them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::ContainerSecrets;

/// Every container's secrets of one task, or the task's stop reason.
pub type Resolved = Result<Arc<BTreeMap<String, ContainerSecrets>>, String>;

/// Resolved secrets by task ARN.
#[derive(Default)]
pub struct SecretsCache {
    tasks: Mutex<BTreeMap<String, Arc<OnceCell<Resolved>>>>,
}

impl SecretsCache {
    /// The task's secrets: resolved by `resolve` on the first call, the same result afterwards
    /// (later callers wait for the first).
    pub async fn task<F, Fut>(&self, task_arn: &str, resolve: F) -> Resolved
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<BTreeMap<String, ContainerSecrets>, String>>,
    {
        let cell = {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.entry(task_arn.to_owned()).or_default().clone()
        };
        cell.get_or_init(|| async { resolve().await.map(Arc::new) })
            .await
            .clone()
    }

    /// Forgets a task's secrets (the task was cleaned up).
    pub fn release(&self, task_arn: &str) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.remove(task_arn);
    }

    /// How many tasks have secrets held.
    pub fn len(&self) -> usize {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_task_is_resolved_once_and_every_container_gets_the_same_result() {
        let cache = SecretsCache::default();
        let calls = AtomicUsize::new(0);
        let resolve = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Err::<BTreeMap<String, ContainerSecrets>, _>("ResourceInitializationError: x".into())
        };
        let (a, b) = tokio::join!(cache.task("t1", resolve), cache.task("t1", resolve));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(a, b);
        assert!(a.is_err());
        cache.release("t1");
        assert!(cache.is_empty());
        let _ = cache.task("t1", resolve).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "resolved again after release"
        );
    }
}
