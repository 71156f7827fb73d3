//! The resolver's own policy failures as TLS-RPT session results (RFC 8461 §6, RPT-01 and
//! RPT-02): each failed fetch, sent as a libtlsrpt datagram to the collector's socket
//! (`mtasts tlsrpt collect`), without waiting, as libtlsrpt itself sends: a lookup never
//! waits on reporting, and a collector that is down loses events, never answers.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use mtasts_core::DomainName;
use mtasts_core::cache::{CachedPolicy, FetchFailure};

use crate::counter::Counter;

/// Where the resolver reports its failed fetches.
pub trait FailureSink: Send + Sync + std::fmt::Debug {
    /// `domain`'s policy could not be fetched (`failure`); `cached` is the policy still in
    /// force, if any.
    fn fetch_failed(
        &self,
        domain: &DomainName,
        failure: FetchFailure,
        cached: Option<&CachedPolicy>,
    );
}

/// Sends each failure as a datagram to a unix socket.
#[derive(Debug)]
pub struct DatagramSink {
    socket: UnixDatagram,
    path: PathBuf,
    /// Datagrams sent.
    pub sent: Counter,
    /// Datagrams the socket did not take (no collector, or its queue full).
    pub dropped: Counter,
    throttle: crate::throttle::Throttle,
}

impl DatagramSink {
    /// A sink for the collector at `path` (it need not be listening yet).
    pub fn new(path: &Path) -> std::io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            path: path.to_path_buf(),
            sent: Counter::default(),
            dropped: Counter::default(),
            throttle: crate::throttle::Throttle::new(std::time::Duration::from_secs(10)),
        })
    }
}

impl FailureSink for DatagramSink {
    fn fetch_failed(
        &self,
        domain: &DomainName,
        failure: FetchFailure,
        cached: Option<&CachedPolicy>,
    ) {
        let (lines, mx) = cached.map_or_else(
            || (Vec::new(), Vec::new()),
            |c| {
                (
                    c.policy.lines(),
                    c.policy.mx.iter().map(ToString::to_string).collect(),
                )
            },
        );
        let Some(datagram) = mtasts_core::session::failure_datagram(
            domain.as_str(),
            failure.result_type(),
            &lines,
            &mx,
        ) else {
            return;
        };
        match self.socket.send_to(datagram.as_bytes(), &self.path) {
            Ok(_) => self.sent.inc(),
            Err(e) => {
                self.dropped.inc();
                if let Some(suppressed) = self.throttle.allow("tlsrpt-events") {
                    tracing::warn!(socket = %self.path.display(), error = %e, suppressed,
                        "tlsrpt: a policy failure event was not taken by the collector");
                }
            }
        }
    }
}
