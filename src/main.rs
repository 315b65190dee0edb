//! Glue only: parse, build the reporter and the runtime, run, map the error to an
//! exit code.

use std::process::ExitCode;

use syncprobe::exit::{Exit, exit_for};
use syncprobe::report::Reporter;

fn main() -> ExitCode {
    let cli = syncprobe::cli::parse();
    let global = &cli.global;
    let reporter = Reporter::with_options(global.json, global.color.color(), global.verbosity());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            let err = anyhow::Error::new(e).context("failed to start the async runtime");
            reporter.error(&err, Exit::Runtime);
            return ExitCode::from(Exit::Runtime.code() as u8);
        }
    };
    let exit = match runtime.block_on(syncprobe::commands::run(
        cli.command,
        syncprobe::cli::command,
        &reporter,
    )) {
        Ok(exit) => exit,
        Err(err) => {
            let exit = exit_for(&err);
            reporter.error(&err, exit);
            exit
        }
    };
    // Sockets still open in background tasks must not delay the exit.
    runtime.shutdown_background();
    ExitCode::from(exit.code() as u8)
}
