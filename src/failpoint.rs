//! Crash points for the fault-injection tests: with `ECS_AGENT_FAILPOINT=<name>:<n>` in its
//! environment, the agent kills itself with SIGKILL the `n`th time it passes the point called
//! `name` — as abruptly as an OOM kill or a power cut, at a chosen moment of a task's life.
//! Without the variable, a point costs one atomic load. Test-only; documented in `docs/state.md`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the point and the occurrence.
pub const VAR: &str = "ECS_AGENT_FAILPOINT";

fn armed() -> Option<&'static (String, u32)> {
    static ARMED: OnceLock<Option<(String, u32)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(VAR).ok()?;
            let (name, n) = spec.split_once(':')?;
            Some((name.to_owned(), n.parse().ok()?))
        })
        .as_ref()
}

/// Passes the point `name`; dies here if this is the armed occurrence.
pub fn hit(name: &str) {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let Some((armed, n)) = armed() else {
        return;
    };
    if armed == name && COUNT.fetch_add(1, Ordering::SeqCst) + 1 == *n {
        tracing::warn!(point = name, "failpoint reached; killing the agent");
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}
