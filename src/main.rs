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
    let run = syncprobe::commands::run(cli.command, syncprobe::cli::command, &reporter);
    let mut exit = match runtime.block_on(run) {
        Ok(exit) => exit,
        Err(err) => {
            let exit = exit_for(&err);
            reporter.error(&err, exit);
            exit
        }
    };
    // Output that could not be written makes a passing run fail (exit 6).
    if let Err(err) = reporter.finish() {
        reporter.error(&err, Exit::Runtime);
        if exit == Exit::Success {
            exit = Exit::Runtime;
        }
    }
    // Sockets still open in background tasks must not delay the exit.
    runtime.shutdown_background();
    ExitCode::from(exit.code() as u8)
}
