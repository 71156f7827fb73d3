//! `mtasts daemon`: the MTA-STS policy server for Postfix's `smtp_tls_policy_maps`
//! (socketmap), on the mtasts resolver.
#![warn(missing_docs)]

pub mod assemble;
pub mod codec;
pub mod config;
pub mod decision_log;
pub mod exim;
pub mod fuzzing;
pub mod load;
pub mod metrics;
pub mod pmsr;
pub mod postfix_version;
pub mod reply_cache;
pub mod report;
pub mod server;
pub mod values;

pub use assemble::{Daemon, NetServer, Options, StartError, default_sqlite_path};
pub use codec::{CodecError, NetstringCodec};
pub use config::{Config, Zone};
pub use load::ConfigError;
pub use postfix_version::{
    DetectError, PostfixDnssec, PostfixVersion, Version, postconf_dnssec, postconf_mail_version,
};
pub use report::DecisionReport;
pub use server::{Explanation, Listener, Server, ServerError, bind};
pub use values::{ListenAddr, LogFormat, SocketMode};
