//! Reports that arrived by mail (RFC 8460 §5.3, MAIL-01): the report part of an RFC 5322
//! message, found by its media type (`application/tlsrpt+gzip` or `+json`) or, for senders
//! that label it otherwise, by a `.json`/`.json.gz` file name. MIME parsing is mail-parser's.
//!
//! This reads archived messages (`mtasts tlsrpt ingest FILE.eml`); it does not verify DKIM,
//! which a message arriving live must pass (RCV-01) before it is stored.

use mail_parser::{MessageParser, MimeHeaders};

use crate::intake::MAX_RECEIVED_BYTES;

/// Why no report could be taken from a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    #[error("{size} bytes; a report message is at most {limit} (RCV-05)")]
    /// The message is over the bound.
    TooLarge {
        /// Its size.
        size: usize,
        /// The bound.
        limit: usize,
    },
    #[error("not a MIME message")]
    /// mail-parser could not read it.
    NotMime,
    #[error(
        "no report part: no application/tlsrpt+gzip or application/tlsrpt+json part, and no .json or .json.gz attachment (RFC 8460 §5.3)"
    )]
    /// No part carries a report.
    NoReport,
}

/// What a message says about its report, beside the report itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMail {
    /// The report part, decoded from its transfer encoding (still gzip if it was).
    pub report: Vec<u8>,
    /// `TLS-Report-Domain` (MAIL-02), if present.
    pub report_domain: Option<String>,
    /// `TLS-Report-Submitter` (MAIL-02), if present.
    pub submitter: Option<String>,
}

const MEDIA_SUBTYPES: [&str; 2] = ["tlsrpt+gzip", "tlsrpt+json"];

/// Finds the report in `raw`, an RFC 5322 message.
pub fn report_from_message(raw: &[u8]) -> Result<ReportMail, MailError> {
    if raw.len() > MAX_RECEIVED_BYTES {
        return Err(MailError::TooLarge {
            size: raw.len(),
            limit: MAX_RECEIVED_BYTES,
        });
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(MailError::NotMime)?;
    let by_type = message.parts.iter().find(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("application")
                && ct
                    .subtype()
                    .is_some_and(|s| MEDIA_SUBTYPES.iter().any(|m| s.eq_ignore_ascii_case(m)))
        })
    });
    // Some senders label the report application/gzip or application/octet-stream; the file
    // name (DLV-01: `….json` or `….json.gz`) still says what it is.
    let by_name = || {
        message.parts.iter().find(|p| {
            p.attachment_name().is_some_and(|n| {
                let n = n.to_ascii_lowercase();
                n.ends_with(".json") || n.ends_with(".json.gz")
            })
        })
    };
    let part = by_type.or_else(by_name).ok_or(MailError::NoReport)?;
    let text = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    Ok(ReportMail {
        report: part.contents().to_vec(),
        report_domain: text("TLS-Report-Domain"),
        submitter: text("TLS-Report-Submitter"),
    })
}
