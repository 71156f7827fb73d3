//! TLS-RPT (RFC 8460) for receiving domains: reports taken in ([`intake`]), kept
//! ([`store`]) and summarised (through `mtasts_core::report`).
#![warn(missing_docs)]

pub mod alert;
pub mod collect;
pub mod dashboard;
pub mod dkim;
pub mod http;
pub mod intake;
pub mod live;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod send;
pub mod site;
pub mod store;

pub use dkim::{DkimVerifier, Unverified, Verdict};
pub use http::{Handler, Intake, serve};
pub use intake::{IntakeError, Received, receive};
pub use live::{Checked, Outcome, check_message, file_message};
pub use mail::{MailError, ReportMail, read_message, report_from_message};
pub use site::Site;
pub use store::{
    DbError, DbSpec, Delivery, DeliveryState, Filter, IgnoredMessage, NewOutgoing, ReportDb,
    ReportRow, Stored, Totals,
};

/// Seconds since the epoch, from the system clock (when a report was received).
pub fn unix_now() -> mtasts_core::UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
