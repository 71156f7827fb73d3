//! mtasts' TLS-RPT sending side against independent software from PyPI (installed by
//! `.ci/peers.sh`): the same libtlsrpt datagrams go to our collector and to tlsrpt-reporter's
//! `tlsrpt-collectd`, which must count the same sessions, failures and failure codes per
//! domain; and parsedmarc must read every report we send, as mail and as the JSON file,
//! finding the counts that went in.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ReportDir as Dir;
use common::terminate;
use mtasts_testkit::World;
use mtasts_testkit::smtp::SmtpHost;
use serde_json::Value;

const SUBMISSION: &str = "smtp.sender.example";
const RECORD: &str = "v=TLSRPTv1; rua=mailto:tlsrpt@receiver.test";

fn venv() -> PathBuf {
    std::env::var_os("MTASTS_PEERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peers-venv"))
}

fn peers_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/tlsrpt_peers.py")
}

fn peer(args: &[&str]) -> Value {
    let o = Command::new(venv().join("bin/python3"))
        .arg(peers_script())
        .args(args)
        .output()
        .expect("the peers venv (bash .ci/peers.sh)");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("peer JSON")
}

const STS: &str = r#""policy-type":2,"policy-domain":"DOMAIN","policy-string":["version: STSv1","mode: enforce","mx: mx.DOMAIN","max_age: 86400"],"mx-host":["mx.DOMAIN"]"#;
const TLSA: &str = r#""policy-type":1,"policy-domain":"mx.DOMAIN","policy-string":["3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"]"#;
const NONE: &str = r#""policy-type":9,"policy-domain":"DOMAIN""#;

/// A libtlsrpt datagram: `policy` for `domain`, failing with `codes` (none: success).
fn datagram(domain: &str, policy: &str, codes: &[u32]) -> String {
    let details: Vec<String> = codes
        .iter()
        .map(|c| {
            format!(
                r#"{{"c":{c},"s":"192.0.2.1","n":"mx.{domain}","h":"mx.{domain}","r":"2001:db8::25","f":"reason-{c}"}}"#
            )
        })
        .collect();
    let policy = policy.replace("DOMAIN", domain);
    format!(
        r#"{{"dpv":"1","d":"{domain}","pr":"{RECORD}","policies":[{{{policy},"failure-details":[{}],"t":{},"f":{}}}]}}"#,
        details.join(","),
        codes.len(),
        u8::from(!codes.is_empty())
    )
}

/// The datagrams: two domains, every policy type, several failure codes, one session failing
/// with two details.
fn datagrams() -> Vec<String> {
    let mut d = Vec::new();
    for _ in 0..6 {
        d.push(datagram("receiver.test", STS, &[]));
    }
    d.push(datagram("receiver.test", STS, &[202]));
    d.push(datagram("receiver.test", STS, &[202]));
    d.push(datagram("receiver.test", STS, &[201]));
    d.push(datagram("receiver.test", STS, &[203, 205]));
    d.push(datagram("other.test", TLSA, &[]));
    d.push(datagram("other.test", TLSA, &[304]));
    d.push(datagram("other.test", NONE, &[]));
    d.push(datagram("other.test", NONE, &[201]));
    d
}

