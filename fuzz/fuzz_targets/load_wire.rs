//! Untrusted server bytes after CONNECTED, through the load client's own frame reader,
//! cut into reads where the input says.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncprobe::fuzzing::load_wire(data));
