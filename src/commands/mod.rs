//! One module per subcommand, each holding its flags (`…Args`) and its `run`, the
//! [`Command`] enum that lists them, and the flag groups they share ([`args`]).
//! Adding a subcommand touches this folder only.

pub mod args;
pub mod conflicts;
pub mod connect;
pub mod doctor;
pub mod enqueue;
pub mod generate;
pub mod load;
pub mod proxy;
pub mod replay;
pub mod serve;
pub mod smoke;
pub mod status;
pub mod token;
pub mod watch_sync;

use clap::Subcommand;

use crate::exit::Exit;
use crate::report::Reporter;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a sync socket, check CONNECTED, and close
    Connect(connect::ConnectArgs),
    /// Stream an organization's sync events and check them against expectations
    WatchSync(watch_sync::WatchSyncArgs),
    /// Queue writes through POST /api/pems/write-sync, optionally following them to the end
    Enqueue(enqueue::EnqueueArgs),
    /// Run the whole verification checklist against a backend (or the bundled server)
    Smoke(smoke::SmokeArgs),
    /// List an organization's sync conflicts, or resolve one (and follow its item again)
    Conflicts(conflicts::ConflictsArgs),
    /// Diagnose one organization's socket layer by layer, with a report to paste into a ticket
    Doctor(doctor::DoctorArgs),
    /// Show an organization's queue health, backlog and sockets (--watch to refresh)
    Status(status::StatusArgs),
    /// Open many sync sockets and measure connect time, fan-out latency and completeness
    Load(load::LoadArgs),
    /// Run the bundled sync-socket server (the protocol's reference implementation)
    Serve(serve::ServeArgs),
    /// Serve a recorded session (watch-sync --record, or a browser HAR file) as a sync socket server
    Replay(replay::ReplayArgs),
    /// Put a fault-injecting proxy (network and message faults) in front of a backend
    Proxy(proxy::ProxyArgs),
    /// Mint an HS256 test token for a secured `serve` (development and CI only), or inspect one
    ///
    /// It signs whatever it is asked to with the shared secret given, so it belongs in
    /// local development and test pipelines; production tokens come from your identity
    /// provider. The token goes to stdout alone, ready for `--token "$(syncprobe token …)"`.
    /// `syncprobe token inspect TOKEN` decodes a token without verifying it.
    Token(token::TokenArgs),
    /// Write shell completions or the man page (see `completions/`)
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// Runs the parsed command line. `root` is the whole clap definition, which only
/// `generate` needs (it lives in `cli`, above this layer).
pub async fn run(
    command: Command,
    root: fn() -> clap::Command,
    reporter: &Reporter,
) -> anyhow::Result<Exit> {
    match command {
        Command::Connect(args) => connect::run(args, reporter).await,
        Command::WatchSync(args) => watch_sync::run(args, reporter).await,
        Command::Enqueue(args) => enqueue::run(args, reporter).await,
        Command::Smoke(args) => smoke::run(args, reporter).await,
        Command::Conflicts(args) => conflicts::run(args, reporter).await,
        Command::Doctor(args) => doctor::run(args, reporter).await,
        Command::Status(args) => status::run(args, reporter).await,
        Command::Load(args) => load::run(args, reporter).await,
        Command::Serve(args) => serve::run(args, reporter).await,
        Command::Replay(args) => replay::run(args, reporter).await,
        Command::Proxy(args) => proxy::run(args, reporter).await,
        Command::Token(args) => token::run(args, reporter).await,
        Command::Generate(args) => generate::run(args, &root(), reporter).await,
    }
}

/// Resolves when the user presses Ctrl-C or the process gets SIGTERM. The handlers
/// are installed when this is called, not when the future is first polled, so a
/// signal that arrives right after `serve` announced its address (or anywhere
/// between a command's start and its first wait) is not lost to the default action.
pub fn interrupted() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            match handlers {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
