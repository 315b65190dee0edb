//! Integration tests: the bundled server over real sockets, and the built binary
//! driven against it and against fake servers. One test binary; one module per area.

mod balancer;
mod bounds;
mod color;
mod completions;
mod conflicts;
mod connect;
mod doctor;
mod enqueue;
mod errors;
mod fake;
mod hostile;
mod interop;
mod layers;
mod load;
mod metrics;
mod proxy;
mod records;
mod redis;
mod replay;
mod report;
mod security;
mod serve;
mod status;
mod support;
mod tokens;
mod urls;
mod usage;
mod watch;