fn wait_for_socket(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Per domain: (sessions, failed sessions, failure details by code), from our store.
fn our_counts(db: &str, day: &str) -> BTreeMap<String, (u64, u64, BTreeMap<String, u64>)> {
    let spec: mtasts_tlsrpt::DbSpec = db.parse().expect("spec");
    let mut out: BTreeMap<String, (u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let days = mtasts_tlsrpt::ReportDb::open(&spec)
        .and_then(|mut s| s.session_day(day))
        .expect("store");
    for ((domain, _), counts) in days {
        let e = out.entry(domain).or_default();
        for p in counts.policy_results() {
            e.0 += p.successful + p.failed;
            e.1 += p.failed;
            for f in &p.failures {
                let code = mtasts_core::session::RESULT_CODES
                    .iter()
                    .find(|(_, t)| *t == f.result_type)
                    .map(|(c, _)| c.to_string())
                    .expect("a libtlsrpt code");
                *e.2.entry(code).or_default() += f.failed_session_count;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mtasts_run_peers),
    ignore = "needs the PyPI peers (bash .ci/peers.sh)"
)]
async fn tlsrpt_reporter_counts_the_same_datagrams_as_we_do_and_parsedmarc_reads_our_reports() {
    let dir = Dir::new("peers");
    let datagrams = datagrams();

    // Both collectors, the same datagrams.
    let ours = dir.0.join("ours.sock");
    let theirs = dir.0.join("theirs.sock");
    let db = dir.db();
    let (our_collector, _) = common::spawn_ready(
        Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .args(["tlsrpt", "collect", "--db", &db, "--socket"])
            .arg(&ours),
        "mtasts tlsrpt collect ready on ",
    );
    let their_db = dir.0.join("collectd.sqlite");
    let mut their_collector = Command::new(venv().join("bin/tlsrpt-collectd"))
        .arg("--storage")
        .arg(format!("sqlite://{}", their_db.display()))
        .arg("--socketname")
        .arg(&theirs)
        .args(["--sockettimeout", "1", "--log_level", "warn"])
        .arg("--logfilename")
        .arg(dir.0.join("collectd.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tlsrpt-collectd");
    wait_for_socket(&theirs);
    let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
    for d in &datagrams {
        client.send_to(d.as_bytes(), &ours).expect("send ours");
        client.send_to(d.as_bytes(), &theirs).expect("send theirs");
    }
    let day = mtasts_tlsrpt::collect::utc_day(mtasts_tlsrpt::unix_now());
    let start = Instant::now();
    let ours_counted = loop {
        let c = our_counts(&db, &day);
        if c.values().map(|v| v.0).sum::<u64>() == datagrams.len() as u64 {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ours counted {c:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    terminate(our_collector);
    // tlsrpt-collectd commits on SIGTERM.
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-TERM", &their_collector.id().to_string()])
        .status();
    assert_eq!(their_collector.wait().expect("collectd").code(), Some(0));
    let theirs_counted = peer(&["collectd-counts", &their_db.display().to_string()]);
    for (domain, (sessions, failed, codes)) in &ours_counted {
        let t = &theirs_counted[domain];
        assert_eq!(
            t["sessions"].as_u64(),
            Some(*sessions),
            "{domain}: {theirs_counted}"
        );
        assert_eq!(
            t["failed"].as_u64(),
            Some(*failed),
            "{domain}: {theirs_counted}"
        );
        let their_codes: BTreeMap<String, u64> =
            serde_json::from_value(t["codes"].clone()).expect("codes");
        assert_eq!(&their_codes, codes, "{domain}");
    }
    assert_eq!(
        theirs_counted.as_object().map(|o| o.len()),
        Some(ours_counted.len())
    );
    // What went in, stated: 10 and 4 sessions; 4 and 2 failed.
    assert_eq!(ours_counted["receiver.test"].0, 10);
    assert_eq!(ours_counted["receiver.test"].1, 4);
    assert_eq!(ours_counted["other.test"].1, 2);

    // Our reports, by mail through the lab's SMTP server, read by parsedmarc.
    let public = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dkim-test-rsa.p.txt"
    ))
    .expect("fixture");
    let world = World::builder()
        .txt(
            "rsa._domainkey.sender.example",
            &format!("v=DKIM1; k=rsa; s=tlsrpt; p={}", public.trim()),
        )
        .a("unused.receiver.test", Ipv4Addr::LOCALHOST)
        .smtp(SUBMISSION, SmtpHost::valid())
        .build()
        .await
        .expect("world");
    let config = dir.0.join("send.toml");
    std::fs::write(
        &config,
        format!(
            "organization = \"Sender Example\"\ncontact = \"tlsrpt@sender.example\"\n\
             [mail]\nserver = \"{}\"\nserver_name = \"{SUBMISSION}\"\nca_file = \"{}\"\n\
             [dkim]\nselector = \"rsa\"\nkey_file = \"{}\"\n",
            world.smtp_addr(SUBMISSION).expect("smtp"),
            world.ca_file().display(),
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/dkim-test-rsa.key.pem"
            ),
        ),
    )
    .expect("config");
    let now = mtasts_core::session::day_start(&day).expect("day") + 86_400 + 5 * 3600;
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "send", "--db", &db, "--config"])
        .arg(&config)
        .args(["--nameserver", &world.dns_addr().to_string()])
        .args(["--now", &now.to_string()])
        .output()
        .expect("send");
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let mails = world.deliveries(SUBMISSION);
    assert_eq!(mails.len(), 2, "one report per policy domain: {out}");
    let mut files = Vec::new();
    for (i, m) in mails.iter().enumerate() {
        let eml = dir.0.join(format!("report-{i}.eml"));
        std::fs::write(&eml, &m.data).expect("eml");
        files.push(eml.display().to_string());
        // The attachment alone, as a file (what an HTTPS rua receives).
        let mail = mtasts_tlsrpt::report_from_message(&m.data).expect("report part");
        let gz = dir.0.join(format!("report-{i}.json.gz"));
        std::fs::write(&gz, &mail.report).expect("gz");
        files.push(gz.display().to_string());
    }
    let mut args = vec!["parsedmarc"];
    args.extend(files.iter().map(String::as_str));
    let read = peer(&args);
    let reports = read.as_array().expect("reports");
    assert_eq!(reports.len(), 4);
    for r in reports {
        assert_eq!(r["organization_name"], "Sender Example", "{r}");
        assert_eq!(r["contact_info"], "tlsrpt@sender.example", "{r}");
        let policies = r["policies"].as_array().expect("policies");
        let domain = if policies.iter().any(|p| p["policy_type"] == "sts") {
            "receiver.test"
        } else {
            "other.test"
        };
        let (sessions, failed, codes) = &ours_counted[domain];
        let ok: u64 = policies
            .iter()
            .filter_map(|p| p["successful_session_count"].as_u64())
            .sum();
        let bad: u64 = policies
            .iter()
            .filter_map(|p| p["failed_session_count"].as_u64())
            .sum();
        assert_eq!((ok + bad, bad), (*sessions, *failed), "{r}");
        let details: u64 = policies
            .iter()
            .flat_map(|p| p["failure_details"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f["failed_session_count"].as_u64())
            .sum();
        assert_eq!(details, codes.values().sum::<u64>(), "{r}");
        assert!(
            r["begin_date"]
                .as_str()
                .is_some_and(|d| d.starts_with(&day)),
            "{r}"
        );
    }
}
