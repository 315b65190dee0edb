//! Untrusted socket input: the upgrade's query, organization id, Origin and token, client
//! frames through the WebSocket layer with the server's limits into the session rules,
//! and the parser of server frames.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncprobe::fuzzing::frames(data));
