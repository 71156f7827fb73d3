//! Sans-I/O core of mtasts: the MTA-STS protocol (RFC 8461) as pure functions.
//!
//! - [`txt`]: the `_mta-sts` TXT record (§3.1);
//! - [`policy`]: the policy file (§3.2);
//! - [`mx`]: MX patterns and matching (§4.1);
//! - [`cache`]: what is in force, and what to fetch when (§3.3, §5.1, §8.3, §10.2);
//! - [`dane`]: whether DANE governs a destination, so MTA-STS never weakens it;
//! - [`decision`]: the one decision (DANE × MTA-STS × zone profile) every front end renders;
//! - [`tlsrpt`]: the TLS-RPT record (RFC 8460 §3);
//! - [`report`]: received TLS-RPT reports (RFC 8460 §4) and their summary;
//! - [`trust`]: extra trust anchors for some policy domains only;
//! - [`postfix`]: answers for Postfix's `smtp_tls_policy_maps`;
//! - [`advice`]: legal-but-unwise choices, for linting and checking;
//! - [`domain`]: the normalised domain names all of them share;
//! - [`errors`]: an error and its causes on one line.
//!
//! No sockets, no clock, no async: time is an argument, I/O is the caller's.
//! Item ids such as `TXT-04` refer to the project's RFC checklist.
#![warn(missing_docs)]

pub mod advice;
pub mod cache;
pub mod dane;
pub mod decision;
pub mod delivery;
pub mod domain;
pub mod errors;
pub mod exim;
#[doc(hidden)]
pub mod fuzzing;
pub mod mx;
pub mod policy;
pub mod postfix;
pub mod postfix_log;
pub mod remember;
pub mod report;
pub mod session;
pub mod submission;
pub mod tlsrpt;
pub mod trust;
pub mod txt;

pub use cache::{
    CacheSettings, CachedPolicy, DomainState, FetchFailure, TxtLookup, UnixTime, Verdict,
};
pub use decision::{DaneFinding, Decision, Profile, StsFinding, decide, decide_with_trust};
pub use domain::{DomainError, DomainName};
pub use mx::{MxPattern, MxPatternError};
pub use policy::{Mode, Parsed, Policy, PolicyError, PolicyErrors, PolicyRule, PolicyWarning};
pub use postfix::{RenderOptions, Reply};
pub use trust::{DomainPattern, TrustAnchors, TrustMode, TrustRules};
pub use txt::{Discovery, StsRecord, TxtError};
