//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay test. Each
//! panics on a violation.

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::{MAX_REQUEST, NetstringCodec};

/// Decodes frames until the input is used up or refused; `true` if it ended cleanly.
fn decode_all(input: &[u8], chunk: usize) -> (Vec<Vec<u8>>, bool) {
    let mut codec = NetstringCodec::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.put_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break,
                Err(_) => return (frames, false),
            }
        }
    }
    (frames, true)
}

/// Netstring decoding never panics, never yields a frame over the limit, gives the same
/// frames and the same refusal however the input is split, and re-encoded frames decode to
/// themselves.
pub fn netstring(data: &[u8]) {
    let (whole, ok) = decode_all(data, data.len());
    assert!(whole.iter().all(|f| f.len() <= MAX_REQUEST));
    for chunk in [1, 3, 7] {
        // The same frames, and the same refusal, however the bytes arrive.
        assert_eq!(
            decode_all(data, chunk),
            (whole.clone(), ok),
            "chunks of {chunk}"
        );
    }
    let mut out = BytesMut::new();
    let mut codec = NetstringCodec::default();
    for f in &whole {
        let _ = codec.encode(f.as_slice(), &mut out);
    }
    let (again, again_ok) = decode_all(&out, out.len());
    assert!(again_ok);
    assert_eq!(again, whole);
}
