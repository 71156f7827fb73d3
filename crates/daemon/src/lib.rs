//! `mtasts daemon`: the MTA-STS policy server for Postfix's `smtp_tls_policy_maps`
//! (socketmap), on the mtasts resolver.

pub mod codec;
pub mod config;
pub mod metrics;
pub mod pmsr;
pub mod report;
pub mod server;

pub use codec::{CodecError, NetstringCodec};
pub use config::{Config, ConfigError, PostfixVersion, Version, Zone, postconf_mail_version};
pub use report::DecisionReport;
pub use server::{Explanation, Listener, Server, ServerError, bind};
