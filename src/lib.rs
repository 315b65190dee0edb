//! syncprobe: test and inspect sync sockets, the WebSocket endpoints
//! (`/api/ws/sync/{organizationId}`) through which a backend pushes the sync status
//! of queued writes to the clients of one organization.
//!
//! The binary is thin glue over this library: [`cli`] parses, [`commands`] runs one
//! subcommand each, [`report`] is the only writer to stdout, [`server`] is the
//! bundled reference server, [`client`] holds connecting and HTTP calls, and
//! [`protocol`] the wire types of the protocol (`docs/protocol.md`).

pub mod backoff;
pub mod check;
pub mod claims;
pub mod cli;
pub mod client;
pub mod commands;
pub mod diagnose;
pub mod exit;
pub mod expect;
pub mod follow;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod lifecycle;
pub mod load;
pub mod protocol;
pub mod proxy;
pub mod report;
pub mod seq;
pub mod server;
pub mod stats;
pub mod tap;
pub mod text;
