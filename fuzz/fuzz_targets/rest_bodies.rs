//! The write-sync and publish validators, on raw bytes and on structured JSON; accepted
//! bodies must become valid frames.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncprobe::fuzzing::rest_bodies(data));
