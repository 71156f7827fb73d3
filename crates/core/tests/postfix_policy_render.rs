//! Checklist §16: Postfix `smtp_tls_policy_maps` keys and answers, byte for byte.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::postfix::{
    KeyRejection, Omission, RenderOptions, Reply, policy_domain_from_key, policy_reply,
    policy_reply_with_omission,
};
use mtasts_core::{DomainName, Policy};

fn policy(text: &str) -> Policy {
    Policy::parse(text).expect("valid").policy
}

fn example() -> Policy {
    policy(
        "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800\n",
    )
}

fn domain() -> DomainName {
    DomainName::parse("example.com").expect("valid")
}

#[test]
fn pfx_30_enforce_renders_secure_with_dot_wildcards() {
    // Vector 65.
    let r = policy_reply(&domain(), &example(), &RenderOptions::default());
    assert_eq!(
        r.payload(),
        "OK secure match=mail.example.com:.example.net servername=hostname"
    );
    assert_eq!(r.payload().len(), 65);
}

#[test]
fn pfx_30_match_list_lowercased_and_deduplicated() {
    let p = policy(
        "version: STSv1\nmode: enforce\nmx: MAIL.example.com\nmx: mail.example.com.\nmx: *.X.net\nmx: *.x.net\nmax_age: 1\n",
    );
    assert_eq!(
        policy_reply(&domain(), &p, &RenderOptions::default()).payload(),
        "OK secure match=mail.example.com:.x.net servername=hostname"
    );
}

#[test]
fn pfx_32_tlsrpt_attributes_byte_for_byte() {
    let opts = RenderOptions {
        tlsrpt: true,
        ..RenderOptions::default()
    };
    assert_eq!(
        policy_reply(&domain(), &example(), &opts).payload(),
        "OK secure match=mail.example.com:.example.net servername=hostname \
         policy_type=sts policy_domain=example.com \
         mx_host_pattern=mail.example.com mx_host_pattern=*.example.net \
         { policy_string = version: STSv1 } { policy_string = mode: enforce } \
         { policy_string = mx: mail.example.com } { policy_string = mx: *.example.net } \
         { policy_string = max_age: 604800 }"
    );
}

#[test]
fn pfx_32_policy_strings_with_braces_are_left_out() {
    let p = policy("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\next: {x}\n");
    let opts = RenderOptions {
        tlsrpt: true,
        ..RenderOptions::default()
    };
    let out = policy_reply(&domain(), &p, &opts).payload();
    assert!(!out.contains("{x}"), "{out}");
    assert!(out.ends_with("{ policy_string = max_age: 1 }"), "{out}");
}

#[test]
fn pfx_33_testing_and_none_are_notfound_unless_strict() {
    let testing = policy("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 1\n");
    let none = policy("version: STSv1\nmode: none\nmax_age: 1\n");
    let d = domain();
    assert_eq!(
        policy_reply(&d, &testing, &RenderOptions::default()),
        Reply::NotFound
    );
    assert_eq!(
        policy_reply(&d, &none, &RenderOptions::default()),
        Reply::NotFound
    );
    let strict = RenderOptions {
        strict_testing: true,
        ..RenderOptions::default()
    };
    assert_eq!(
        policy_reply(&d, &testing, &strict).payload(),
        "OK secure match=a.example servername=hostname"
    );
    assert_eq!(policy_reply(&d, &none, &strict), Reply::NotFound);
    assert_eq!(Reply::NotFound.payload(), "NOTFOUND ");
}

fn many_mx(n: usize) -> Policy {
    let mut text = String::from("version: STSv1\nmode: enforce\nmax_age: 86400\n");
    for i in 0..n {
        text.push_str(&format!("mx: mx{i}.example.com\n"));
    }
    policy(&text)
}

#[test]
fn pfx_14_reply_stays_under_limit_by_dropping_policy_strings_first() {
    let opts = RenderOptions {
        tlsrpt: true,
        ..RenderOptions::default()
    };
    let (reply, omitted) = policy_reply_with_omission(&domain(), &many_mx(1500), &opts);
    let Reply::Ok(data) = reply else {
        panic!("expected OK")
    };
    assert_eq!(omitted, Some(Omission::PolicyStrings));
    assert!(data.len() + 3 <= 100_000, "{}", data.len());
    assert!(!data.contains("policy_string"));
    assert!(
        data.ends_with("mx_host_pattern=mx1499.example.com"),
        "never cut mid-attribute"
    );
}

#[test]
fn pfx_14_vector_69_five_thousand_mx_lines() {
    // Vector 69: the match list alone is ~95 KB, so the TLSRPT attributes go too, and the
    // omission is reported to the caller for logging.
    let opts = RenderOptions {
        tlsrpt: true,
        ..RenderOptions::default()
    };
    let (reply, omitted) = policy_reply_with_omission(&domain(), &many_mx(5000), &opts);
    let Reply::Ok(data) = reply else {
        panic!("expected OK")
    };
    assert_eq!(omitted, Some(Omission::TlsrptAttributes));
    assert!(data.len() + 3 <= 100_000, "{}", data.len());
    assert!(data.ends_with(":mx4999.example.com servername=hostname"));
    // A policy whose bare match list cannot fit is a TEMP, never a truncated policy.
    let tiny = RenderOptions {
        max_reply: 200,
        ..RenderOptions::default()
    };
    assert!(
        matches!(policy_reply(&domain(), &many_mx(5000), &tiny), Reply::Temp(r) if r.contains("too many mx"))
    );
}

