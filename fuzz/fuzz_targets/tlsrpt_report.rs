#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mtasts_core::fuzzing::tlsrpt_report(data);
});
