//! Retiring a domain (RFC 8461 §8.3) from the policy directory (`<domain>.retire`) and from
//! the sites file (`[[retire]]`): the policy becomes `mode: none` under a new id, the wait is
//! the retired policy's max_age counted from `since`, bad entries are reported naming the
//! entry, the field and the rule, and the domain's policy is then served as before.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::policy::Mode;
use mtasts_serve::Sites;
use mtasts_serve::records::{Target, records};

mod common;

use common::Dir;

const POLICY: &str =
    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mx.example.net\nmax_age: 604800\n";
/// 2027-01-15T08:00:00Z.
const SINCE: u64 = 1_800_000_000;

fn site<'a>(sites: &'a Sites, domain: &str) -> &'a mtasts_serve::Site {
    sites
        .for_host(&format!("mta-sts.{domain}"))
        .unwrap_or_else(|| panic!("{domain} not served: {:?}", sites.problems))
}

#[test]
fn ops_05_a_retire_file_serves_mode_none_under_a_new_id_for_the_old_max_age() {
    let dir = Dir::new("file");
    dir.write("example.com.txt", POLICY);
    dir.write("example.org.txt", POLICY);
    let before = Sites::load_dir(&dir.0).expect("sites");
    let old_id = site(&before, "example.com").id.clone();

    dir.write("example.com.retire", "since = \"2027-01-15T08:00:00Z\"\n");
    let sites = Sites::load_dir(&dir.0).expect("sites");
    assert!(sites.problems.is_empty(), "{:?}", sites.problems);
    let s = site(&sites, "example.com");
    // The mx lines stay (a strict sender may want them), mode and max_age change.
    assert_eq!(
        std::str::from_utf8(&s.body).expect("utf-8"),
        "version: STSv1\nmode: none\nmx: mx1.example.com\nmx: *.mx.example.net\nmax_age: 86400\n"
    );
    assert_eq!(s.policy.mode, Mode::None);
    assert_ne!(s.id, old_id, "a new id, so senders refetch (§8.3)");
    let r = s.retiring.expect("retiring");
    assert_eq!((r.since, r.previous_max_age), (SINCE, 604_800));
    assert_eq!(r.safe_after(), SINCE + 604_800);
    // The other domain is untouched.
    assert_eq!(site(&sites, "example.org").id, old_id);

    let at = |now| records(s, &Target::Unspecified, None, None, now);
    let early = at(SINCE + 604_799);
    assert!(early.txt.contains(&s.id), "{}", early.txt);
    let status = early.retire.expect("status");
    assert_eq!(
        (
            status.since.as_str(),
            status.safe_after.as_str(),
            status.safe_now
        ),
        ("2027-01-15T08:00:00Z", "2027-01-22T08:00:00Z", false)
    );
    assert!(at(SINCE + 604_800).retire.expect("status").safe_now);
    assert!(
        records(
            site(&sites, "example.org"),
            &Target::Unspecified,
            None,
            None,
            SINCE
        )
        .retire
        .is_none()
    );

    // Removing the file undoes it: the policy and its id are back.
    std::fs::remove_file(dir.0.join("example.com.retire")).expect("rm");
    let undone = Sites::load_dir(&dir.0).expect("sites");
    assert_eq!(site(&undone, "example.com").id, old_id);
}

#[test]
fn the_wait_is_never_shorter_than_the_policy_and_never_longer_than_the_rfc_cap() {
    let dir = Dir::new("wait");
    dir.write("a.example.txt", POLICY);
    dir.write(
        "a.example.retire",
        "since = \"2027-01-15T08:00:00Z\"\nprevious_max_age = 3600\nmax_age = 600\n",
    );
    dir.write("b.example.txt", POLICY);
    dir.write(
        "b.example.retire",
        "since = \"2027-01-15T08:00:00Z\"\nprevious_max_age = 99999999\n",
    );
    let sites = Sites::load_dir(&dir.0).expect("sites");
    assert!(sites.problems.is_empty(), "{:?}", sites.problems);
    let a = site(&sites, "a.example");
    assert_eq!(a.retiring.expect("retiring").previous_max_age, 604_800);
    assert_eq!(a.policy.max_age, 600);
    let b = site(&sites, "b.example").retiring.expect("retiring");
    assert_eq!(b.previous_max_age, mtasts_core::policy::MAX_MAX_AGE);
}

