//! Hostile server frames through the client's stream check, the expectation's
//! explanation and the human renderers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncprobe::fuzzing::server_frames(data));
