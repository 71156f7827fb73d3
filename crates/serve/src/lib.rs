//! `mtasts serve`: MTA-STS policies hosted for many domains from one process — sites from a
//! directory ([`sites`]), certificates chosen by SNI ([`certs`]), the HTTP side and its limits
//! ([`server`]), delegated DNS for the `_mta-sts` TXT ([`dns`]), and what each domain must
//! publish ([`records`]).
#![warn(missing_docs)]

pub mod acme;
pub mod certs;
pub mod config;
pub mod dns;
pub mod limits;
pub mod metrics;
pub mod records;
pub mod retire;
pub mod server;
pub mod sites;
pub mod watch;

pub use certs::Certs;
pub use server::{Loaded, Server, serve, serve_metrics};
pub use sites::{Site, SiteError, Sites, SourceError, policy_id};