#[test]
fn bad_retire_files_are_reported_and_the_policy_served_as_before() {
    let dir = Dir::new("bad");
    for (d, retire) in [
        ("a.example", "since = \"yesterday\"\n"),
        (
            "b.example",
            "since = \"2027-01-15T08:00:00Z\"\nmax_age = 0\n",
        ),
        (
            "c.example",
            "since = \"2027-01-15T08:00:00Z\"\nmode = \"none\"\n",
        ),
        ("d.example", "previous_max_age = 1\n"),
    ] {
        dir.write(&format!("{d}.txt"), POLICY);
        dir.write(&format!("{d}.retire"), retire);
    }
    // No policy to take the wait from.
    dir.write("e.example.retire", "since = \"2027-01-15T08:00:00Z\"\n");
    let sites = Sites::load_dir(&dir.0).expect("sites");
    let problems: Vec<String> = sites.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 5, "{problems:#?}");
    let has = |domain: &str, text: &str| {
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("domain {domain}")) && p.contains(text)),
            "{domain}: {text}: {problems:#?}"
        );
    };
    has("a.example", "since = \"yesterday\": not an RFC 3339");
    has("b.example", "max_age = 0: must be 1 to 31557600");
    has("c.example", "unknown field `mode`");
    has("d.example", "missing field `since`");
    has("e.example", "previous_max_age is required");
    for d in ["a.example", "b.example", "c.example", "d.example"] {
        let s = site(&sites, d);
        assert_eq!((s.policy.mode, s.retiring), (Mode::Enforce, None), "{d}");
    }
    assert!(sites.for_host("mta-sts.e.example").is_none());
}

#[test]
fn sites_file_retire_entries_apply_over_templates_and_directory() {
    let dir = Dir::new("config");
    let policies = dir.0.join("policies");
    std::fs::create_dir_all(&policies).expect("dir");
    std::fs::write(policies.join("own.example.txt"), POLICY).expect("policy");
    dir.write(
        "sites.toml",
        r#"
[[template]]
name = "customers"
policy = """
version: STSv1
mode: enforce
mx: mx.{domain}.cust.provider.example
max_age: 1209600
"""
domains = ["stays.example", "leaves.example"]

[[retire]]
domain = "leaves.example"
since = "2027-01-15T08:00:00Z"

[[retire]]
domain = "own.example"
since = "2027-01-15T08:00:00Z"

# Already removed from the customer list: the wait must be given.
[[retire]]
domain = "gone.example"
since = "2027-01-15T08:00:00Z"
previous_max_age = 86400

[[retire]]
domain = "leaves.example"
since = "2027-02-01T00:00:00Z"
"#,
    );
    let sites = Sites::load(Some(&policies), Some(&dir.0.join("sites.toml"))).expect("sites");
    let problems: Vec<String> = sites.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("a second definition of leaves.example"),
        "{problems:#?}"
    );
    assert_eq!(site(&sites, "stays.example").policy.mode, Mode::Enforce);
    let leaves = site(&sites, "leaves.example");
    assert_eq!(
        std::str::from_utf8(&leaves.body).expect("utf-8"),
        "version: STSv1\nmode: none\nmx: mx.leaves.example.cust.provider.example\nmax_age: 86400\n"
    );
    let r = leaves.retiring.expect("retiring");
    assert_eq!(
        (r.since, r.previous_max_age),
        (SINCE, 1_209_600),
        "the first entry wins"
    );
    assert_eq!(
        site(&sites, "own.example")
            .retiring
            .expect("retiring")
            .previous_max_age,
        604_800
    );
    let gone = site(&sites, "gone.example");
    assert_eq!(
        std::str::from_utf8(&gone.body).expect("utf-8"),
        "version: STSv1\nmode: none\nmax_age: 86400\n"
    );
    assert_eq!(
        gone.retiring.expect("retiring").safe_after(),
        SINCE + 86_400
    );
}
