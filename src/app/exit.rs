//! The agent's exit codes. systemd's `RestartPreventExitStatus=5` relies on [`Exit::Terminal`];
//! the values match the official agent's, so units and scripts written for it keep working.

use std::process::ExitCode;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Clean shutdown (0).
    Success,
    /// A failure that a restart may cure, such as Docker not answering yet (1): systemd restarts.
    Failure,
    /// Bad command-line usage (2), as clap reports it.
    Usage,
    /// A failure a restart cannot cure, such as invalid configuration (5): systemd does not
    /// restart the agent in a loop.
    Terminal,
    /// `local run`: the essential container's own exit code.
    Code(u8),
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Terminal => 5,
            Exit::Code(c) => c,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}
