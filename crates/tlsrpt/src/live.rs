//! One report message as an MTA hands it over (a Postfix `pipe`, an Exim pipe, `.forward`):
//! find the report, check DKIM (RCV-01), store it, and tell the MTA what to do with sysexits
//! codes — retry later when nothing could be decided, never lose what arrived.

use mtasts_core::UnixTime;
use mtasts_core::errors::Chain;

use crate::dkim::{DkimVerifier, Verdict};
use crate::intake::{MAX_RECEIVED_BYTES, receive};
use crate::mail::read_message;
use crate::store::{DbError, ReportDb, Stored};

/// What became of a message, and so what the MTA is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored as a new report.
    Stored {
        /// The report's `report-id`.
        report_id: String,
        /// Its `organization-name`.
        organization: String,
        /// The DKIM signer.
        signer: String,
    },
    /// The same report was stored before.
    Duplicate {
        /// The report's `report-id`.
        report_id: String,
    },
    /// Not a signed report of its reporting domain: kept among the ignored messages, and the
    /// MTA is told it was delivered — a bounce would go to a sender nobody authenticated.
    Ignored {
        /// Why.
        reason: String,
    },
    /// Signed by its reporting domain but unusable (no report part, broken JSON): kept among
    /// the ignored messages, and bounced, so the reporter (who signed it) learns.
    Refused {
        /// Why.
        reason: String,
    },
    /// Nothing decided (a DNS failure fetching the key, the store unavailable): the MTA keeps
    /// the message and tries again.
    TryLater {
        /// Why.
        reason: String,
    },
}

/// sysexits(3) codes, as Postfix's pipe(8) and Exim's pipe transport read them.
pub mod sysexits {
    /// Delivered.
    pub const OK: u8 = 0;
    /// Bounce: the data is wrong.
    pub const DATAERR: u8 = 65;
    /// Retry later.
    pub const TEMPFAIL: u8 = 75;
}

impl Outcome {
    /// The exit status for the MTA.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Stored { .. } | Self::Duplicate { .. } | Self::Ignored { .. } => sysexits::OK,
            Self::Refused { .. } => sysexits::DATAERR,
            Self::TryLater { .. } => sysexits::TEMPFAIL,
        }
    }
}

/// Takes in one message: `raw` as read (at most [`MAX_RECEIVED_BYTES`] plus one byte, so an
/// oversized message shows as such).
pub async fn ingest_message(
    raw: &[u8],
    verifier: &DkimVerifier,
    store: &mut ReportDb,
    now: UnixTime,
) -> Outcome {
    let try_later = |e: DbError| Outcome::TryLater {
        reason: format!("report store: {}", Chain(&e)),
    };
    let keep = |store: &mut ReportDb, domain: Option<&str>, reason: String, signed: bool| {
        if let Err(e) = store.store_ignored(raw, domain, &reason, now) {
            return try_later(e);
        }
        if signed {
            Outcome::Refused { reason }
        } else {
            Outcome::Ignored { reason }
        }
    };
    if raw.len() > MAX_RECEIVED_BYTES {
        // Too large to keep: the MTA bounces it (Postfix's message_size_limit usually stops
        // such a message earlier).
        return Outcome::Refused {
            reason: format!("the message is over {MAX_RECEIVED_BYTES} bytes (RCV-05); not kept"),
        };
    }
    let (mail, found) = match read_message(raw) {
        Ok(m) => m,
        Err(e) => return keep(store, None, Chain(&e).to_string(), false),
    };
    let domain = mail.reporting_domain();
    let signer = match verifier.verify(raw, domain.as_deref()).await {
        Verdict::Verified { signer } => signer,
        Verdict::TryLater(reason) => return Outcome::TryLater { reason },
        Verdict::Unverified(why) => {
            return keep(store, domain.as_deref(), format!("RCV-01: {why}"), false);
        }
    };
    if let Err(e) = found {
        return keep(store, domain.as_deref(), Chain(&e).to_string(), true);
    }
    let received = match receive(&mail.report) {
        Ok(r) => r,
        Err(e) => return keep(store, domain.as_deref(), Chain(&e).to_string(), true),
    };
    let report = &received.parsed.report;
    match store.store(&received, &format!("mail:dkim={signer}"), now) {
        Ok(Stored::New(_)) => Outcome::Stored {
            report_id: report.report_id.clone(),
            organization: report.organization.clone(),
            signer,
        },
        Ok(Stored::Duplicate) => Outcome::Duplicate {
            report_id: report.report_id.clone(),
        },
        Err(e) => try_later(e),
    }
}
