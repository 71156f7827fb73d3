//! The real-world corpus beside the checkout, when there (see `mtasts-prereq`).
fn main() {
    mtasts_prereq::emit_realworld();
}
