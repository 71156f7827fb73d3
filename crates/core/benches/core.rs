//! Micro-benchmarks of the protocol core: policy parse, TXT parse, MX match, Postfix render.
//! `cargo bench -p mtasts-core` (bench/run.sh runs them in the full comparison).

use criterion::{Criterion, criterion_group, criterion_main};
use mtasts_core::postfix::{RenderOptions, policy_reply};
use mtasts_core::txt::{parse_record, select_record};
use mtasts_core::{DomainName, MxPattern, Policy};
use std::hint::black_box;

const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: mx2.example.com\r\nmx: *.mail.example.net\r\nmax_age: 604800\r\n";

fn benches(c: &mut Criterion) {
    c.bench_function("policy parse (3 mx)", |b| {
        b.iter(|| Policy::parse(black_box(POLICY)))
    });
    c.bench_function("txt parse", |b| {
        b.iter(|| parse_record(black_box(b"v=STSv1; id=20260101T000000;")))
    });
    let rrset = vec![vec!["v=spf1 -all"], vec!["v=STSv1; id=2026", "0101;"]];
    c.bench_function("txt select from RRset", |b| {
        b.iter(|| select_record(black_box(&rrset)))
    });
    let patterns: Vec<MxPattern> = ["mx1.example.com", "*.mail.example.net"]
        .iter()
        .filter_map(|p| MxPattern::parse(p).ok())
        .collect();
    if let Ok(host) = DomainName::parse("smtp7.mail.example.net") {
        c.bench_function("mx match", |b| {
            b.iter(|| patterns.iter().any(|p| p.matches(black_box(&host))))
        });
    }
    c.bench_function("domain normalise", |b| {
        b.iter(|| DomainName::parse(black_box("MX1.Example.COM.")))
    });
    if let (Ok(parsed), Ok(domain)) = (Policy::parse(POLICY), DomainName::parse("example.com")) {
        let opts = RenderOptions::default();
        c.bench_function("postfix render", |b| {
            b.iter(|| policy_reply(black_box(&domain), black_box(&parsed.policy), &opts))
        });
    }
}

criterion_group!(core, benches);
criterion_main!(core);
