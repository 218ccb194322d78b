//! Task volumes that need more than Docker: EFS file systems, mounted by the agent.

pub mod efs;
pub mod efs_mounts;
pub mod mount;
