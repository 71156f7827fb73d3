//! Turning received bytes into a report: gzip recognised by its magic bytes (RCV-07), sizes
//! bounded before and after decompression (RCV-05, gzip bombs), then the core parser.

use std::io::Read;

use mtasts_core::report::{ParsedReport, ReportError, parse_report};

/// Largest report accepted as received (compressed or not), as mox bounds a report message.
pub const MAX_RECEIVED_BYTES: usize = 15 * 1024 * 1024;
/// Largest report after decompression (mox's bound).
pub const MAX_JSON_BYTES: usize = 20 * 1024 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why received bytes are not a usable report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntakeError {
    #[error("{size} bytes received; at most {limit} are accepted (RCV-05)")]
    /// Over [`MAX_RECEIVED_BYTES`].
    TooLarge {
        /// What arrived.
        size: usize,
        /// The bound.
        limit: usize,
    },
    #[error("decompresses to more than {limit} bytes (RCV-05: a gzip bomb is refused)")]
    /// Over [`MAX_JSON_BYTES`] once decompressed.
    Bomb {
        /// The bound.
        limit: usize,
    },
    #[error("gzip data is corrupt")]
    /// The gzip stream cannot be read.
    Gzip(#[source] std::io::Error),
    #[error("unusable report")]
    /// The JSON is not a usable report.
    Report(#[source] ReportError),
}

/// A report as received: the JSON text (decompressed) and what was read from it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The report's JSON, as received (after decompression).
    pub json: Vec<u8>,
    /// Whether it arrived gzip-compressed.
    pub gzipped: bool,
    /// The parsed report and its warnings.
    pub parsed: ParsedReport,
}

/// Reads `bytes` (JSON, or gzip-compressed JSON) into a report.
pub fn receive(bytes: &[u8]) -> Result<Received, IntakeError> {
    if bytes.len() > MAX_RECEIVED_BYTES {
        return Err(IntakeError::TooLarge {
            size: bytes.len(),
            limit: MAX_RECEIVED_BYTES,
        });
    }
    let gzipped = bytes.starts_with(&GZIP_MAGIC);
    let json = if gzipped {
        gunzip(bytes)?
    } else {
        bytes.to_vec()
    };
    let parsed = parse_report(&json).map_err(IntakeError::Report)?;
    Ok(Received {
        json,
        gzipped,
        parsed,
    })
}

/// Decompresses at most [`MAX_JSON_BYTES`]; one byte more is a bomb.
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, IntakeError> {
    let limit = u64::try_from(MAX_JSON_BYTES).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(IntakeError::Gzip)?;
    if out.len() > MAX_JSON_BYTES {
        return Err(IntakeError::Bomb {
            limit: MAX_JSON_BYTES,
        });
    }
    Ok(out)
}
