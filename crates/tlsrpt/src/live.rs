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

/// What checking a message found, before anything is stored.
#[derive(Debug)]
pub enum Checked {
    /// A signed report of its reporting domain.
    Report {
        /// The report.
        received: Box<crate::Received>,
        /// The DKIM signer.
        signer: String,
    },
    /// To keep aside: not a signed report (`signed`: but signed by its reporting domain).
    Aside {
        /// The reporting domain, if known.
        domain: Option<String>,
        /// Why.
        reason: String,
        /// Whether the reporting domain signed it.
        signed: bool,
    },
    /// Over the size bound: not kept.
    TooLarge,
    /// Nothing decided.
    TryLater(String),
}

/// Checks one message: `raw` as read (at most [`MAX_RECEIVED_BYTES`] plus one byte, so an
/// oversized message shows as such). Only DNS (the DKIM keys); nothing stored.
pub async fn check_message(raw: &[u8], verifier: &DkimVerifier) -> Checked {
    if raw.len() > MAX_RECEIVED_BYTES {
        return Checked::TooLarge;
    }
    let (mail, found) = match read_message(raw) {
        Ok(m) => m,
        Err(e) => {
            return Checked::Aside {
                domain: None,
                reason: Chain(&e).to_string(),
                signed: false,
            };
        }
    };
    let domain = mail.reporting_domain();
    let signer = match verifier.verify(raw, domain.as_deref()).await {
        Verdict::Verified { signer } => signer,
        Verdict::TryLater(reason) => return Checked::TryLater(reason),
        Verdict::Unverified(why) => {
            return Checked::Aside {
                domain,
                reason: format!("RCV-01: {why}"),
                signed: false,
            };
        }
    };
    let received = found
        .map_err(|e| Chain(&e).to_string())
        .and_then(|()| receive(&mail.report).map_err(|e| Chain(&e).to_string()));
    match received {
        Ok(received) => Checked::Report {
            received: Box::new(received),
            signer,
        },
        Err(reason) => Checked::Aside {
            domain,
            reason,
            signed: true,
        },
    }
}

/// Stores what [`check_message`] found (`raw` kept whole when set aside) and says what the
/// MTA is told. Blocking: the store's I/O.
pub fn file_message(checked: Checked, raw: &[u8], store: &mut ReportDb, now: UnixTime) -> Outcome {
    let try_later = |e: DbError| Outcome::TryLater {
        reason: format!("report store: {}", Chain(&e)),
    };
    match checked {
        Checked::TooLarge => Outcome::Refused {
            // Postfix's message_size_limit usually stops such a message earlier.
            reason: format!("the message is over {MAX_RECEIVED_BYTES} bytes (RCV-05); not kept"),
        },
        Checked::TryLater(reason) => Outcome::TryLater { reason },
        Checked::Aside {
            domain,
            reason,
            signed,
        } => match store.store_ignored(raw, domain.as_deref(), &reason, now) {
            Err(e) => try_later(e),
            Ok(_) if signed => Outcome::Refused { reason },
            Ok(_) => Outcome::Ignored { reason },
        },
        Checked::Report { received, signer } => {
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
    }
}
