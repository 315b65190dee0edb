//! Connecting to sync sockets and calling the REST API: URL building, headers, TLS,
//! timeouts and the reconnect policy.
