//! The `_mta-sts` TXT record (RFC 8461 §3.1): choosing the one usable record of an RRset and
//! parsing it by the ABNF.

use std::fmt;

/// Longest `id` value (TXT-07).
pub const MAX_ID_LEN: usize = 32;
/// Longest extension field name: one leading character plus 31 (TXT-07).
pub const MAX_EXT_NAME_LEN: usize = 32;

const VERSION: &[u8] = b"v=STSv1";

/// A parsed `v=STSv1` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsRecord {
    /// The policy id, 1–32 letters/digits; compared byte for byte (TXT-12).
    pub id: String,
    /// Syntactically valid extension fields in record order; ignored by senders (TXT-11).
    pub extensions: Vec<(String, String)>,
}

impl StsRecord {
    /// Canonical text: `v=STSv1; id=<id>;` followed by the extensions.
    pub fn render(&self) -> String {
        let mut out = format!("v=STSv1; id={};", self.id);
        for (name, value) in &self.extensions {
            out.push_str(&format!(" {name}={value};"));
        }
        out
    }
}

impl fmt::Display for StsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Why a record that starts with `v=STSv1` is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxtError {
    #[error(
        "record does not start with `v=STSv1` (TXT-07: the version must come first, case-sensitive)"
    )]
    /// The record does not start with `v=STSv1`.
    NotStsV1,
    #[error("byte 0x{byte:02x} at offset {offset} is not printable US-ASCII (TXT-09)")]
    /// A byte outside printable US-ASCII.
    NonAscii {
        /// Where.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    #[error("expected `;` between fields at offset {offset} (TXT-07 delimiter: *WSP \";\" *WSP)")]
    /// No `;` where a delimiter belongs.
    ExpectedDelimiter {
        /// Where.
        offset: usize,
    },
    #[error("empty field at offset {offset} (TXT-07: a field follows each `;` except the last)")]
    /// An empty field.
    EmptyField {
        /// Where.
        offset: usize,
    },
    #[error("field at offset {offset} has no `=` (TXT-07: fields are name=value)")]
    /// A field without `=`.
    MissingEquals {
        /// Where.
        offset: usize,
    },
    #[error(
        "field name `{name}` is invalid (TXT-07: a letter/digit, then up to 31 letters, digits, `_`, `-`, `.`)"
    )]
    /// An extension name the grammar does not allow.
    BadExtensionName {
        /// The name.
        name: String,
    },
    #[error(
        "value of `{name}` is invalid (TXT-07: one or more printable characters except `;` and `=`)"
    )]
    /// An extension value the grammar does not allow.
    BadExtensionValue {
        /// The extension's name.
        name: String,
    },
    #[error("`id` is empty (TXT-08: 1–32 letters or digits)")]
    /// `id=` with nothing after it.
    EmptyId,
    #[error("`id` is {len} characters long (TXT-08: at most 32)")]
    /// An id longer than 32 characters.
    IdTooLong {
        /// Its length.
        len: usize,
    },
    #[error("`id` value `{id}` has a character other than a letter or digit (TXT-08)")]
    /// An id with characters other than letters and digits.
    BadIdChar {
        /// The id.
        id: String,
    },
    #[error("no `id` field (TXT-08: `id` is required)")]
    /// No `id` field.
    MissingId,
}

impl TxtError {
    /// The checklist item this error enforces.
    pub fn checklist_id(&self) -> &'static str {
        match self {
            Self::NotStsV1 | Self::ExpectedDelimiter { .. } | Self::EmptyField { .. } => "TXT-07",
            Self::MissingEquals { .. }
            | Self::BadExtensionName { .. }
            | Self::BadExtensionValue { .. } => "TXT-07",
            Self::NonAscii { .. } => "TXT-09",
            Self::EmptyId | Self::IdTooLong { .. } | Self::BadIdChar { .. } | Self::MissingId => {
                "TXT-08"
            }
        }
    }
}

/// The outcome of choosing among the TXT records at `_mta-sts.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Discovery {
    #[error("no TXT record starting with `v=STSv1;` (TXT-05: no policy)")]
    /// No record starts with `v=STSv1;`.
    NoRecord,
    #[error("{0} TXT records start with `v=STSv1;`; exactly one is allowed (TXT-05: no policy)")]
    /// Several records do (how many).
    Multiple(usize),
    #[error("the `v=STSv1` record is invalid: {0} (TXT-06: no policy)")]
    /// The one record is invalid.
    Invalid(Box<TxtError>),
}

/// Joins the character-strings of one TXT RR without separators (TXT-03).
pub fn join_strings<S: AsRef<[u8]>>(strings: &[S]) -> Vec<u8> {
    strings
        .iter()
        .flat_map(|s| s.as_ref().iter().copied())
        .collect()
}

