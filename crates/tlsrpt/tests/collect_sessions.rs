//! The sending side's collector over a real unix datagram socket: datagrams as libtlsrpt
//! writes them (Postfix ≥ 3.10) are counted into the store under the UTC day, equal to the
//! aggregation of the same sessions in memory; a bad datagram is refused and counted, and the
//! next one still counted.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtasts_core::session::{DomainDay, parse_datagram};
use mtasts_tlsrpt::collect::{CollectCounts, bind, collect, utc_day};
use mtasts_tlsrpt::{DbSpec, ReportDb};

const FAILURE: &str = r#"{"dpv": "1","d": "company-y.example","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example","policies":[{"policy-type":2,"policy-domain": "company-y.example","policy-string":["version: STSv1","mode: enforce","mx: *.mail.company-y.example","max_age: 86400"],"mx-host":["*.mail.company-y.example"],"failure-details":[{"c":204,"s": "192.0.2.1","n": "mx1.mail.company-y.example","r": "198.51.100.7"}],"t":1,"f":1}]}"#;
const SUCCESS: &str = r#"{"dpv": "1","d": "company-y.example","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example","policies":[{"policy-type":2,"policy-domain": "company-y.example","policy-string":["version: STSv1","mode: enforce","mx: *.mail.company-y.example","max_age: 86400"],"mx-host":["*.mail.company-y.example"],"t":0,"f":0}]}"#;
const OTHER: &str = r#"{"dpv": "1","d": "other.example","pr": "v=TLSRPTv1; rua=https://r.other.example/","policies":[{"policy-type":9,"t":0,"f":0}]}"#;

#[test]
fn utc_days() {
    assert_eq!(utc_day(1_800_000_000), "2027-01-15");
    assert_eq!(utc_day(0), "1970-01-01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_over_the_socket_are_counted_by_day_domain_and_policy() {
    let dir = std::env::temp_dir().join(format!("mtasts-collect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let socket_path = dir.join("tlsrpt.sock");
    let db = Arc::new(Mutex::new(
        ReportDb::open(&DbSpec::Sqlite(dir.join("sessions.db"))).expect("db"),
    ));
    let counts = Arc::new(CollectCounts::default());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(collect(
        bind(&socket_path).expect("bind"),
        db.clone(),
        counts.clone(),
        None,
        rx,
    ));

    let sent = [
        SUCCESS, FAILURE, SUCCESS, "not json", FAILURE, OTHER, SUCCESS,
    ];
    let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
    for d in sent {
        client.send_to(d.as_bytes(), &socket_path).expect("send");
    }
    let start = Instant::now();
    while counts.sessions.load(Ordering::Relaxed) + counts.refused.load(Ordering::Relaxed) < 7 {
        assert!(start.elapsed() < Duration::from_secs(10), "{counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counts.sessions.load(Ordering::Relaxed), 6);
    assert_eq!(counts.refused.load(Ordering::Relaxed), 1);

    // What the store holds for today equals the same sessions aggregated in memory.
    let mut want = std::collections::BTreeMap::<(String, String), DomainDay>::new();
    for d in sent {
        if let Ok(s) = parse_datagram(d.as_bytes()) {
            want.entry((s.domain.to_string(), s.tlsrpt_record.clone()))
                .or_default()
                .add(&s);
        }
    }
    let day = utc_day(mtasts_tlsrpt::unix_now());
    let got = db.lock().expect("db").session_day(&day).expect("day");
    assert_eq!(got, want);
    let company = &got[&(
        "company-y.example".to_string(),
        "v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example".to_string(),
    )];
    let p = &company.policy_results()[0];
    assert_eq!((p.successful, p.failed), (3, 2));
    assert_eq!(p.failures[0].failed_session_count, 2);
    assert_eq!(p.failures[0].result_type, "certificate-expired");
    // Another day is empty.
    assert!(
        db.lock()
            .expect("db")
            .session_day("2020-01-01")
            .expect("day")
            .is_empty()
    );

    let _ = stop.send(true);
    let _ = task.await;
    let _ = std::fs::remove_dir_all(&dir);
}
