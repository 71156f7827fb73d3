#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mtasts_daemon::fuzzing::netstring(data));
