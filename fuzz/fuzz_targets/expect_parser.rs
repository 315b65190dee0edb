//! The expectation language: parsing, and matching in both modes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncprobe::fuzzing::expect_parser(data));
