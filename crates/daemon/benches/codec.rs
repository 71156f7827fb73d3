//! Micro-benchmarks of the socketmap netstring codec.

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use mtasts_daemon::NetstringCodec;
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder};

fn benches(c: &mut Criterion) {
    c.bench_function("netstring decode", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&b"19:postfix example.com,"[..]);
            NetstringCodec::default().decode(black_box(&mut buf))
        })
    });
    c.bench_function("netstring encode", |b| {
        let reply = b"OK secure match=mx1.example.com:.mail.example.net servername=hostname";
        b.iter(|| {
            let mut out = BytesMut::with_capacity(128);
            NetstringCodec::default()
                .encode(black_box(&reply[..]), &mut out)
                .map(|()| out)
        })
    });
}

criterion_group!(codec, benches);
criterion_main!(codec);