/// Whether a joined record is an MTA-STS record: `v=STSv1`, optional SP/HTAB, then `;`
/// (TXT-04, with the TXT-04a tolerance for whitespace before `;`).
pub fn is_sts_record(record: &[u8]) -> bool {
    record
        .strip_prefix(VERSION)
        .map(|rest| skip_wsp(rest, 0))
        .is_some_and(|(rest, _)| rest.first() == Some(&b';'))
}

/// Chooses and parses the one MTA-STS record of a TXT RRset, each record given as its
/// character-strings (TXT-03, TXT-04, TXT-05, TXT-06).
pub fn select_record<R, S>(rrset: &[R]) -> Result<StsRecord, Discovery>
where
    R: AsRef<[S]>,
    S: AsRef<[u8]>,
{
    let mut sts = rrset
        .iter()
        .map(|rr| join_strings(rr.as_ref()))
        .filter(|joined| is_sts_record(joined));
    let Some(first) = sts.next() else {
        return Err(Discovery::NoRecord);
    };
    let extra = sts.count();
    if extra > 0 {
        return Err(Discovery::Multiple(extra + 1));
    }
    parse_record(&first).map_err(|e| Discovery::Invalid(Box::new(e)))
}

/// Parses one joined record by the RFC 8461 §3.1 ABNF.
pub fn parse_record(record: &[u8]) -> Result<StsRecord, TxtError> {
    if let Some((offset, &byte)) = record
        .iter()
        .enumerate()
        .find(|&(_, &b)| !(b == b'\t' || (0x20..=0x7e).contains(&b)))
    {
        return Err(TxtError::NonAscii { offset, byte });
    }
    let Some(mut rest) = record.strip_prefix(VERSION) else {
        return Err(TxtError::NotStsV1);
    };
    let mut offset = VERSION.len();
    let mut id: Option<String> = None;
    let mut extensions = Vec::new();
    loop {
        if rest.is_empty() {
            break;
        }
        // Delimiter: *WSP ";" *WSP
        let (after_wsp, n) = skip_wsp(rest, offset);
        offset = n;
        if after_wsp.first() != Some(&b';') {
            return Err(TxtError::ExpectedDelimiter { offset });
        }
        let (after_delim, n) = skip_wsp(&after_wsp[1..], offset + 1);
        offset = n;
        rest = after_delim;
        if rest.is_empty() {
            break; // optional final delimiter
        }
        let end = rest
            .iter()
            .position(|&b| b == b';' || b == b' ' || b == b'\t')
            .unwrap_or(rest.len());
        let field = &rest[..end];
        if field.is_empty() {
            return Err(TxtError::EmptyField { offset });
        }
        let Some(eq) = field.iter().position(|&b| b == b'=') else {
            return Err(TxtError::MissingEquals { offset });
        };
        // Checked printable ASCII above, so these are valid UTF-8.
        let name = String::from_utf8_lossy(&field[..eq]).into_owned();
        let value = &field[eq + 1..];
        if name == "id" {
            let parsed = parse_id(value)?;
            // TXT-11: the first id wins; later ones only need to be well-formed.
            id.get_or_insert(parsed);
        } else {
            if !is_ext_name(name.as_bytes()) {
                return Err(TxtError::BadExtensionName { name });
            }
            if value.is_empty() || value.iter().any(|&b| b == b'=' || b == b';') {
                return Err(TxtError::BadExtensionValue { name });
            }
            extensions.push((name, String::from_utf8_lossy(value).into_owned()));
        }
        rest = &rest[end..];
        offset += end;
    }
    id.map(|id| StsRecord { id, extensions })
        .ok_or(TxtError::MissingId)
}

fn parse_id(value: &[u8]) -> Result<String, TxtError> {
    if value.is_empty() {
        return Err(TxtError::EmptyId);
    }
    let text = String::from_utf8_lossy(value).into_owned();
    if !value.iter().all(u8::is_ascii_alphanumeric) {
        return Err(TxtError::BadIdChar { id: text });
    }
    if value.len() > MAX_ID_LEN {
        return Err(TxtError::IdTooLong { len: value.len() });
    }
    Ok(text)
}

/// Extension names share one grammar in the TXT record, the policy file and TLS-RPT records.
pub(crate) fn is_ext_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, tail)) => {
            first.is_ascii_alphanumeric()
                && tail.len() < MAX_EXT_NAME_LEN
                && tail
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        }
        None => false,
    }
}

fn skip_wsp(bytes: &[u8], offset: usize) -> (&[u8], usize) {
    let n = bytes
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    (&bytes[n..], offset + n)
}