#[test]
fn pfx_24_servername_can_be_left_out_for_old_postfix() {
    let opts = RenderOptions {
        sni: false,
        ..RenderOptions::default()
    };
    assert_eq!(
        policy_reply(&domain(), &example(), &opts).payload(),
        "OK secure match=mail.example.com:.example.net"
    );
}

#[test]
fn pfx_12_reply_words_and_reasons_are_single_line() {
    assert_eq!(Reply::Temp("a\nb".into()).payload(), "TEMP a b");
    assert_eq!(Reply::Timeout("t".into()).payload(), "TIMEOUT t");
    assert_eq!(Reply::Perm("p".into()).payload(), "PERM p");
}

#[test]
fn pfx_02_parent_probes_are_refused() {
    // Vector 66.
    assert!(matches!(
        policy_domain_from_key(".example.com"),
        Err(KeyRejection::ParentProbe(_))
    ));
    assert_eq!(policy_domain_from_key(""), Err(KeyRejection::Empty));
}

#[test]
fn pfx_03_key_shapes_normalise_to_the_policy_domain() {
    // Vectors 67, 68.
    let d = |k: &str| policy_domain_from_key(k).map(|d| d.to_string());
    assert_eq!(d("[relay.example.net]:587"), Ok("relay.example.net".into()));
    assert_eq!(d("[relay.example.net]"), Ok("relay.example.net".into()));
    assert_eq!(d("relay.example.net:25"), Ok("relay.example.net".into()));
    assert_eq!(d("Example.COM."), Ok("example.com".into()));
    assert_eq!(d("bücher.example"), Ok("xn--bcher-kva.example".into()));
    for ip in [
        "[192.0.2.1]",
        "192.0.2.1",
        "[192.0.2.1]:25",
        "[ipv6:2001:db8::1]",
        "2001:db8::1",
    ] {
        assert!(
            matches!(
                policy_domain_from_key(ip),
                Err(KeyRejection::NotADomain(..))
            ),
            "{ip}"
        );
    }
}

/// Conditional trust: an enforced policy carries the rule's `tafile=`; DANE does not (its
/// TLSA records authenticate), and the files survive the size limit (dropping them would
/// verify the MX against other anchors).
#[test]
fn conditional_trust_adds_tafile_to_enforced_policies_only() {
    use mtasts_core::cache::{CachedPolicy, Source, Verdict};
    use mtasts_core::dane::{DaneCoverage, DaneDecision};
    use mtasts_core::{DaneFinding, Profile, StsFinding, TrustAnchors, TrustMode};
    let cached = CachedPolicy {
        policy: example(),
        id: "1".into(),
        fetched_at: 0,
    };
    let trust = TrustAnchors {
        name: "corp".into(),
        mode: TrustMode::Only,
        anchor_files: vec!["/etc/mtasts/a.pem".into(), "/etc/mtasts/b.pem".into()],
        postfix_tafile: vec!["/etc/mtasts/a.pem".into(), "/etc/mtasts/b.pem".into()],
    };
    let verdict = Verdict::Policy(Source::Cached);
    let sts = StsFinding::Lookup {
        verdict: &verdict,
        policy: Some(&cached),
    };
    let opts = RenderOptions {
        tlsrpt: true,
        ..RenderOptions::default()
    };
    let d = mtasts_core::decide_with_trust(DaneFinding::Off, sts, Profile::default(), Some(&trust));
    assert_eq!(d.trust(), Some(&trust));
    let (reply, _) = mtasts_core::postfix::render(&domain(), &d, &opts);
    assert!(
        reply.payload().starts_with(
            "OK secure match=mail.example.com:.example.net servername=hostname \
             tafile=/etc/mtasts/a.pem,/etc/mtasts/b.pem policy_type=sts"
        ),
        "{reply}"
    );
    let bare = RenderOptions {
        max_reply: 120,
        ..opts
    };
    let (reply, omitted) = mtasts_core::postfix::render(&domain(), &d, &bare);
    assert_eq!(omitted, Some(Omission::TlsrptAttributes));
    assert!(
        reply
            .payload()
            .ends_with(" tafile=/etc/mtasts/a.pem,/etc/mtasts/b.pem"),
        "{reply}"
    );
    let dane = DaneDecision::Dane(DaneCoverage::Partial);
    let d = mtasts_core::decide_with_trust(
        DaneFinding::Decided(&dane),
        sts,
        Profile::default(),
        Some(&trust),
    );
    assert_eq!(d.trust(), None);
    assert_eq!(
        mtasts_core::postfix::render(&domain(), &d, &opts)
            .0
            .payload(),
        "OK dane-only"
    );
    // Without a rule, the same decision renders as before.
    let d = mtasts_core::decide(DaneFinding::Off, sts, Profile::default());
    assert!(
        !mtasts_core::postfix::render(&domain(), &d, &opts)
            .0
            .payload()
            .contains("tafile")
    );
}
