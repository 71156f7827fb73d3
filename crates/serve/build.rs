//! Test prerequisites as cfg flags (see `mtasts-prereq`): tests that cannot run here are
//! ignored with the reason only when `MTASTS_TEST_SKIP` says so, never passed silently.
fn main() {
    mtasts_prereq::emit();
}
