//! Netstring framing for Postfix's socketmap protocol (PFX-10, PFX-15): `<len>:<payload>,`.
//! The declared length is checked against the limit before anything is allocated; leading
//! zeros are accepted, canonical lengths are written.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Postfix's default `socketmap_max_query_size` is 10,000 bytes (Postfix 3.12).
pub const MAX_REQUEST: usize = 10_000;
/// Digits allowed in a length prefix: enough for any limit we accept.
const MAX_DIGITS: usize = 10;

/// A framing error: the connection is closed, without a reply.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("netstring length is not a decimal number")]
    /// The length is not a decimal number.
    BadLength,
    #[error("netstring length prefix has more than {MAX_DIGITS} digits")]
    /// The length has more digits than any allowed length needs.
    LengthTooLong,
    #[error("netstring of {len} bytes exceeds the {max}-byte limit")]
    /// The length is over the limit.
    TooLong {
        /// The length announced.
        len: usize,
        /// The limit.
        max: usize,
    },
    #[error("netstring is not terminated by `,`")]
    /// The payload is not followed by `,`.
    MissingComma,
    #[error("I/O: {0}")]
    /// Reading or writing the connection failed.
    Io(#[from] std::io::Error),
}

/// Decodes requests of at most `max_len` bytes and encodes replies.
#[derive(Debug, Clone, Copy)]
pub struct NetstringCodec {
    max_len: usize,
}

impl NetstringCodec {
    /// A codec refusing requests longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self { max_len }
    }
}

impl Default for NetstringCodec {
    fn default() -> Self {
        Self::new(MAX_REQUEST)
    }
}

impl Decoder for NetstringCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let digits = buf
            .iter()
            .take(MAX_DIGITS + 1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        // Too long a prefix is refused however the bytes arrive (found by fuzzing: eleven
        // digits were accepted when the `:` came in the same read, refused when it came later).
        if digits > MAX_DIGITS {
            return Err(CodecError::LengthTooLong);
        }
        if digits == buf.len() {
            // Only digits so far: wait for more.
            return Ok(None);
        }
        if digits == 0 || buf[digits] != b':' {
            return Err(CodecError::BadLength);
        }
        let len: usize = std::str::from_utf8(&buf[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(CodecError::BadLength)?;
        if len > self.max_len {
            return Err(CodecError::TooLong {
                len,
                max: self.max_len,
            });
        }
        let total = digits + 1 + len + 1;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        if buf[total - 1] != b',' {
            return Err(CodecError::MissingComma);
        }
        buf.advance(digits + 1);
        let payload = buf.split_to(len).freeze();
        buf.advance(1);
        Ok(Some(payload))
    }
}

impl Encoder<&[u8]> for NetstringCodec {
    type Error = CodecError;

    fn encode(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
        let len = payload.len().to_string();
        out.reserve(len.len() + payload.len() + 2);
        out.put_slice(len.as_bytes());
        out.put_u8(b':');
        out.put_slice(payload);
        out.put_u8(b',');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> (Vec<Bytes>, Option<String>) {
        let mut codec = NetstringCodec::default();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    #[test]
    fn pfx_10_decodes_one_and_several_frames() {
        let (f, e) = decode_all(b"19:postfix example.com,");
        assert_eq!(
            (f, e),
            (vec![Bytes::from_static(b"postfix example.com")], None)
        );
        let (f, e) = decode_all(b"3:a b,3:c d,0:,");
        assert_eq!(f.len(), 3);
        assert_eq!(f[2], Bytes::new());
        assert!(e.is_none());
    }

    #[test]
    fn pfx_15_leading_zeros_ok_bad_frames_rejected() {
        assert_eq!(decode_all(b"003:abc,").0, vec![Bytes::from_static(b"abc")]);
        for bad in [&b"abc:xyz,"[..], b":abc,", b"3:abcd", b"3x:abc,", b"-1:,"] {
            let (frames, err) = decode_all(bad);
            assert!(
                frames.is_empty() && err.is_some(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            decode_all(b"99999999999").1.is_some(),
            "endless length prefix"
        );
    }

    #[test]
    fn a_20_digit_length_is_named_as_too_many_digits() {
        let (_, err) = decode_all(b"00000000000000000001:");
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("more than 10 digits")),
            "{err:?}"
        );
        let (_, err) = decode_all(b"12x:");
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("not a decimal number")),
            "{err:?}"
        );
    }

    #[test]
    fn pfx_14_oversize_refused_from_the_length_prefix_alone() {
        let (frames, err) = decode_all(b"10001:");
        assert!(frames.is_empty());
        assert!(err.is_some_and(|e| e.contains("10001")));
        let (_, err) = decode_all(b"9999999999:");
        assert!(err.is_some());
    }

    #[test]
    fn byte_at_a_time_input_decodes_the_same() {
        let input = b"19:postfix example.com,5:hello,";
        let mut codec = NetstringCodec::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for &b in input.iter() {
            buf.put_u8(b);
            while let Some(f) = codec.decode(&mut buf).expect("valid") {
                frames.push(f);
            }
        }
        assert_eq!(
            frames,
            vec![
                Bytes::from_static(b"postfix example.com"),
                Bytes::from_static(b"hello")
            ]
        );
    }

    #[test]
    fn an_overlong_prefix_is_refused_whole_or_byte_by_byte() {
        let input = b"00000001000:1093";
        assert!(decode_all(input).1.is_some(), "whole");
        let mut codec = NetstringCodec::default();
        let mut buf = BytesMut::new();
        let refused = input.iter().any(|&b| {
            buf.put_u8(b);
            codec.decode(&mut buf).is_err()
        });
        assert!(refused, "byte by byte");
        assert_eq!(
            decode_all(b"0000000003:abc,").0.len(),
            1,
            "ten digits are fine"
        );
    }

    #[test]
    fn encodes_canonical_lengths() {
        let mut out = BytesMut::new();
        NetstringCodec::default()
            .encode(&b"NOTFOUND "[..], &mut out)
            .expect("encode");
        assert_eq!(&out[..], b"9:NOTFOUND ,");
    }
}
