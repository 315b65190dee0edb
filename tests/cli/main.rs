//! Integration tests: the bundled server over real sockets, and the built binary
//! driven against it. One test binary; one module per area.

mod interop;
mod serve;
mod support;
