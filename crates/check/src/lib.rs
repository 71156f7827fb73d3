//! `mtasts check` and `mtasts scan`: a domain's MTA-STS as senders see it. Gathering (the
//! I/O, [`observe`]) is kept apart from diagnosing (pure, [`diagnose`](mod@diagnose)); findings carry stable
//! [`Code`]s that `lint` shares for policy findings.
#![warn(missing_docs)]

pub mod code;
pub mod diagnose;
pub mod observe;
pub mod policy_findings;
pub mod probe;
pub mod render;
pub mod report;
pub mod scan;

pub use code::Code;
pub use diagnose::diagnose;
pub use observe::{CheckSettings, Checker, HostObservation, Observations, SetupError};
pub use policy_findings::{PolicyFinding, invalid_policy_findings, valid_policy_findings};
pub use report::{Finding, Level, Report};
