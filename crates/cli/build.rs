//! Test prerequisites as cfg flags (see `mtasts-prereq`): tests that cannot run here are
//! ignored with the reason only when `MTASTS_TEST_SKIP` says so, never passed silently; and
//! the real-world corpus beside the checkout, when there.
fn main() {
    mtasts_prereq::emit();
    mtasts_prereq::emit_realworld();
}
