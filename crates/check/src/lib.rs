pub mod check;
pub mod probe;
pub mod render;

pub use check::{CheckSettings, Checker, Finding, Level, Report, SetupError};
