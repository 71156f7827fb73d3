//! A fake internet on loopback for mtasts's tests, benchmarks and `mtasts lab`: authoritative
//! DNS, HTTPS policy hosts and SMTP servers with STARTTLS, under a per-run test CA.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mtasts_testkit::Error> {
//! use mtasts_testkit::{World, SmtpHost};
//! let world = World::builder()
//!     .sts_domain("good.test", "1", "enforce", &["mx1.good.test"])
//!     .smtp("mx2.good.test", SmtpHost::sni_only())
//!     .build()
//!     .await?;
//! println!("DNS at {}, trust {}", world.dns_addr(), world.ca_file().display());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod ca;
pub mod catalog;
pub mod dns;
pub mod dnssec;
pub mod https;
pub mod pebble;
pub mod postgres;
pub mod redis;
pub mod smtp;
pub mod tls;
pub mod unbound;
pub mod world;

pub use ca::{CertKind, TestCa};
pub use catalog::{Catalog, Scenario};
pub use dns::DnsFault;
pub use https::{HttpRequest, PolicyHost};
pub use pebble::{Pebble, PebbleConfig};
pub use postgres::PostgresServer;
pub use redis::RedisServer;
pub use smtp::{Delivery, SmtpHost, SmtpSession, StartTls};
pub use tls::TlsRecord;
pub use unbound::Unbound;
pub use world::{DnssecMode, Placement, World, WorldBuilder};

/// Why the world could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O: {0}")]
    /// An I/O error, in words.
    Io(String),
    #[error("TLS: {0}")]
    /// A TLS setup error, in words.
    Tls(String),
    #[error("certificate generation: {0}")]
    /// Certificate generation failed.
    Cert(#[from] rcgen::Error),
    #[error("configuration: {0}")]
    /// A world description that cannot be built.
    Config(String),
}

impl Error {
    /// Maps an I/O error, naming what was being done.
    pub fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
        move |e| Error::Io(format!("{what}: {e}"))
    }
}
