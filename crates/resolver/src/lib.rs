//! The sender's side of MTA-STS: discovery through DNS, the HTTPS policy fetch, the cache tiers
//! and refresh, on top of the sans-I/O rules of `mtasts-core`.
#![warn(missing_docs)]

pub mod builder;
pub mod clock;
pub mod counter;
pub mod dane;
pub mod dns;
pub mod dnssec;
pub mod events;
pub mod fetch;
pub mod pinned;
pub mod resolver;
pub mod single_flight;
pub mod testing;
pub mod throttle;
pub mod trust;
pub mod validate;

pub use builder::{EndpointError, NetEndpoints, ResolverBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use counter::Counter;
pub use dane::{DaneResolver, DaneSettings};
pub use dns::{Dns, DnsError, HickoryDns, TxtAnswer};
pub use dnssec::{DnssecClient, NoValidatingResolver};
pub use fetch::{
    ConnectFailure, ConnectFailures, Fetch, FetchError, FetchSettings, Fetched, HttpsFetcher,
    TrustError, client_config, client_config_with, read_pem_certificates, root_store,
};
pub use resolver::{Lookup, Origin, Resolver, ResolverSettings, Stats, describe_verdict};
pub use single_flight::{Flight, SingleFlight};
pub use throttle::Throttle;
pub use trust::{DomainTrust, RuleError, TrustHandle, TrustSpec, TrustTable};

/// The resolver as the binaries use it.
pub type NetResolver = Resolver<HickoryDns, HttpsFetcher<HickoryDns>>;
