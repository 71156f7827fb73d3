//! The TLS-RPT record at `_smtp._tls.<domain>` (RFC 8460 §3).

use crate::txt::{is_ext_name, join_strings};

/// A parsed `v=TLSRPTv1` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRptRecord {
    /// Every `rua` URI as written.
    pub rua: Vec<String>,
    /// The URIs a sender can use (`mailto:` and `https:`), TRT-06.
    pub usable: Vec<String>,
}

/// Why a TLS-RPT record is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsRptError {
    #[error("not printable US-ASCII (TRT-02)")]
    /// Bytes outside printable US-ASCII.
    NonAscii,
    #[error("expected `;` between fields at offset {0} (TRT-02)")]
    /// No `;` where a delimiter belongs (at this offset).
    ExpectedDelimiter(usize),
    #[error("field `{0}` is not name=value (TRT-02)")]
    /// A field that is not `name=value`.
    BadField(String),
    #[error("no `rua` field (TRT-02: rua is required)")]
    /// No `rua` field.
    MissingRua,
    #[error("`rua` has an empty URI (TRT-02)")]
    /// An empty URI in `rua`.
    EmptyUri,
    #[error("no usable URI: only mailto: and https: are defined (TRT-06)")]
    /// No `mailto:` or `https:` URI.
    NoUsableUri,
}

/// Why a domain has no usable TLS-RPT record (RFC 8460 §3): it does not do TLS reporting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsRptDiscovery {
    #[error("no TXT record starting with `v=TLSRPTv1;` (TRT-03)")]
    /// No record starts with `v=TLSRPTv1;`.
    NoRecord,
    #[error("{0} TXT records start with `v=TLSRPTv1;`; exactly one is allowed (TRT-03)")]
    /// Several records do (how many).
    Multiple(usize),
    #[error("the `v=TLSRPTv1` record is invalid: {0}")]
    /// The one record is invalid.
    Invalid(#[source] TlsRptError),
}

/// Chooses and parses the one TLS-RPT record of a TXT RRset (TRT-03, TRT-04).
pub fn select_tlsrpt<R, S>(rrset: &[R]) -> Result<TlsRptRecord, TlsRptDiscovery>
where
    R: AsRef<[S]>,
    S: AsRef<[u8]>,
{
    let records: Vec<Vec<u8>> = rrset
        .iter()
        .map(|rr| join_strings(rr.as_ref()))
        .filter(|r| is_tlsrpt(r))
        .collect();
    match records.as_slice() {
        [] => Err(TlsRptDiscovery::NoRecord),
        [one] => parse_tlsrpt(one).map_err(TlsRptDiscovery::Invalid),
        many => Err(TlsRptDiscovery::Multiple(many.len())),
    }
}

fn is_tlsrpt(r: &[u8]) -> bool {
    r.strip_prefix(b"v=TLSRPTv1")
        .map(|rest| rest.iter().find(|&&b| b != b' ' && b != b'\t'))
        .is_some_and(|c| c == Some(&b';'))
}

/// Parses one joined record.
pub fn parse_tlsrpt(record: &[u8]) -> Result<TlsRptRecord, TlsRptError> {
    if record
        .iter()
        .any(|&b| !(b == b'\t' || (0x20..=0x7e).contains(&b)))
    {
        return Err(TlsRptError::NonAscii);
    }
    let text = String::from_utf8_lossy(record);
    let rest = text
        .strip_prefix("v=TLSRPTv1")
        .ok_or(TlsRptError::ExpectedDelimiter(0))?;
    let mut rua = None;
    let mut offset = "v=TLSRPTv1".len();
    for (i, field) in rest.split(';').enumerate() {
        let f = field.trim_matches([' ', '\t']);
        if i == 0 {
            if !f.is_empty() {
                return Err(TlsRptError::ExpectedDelimiter(offset));
            }
            offset += field.len() + 1;
            continue;
        }
        offset += field.len() + 1;
        if f.is_empty() {
            continue; // trailing delimiter
        }
        let (name, value) = f
            .split_once('=')
            .ok_or_else(|| TlsRptError::BadField(f.to_string()))?;
        if !is_ext_name(name.as_bytes()) || value.is_empty() {
            return Err(TlsRptError::BadField(f.to_string()));
        }
        if name == "rua" && rua.is_none() {
            rua = Some(value.to_string());
        }
    }
    let rua = rua.ok_or(TlsRptError::MissingRua)?;
    let uris: Vec<String> = rua
        .split(',')
        .map(|u| u.trim_matches([' ', '\t']).to_string())
        .collect();
    if uris.iter().any(String::is_empty) {
        return Err(TlsRptError::EmptyUri);
    }
    let usable: Vec<String> = uris
        .iter()
        .filter(|u| {
            let lower = u.to_ascii_lowercase();
            lower.starts_with("mailto:") || lower.starts_with("https:")
        })
        .cloned()
        .collect();
    if usable.is_empty() {
        return Err(TlsRptError::NoUsableUri);
    }
    Ok(TlsRptRecord { rua: uris, usable })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trt_vectors_58_to_60() {
        let r = parse_tlsrpt(b"v=TLSRPTv1;rua=mailto:reports@example.com").expect("valid");
        assert_eq!(r.usable, vec!["mailto:reports@example.com".to_string()]);
        let r = parse_tlsrpt(b"v=TLSRPTv1; rua=mailto:a@example.com, https://r.example.com/v1")
            .expect("valid");
        assert_eq!(r.usable.len(), 2);
        assert_eq!(parse_tlsrpt(b"v=TLSRPTv1"), Err(TlsRptError::MissingRua));
        assert_eq!(
            parse_tlsrpt(b"v=TLSRPTv1; rua=http://r.example.com"),
            Err(TlsRptError::NoUsableUri)
        );
        let two = vec![
            vec!["v=TLSRPTv1; rua=mailto:a@x.test"],
            vec!["v=TLSRPTv1; rua=mailto:b@x.test"],
        ];
        assert_eq!(select_tlsrpt(&two), Err(TlsRptDiscovery::Multiple(2)));
        let spf = vec![vec!["v=spf1 -all"]];
        assert_eq!(select_tlsrpt(&spf), Err(TlsRptDiscovery::NoRecord));
        let bad = vec![vec!["v=TLSRPTv1; rua=http://r.example.com"]];
        assert_eq!(
            select_tlsrpt(&bad),
            Err(TlsRptDiscovery::Invalid(TlsRptError::NoUsableUri))
        );
    }
}
