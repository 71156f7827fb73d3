//! Reports that arrived by mail (RFC 8460 §5.3, MAIL-01): the report part of an RFC 5322
//! message, found by its media type (`application/tlsrpt+gzip` or `+json`) or, for senders
//! that label it otherwise, by a `.json`/`.json.gz` file name. MIME parsing is mail-parser's.
//!
//! Finding the report does not verify DKIM: a message arriving live must also pass
//! [`crate::dkim`] (RCV-01) before it is stored; archives (`ingest FILE.eml`) are taken as they are.

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
    /// The first From address, if any.
    pub from: Option<String>,
}

impl ReportMail {
    /// Who reports: the submitter header, else the From domain (see [`crate::dkim`]).
    pub fn reporting_domain(&self) -> Option<String> {
        crate::dkim::reporting_domain(self.submitter.as_deref(), self.from.as_deref())
    }
}

const MEDIA_SUBTYPES: [&str; 2] = ["tlsrpt+gzip", "tlsrpt+json"];

/// Finds the report in `raw`, an RFC 5322 message.
pub fn report_from_message(raw: &[u8]) -> Result<ReportMail, MailError> {
    let (mail, found) = read_message(raw)?;
    found.map(|()| mail)
}

/// Reads `raw`'s headers and its report part: the headers even when there is no report (the
/// caller still needs to know who sent it), an empty `report` then.
pub fn read_message(raw: &[u8]) -> Result<(ReportMail, Result<(), MailError>), MailError> {
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
    let part = by_type.or_else(by_name);
    let text = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    let mail = ReportMail {
        report: part.map(|p| p.contents().to_vec()).unwrap_or_default(),
        report_domain: text("TLS-Report-Domain"),
        submitter: text("TLS-Report-Submitter"),
        from: message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string),
    };
    let found = if part.is_some() {
        Ok(())
    } else {
        Err(MailError::NoReport)
    };
    Ok((mail, found))
}
