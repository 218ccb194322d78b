//! The `ecs-agent` binary: parses the command line and hands over to `app`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match ecs_agent::app::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ecs_agent::app::Exit::Usage.into()
            } else {
                ecs_agent::app::Exit::Success.into()
            };
        }
    };
    ecs_agent::app::main(cli).into()
}
