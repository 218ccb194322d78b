//! The task and container state machine, sans I/O.
//!
//! Inputs (ACS desired status, Docker events, command results, timer ticks) go in; commands
//! (pull, create, start, stop, remove, report, persist, wake-at) come out. This module must not
//! import tokio, bollard, any aws-sdk crate or do I/O of any kind: `tests/engine_is_pure.rs`
//! enforces it. The state machine itself arrives with the task-engine issue.
