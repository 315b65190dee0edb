//! One module per subcommand, each holding its flags (`…Args`) and its `run`.

pub mod connect;
pub mod enqueue;
pub mod generate;
pub mod load;
pub mod serve;
pub mod smoke;
pub mod token;
pub mod watch_sync;

use crate::cli::{Cli, Command};
use crate::exit::Exit;
use crate::report::Reporter;

/// Runs the parsed command line.
pub async fn run(cli: Cli, reporter: &Reporter) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Connect(args) => connect::run(args, reporter).await,
        Command::WatchSync(args) => watch_sync::run(args, reporter).await,
        Command::Enqueue(args) => enqueue::run(args, reporter).await,
        Command::Smoke(args) => smoke::run(args, reporter).await,
        Command::Load(args) => load::run(args, reporter).await,
        Command::Serve(args) => serve::run(args, reporter).await,
        Command::Token(args) => token::run(args, reporter).await,
        Command::Generate(args) => generate::run(args, reporter).await,
    }
}

/// Resolves when the user presses Ctrl-C or the process gets SIGTERM.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
