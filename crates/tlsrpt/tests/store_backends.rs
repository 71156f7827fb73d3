//! The report store behaves the same on SQLite and on a real PostgreSQL (started here by
//! `initdb`): reports stored once per (organisation, report-id), also when several writers
//! race for the same report; messages kept aside; summaries filtered by domain and time; and
//! several processes opening a fresh database at once.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::sync::{Arc, Barrier};

use mtasts_testkit::PostgresServer;
use mtasts_tlsrpt::{DbSpec, Filter, ReportDb, Stored, receive};

fn report(id: &str, domain: &str, end: &str, ok: u64, failed: u64) -> Vec<u8> {
    format!(
        r#"{{"organization-name":"Example Inc.","contact-info":"tlsrpt@example.net","report-id":"{id}",
"date-range":{{"start-datetime":"2026-11-29T00:00:00Z","end-datetime":"{end}"}},
"policies":[{{"policy":{{"policy-type":"sts","policy-domain":"{domain}"}},
"summary":{{"total-successful-session-count":{ok},"total-failure-session-count":{failed}}},
"failure-details":[{{"result-type":"certificate-expired","receiving-mx-hostname":"mx.{domain}","failed-session-count":{failed}}}]}}]}}"#
    )
    .into_bytes()
}

/// Sending side: sessions counted per day, domain, record and policy, read back as the
/// in-memory aggregation of the same sessions.
fn counts_sessions(db: &mut ReportDb) {
    use mtasts_core::session::{DomainDay, parse_datagram};
    let failure = r#"{"dpv": "1","d": "example.com","pr": "v=TLSRPTv1; rua=mailto:r@example.com","policies":[{"policy-type":2,"policy-domain": "example.com","policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"],"mx-host":["mx.example.com"],"failure-details":[{"c":202,"s": "192.0.2.1","n": "mx.example.com"}],"t":1,"f":1}]}"#;
    let success = failure.replace(
        r#""failure-details":[{"c":202,"s": "192.0.2.1","n": "mx.example.com"}],"t":1,"f":1"#,
        r#""t":0,"f":0"#,
    );
    let sessions: Vec<_> = [failure, &success, &success, failure]
        .iter()
        .map(|d| parse_datagram(d.as_bytes()).expect("datagram"))
        .collect();
    let mut want = DomainDay::default();
    for s in &sessions {
        db.add_session("2026-11-30", s).expect("add");
        want.add(s);
    }
    db.add_session("2026-12-01", &sessions[0]).expect("add");
    let day = db.session_day("2026-11-30").expect("day");
    assert_eq!(day.len(), 1);
    let got = &day[&(
        "example.com".to_string(),
        "v=TLSRPTv1; rua=mailto:r@example.com".to_string(),
    )];
    assert_eq!(got, &want);
    let p = &got.policy_results()[0];
    assert_eq!(
        (p.successful, p.failed, p.failures[0].failed_session_count),
        (2, 2, 2)
    );
    let next = db.session_day("2026-12-01").expect("day");
    assert_eq!(
        next.values().next().map(|d| d.policy_results()[0].failed),
        Some(1)
    );
}

/// Built reports are stored once, with a delivery per URI that is due, updated, and then
/// no longer due.
fn keeps_outgoing_reports(db: &mut ReportDb) {
    use mtasts_tlsrpt::{DeliveryState, NewOutgoing};
    assert_eq!(
        db.session_days().expect("days"),
        ["2026-11-30", "2026-12-01"]
    );
    let rua = [
        "https://r.example/".to_string(),
        "mailto:r@example.com".to_string(),
    ];
    let new = NewOutgoing {
        day: "2026-11-30",
        domain: "example.com",
        tlsrpt_record: "v=TLSRPTv1; rua=mailto:r@example.com",
        report_id: "id-1@sender.example",
        filename: "f.json.gz",
        json: b"{}",
        created_at: 1000,
        rua: &rua,
        due: 1000,
    };
    assert!(db.add_outgoing(&new).expect("add"));
    assert!(
        !db.add_outgoing(&NewOutgoing {
            report_id: "other",
            ..new
        })
        .expect("again")
    );
    assert_eq!(
        db.outgoing_keys("2026-11-30").expect("keys"),
        [("example.com".to_string(), new.tlsrpt_record.to_string())]
    );
    assert!(db.due_deliveries(999).expect("due").is_empty());
    let due = db.due_deliveries(1000).expect("due");
    assert_eq!(due.len(), 2);
    assert_eq!(
        (due[0].report_id.as_str(), due[0].json.as_slice()),
        ("id-1@sender.example", &b"{}"[..])
    );
    let mut d = due[0].clone();
    d.state = DeliveryState::Delivered;
    d.attempts = 1;
    d.first_attempt = Some(1000);
    db.update_delivery(&d).expect("update");
    let mut d = due[1].clone();
    d.attempts = 1;
    d.first_attempt = Some(1000);
    d.next_attempt = 1300;
    d.last_error = Some("refused".into());
    db.update_delivery(&d).expect("update");
    assert!(db.due_deliveries(1299).expect("due").is_empty());
    let again = db.due_deliveries(1300).expect("due");
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].attempts, again[0].last_error.as_deref()),
        (1, Some("refused"))
    );
    let all = db.deliveries_since("2026-11-30").expect("all");
    assert_eq!(
        all.iter().map(|d| d.state).collect::<Vec<_>>(),
        [DeliveryState::Delivered, DeliveryState::Pending]
    );
}

/// The same checks on any backend.
fn behaves(spec: &DbSpec) {
    let mut db = ReportDb::open(spec).expect("open");
    counts_sessions(&mut db);
    keeps_outgoing_reports(&mut db);
    let r1 = receive(&report(
        "r-1",
        "example.com",
        "2026-11-30T00:00:00Z",
        90,
        10,
    ))
    .expect("r1");
    let r2 = receive(&report("r-2", "example.org", "2026-11-01T00:00:00Z", 5, 0)).expect("r2");
    assert!(matches!(db.store(&r1, "test", 1), Ok(Stored::New(_))));
    assert!(matches!(db.store(&r1, "test", 2), Ok(Stored::Duplicate)));
    assert!(matches!(db.store(&r2, "test", 3), Ok(Stored::New(_))));
    assert_eq!(db.count().expect("count"), 2);

    let all = db.summary(&Filter::default()).expect("summary");
    assert_eq!(all.len(), 2);
    let com = &all[&(Some("example.com".into()), "sts".into())];
    assert_eq!((com.successful, com.failed, com.reports), (90, 10, 1));
    assert_eq!(com.failures_by_type.get("certificate-expired"), Some(&10));
    let only = db
        .summary(&Filter {
            domain: Some("example.org".into()),
            since: None,
        })
        .expect("summary");
    assert_eq!(only.len(), 1);
    // 2026-11-15T00:00:00Z: only the report ending on the 30th.
    let recent = db
        .summary(&Filter {
            domain: None,
            since: Some(1_794_700_800),
        })
        .expect("summary");
    assert_eq!(recent.keys().collect::<Vec<_>>().len(), 1);
    assert!(recent.contains_key(&(Some("example.com".into()), "sts".into())));

    db.store_ignored(
        b"raw message",
        Some("forger.example"),
        "RCV-01: unsigned",
        10,
    )
    .expect("ignored");
    db.store_ignored(b"\x00\xffbinary", None, "not MIME", 20)
        .expect("ignored");
    let ignored = db.ignored(Some(15)).expect("ignored");
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0].reason, "not MIME");
    assert_eq!(ignored[0].reporting_domain, None);
    assert_eq!(db.ignored(None).expect("ignored").len(), 2);

    // Reopening finds what was stored (the schema is created only once).
    drop(db);
    let mut again = ReportDb::open(spec).expect("reopen");
    assert_eq!(again.count().expect("count"), 2);
}

/// Eight writers store the same report at once: exactly one stores it.
fn racing_writers_store_a_report_once(spec: &DbSpec) {
    let writers = 8;
    let barrier = Arc::new(Barrier::new(writers));
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let spec = spec.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut db = ReportDb::open(&spec).expect("open");
                let r = receive(&report("race", "example.com", "2026-11-30T00:00:00Z", 1, 0))
                    .expect("report");
                barrier.wait();
                db.store(&r, "race", 1).expect("store")
            })
        })
        .collect();
    let new = handles
        .into_iter()
        .map(|h| h.join().expect("writer"))
        .filter(|s| matches!(s, Stored::New(_)))
        .count();
    assert_eq!(new, 1);
    assert_eq!(
        ReportDb::open(spec).expect("open").count().expect("count"),
        1
    );
}

#[test]
fn sqlite() {
    let path = std::env::temp_dir().join(format!("mtasts-store-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    behaves(&DbSpec::Sqlite(path.clone()));
    let _ = std::fs::remove_file(&path);
    racing_writers_store_a_report_once(&DbSpec::Sqlite(path.clone()));
    let _ = std::fs::remove_file(&path);
}

#[cfg_attr(
    not(mtasts_run_postgres),
    ignore = "needs PostgreSQL's server programs (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn postgres() {
    let server = PostgresServer::start().expect("PostgreSQL");
    let spec: DbSpec = server.url().parse().expect("spec");
    behaves(&spec);
    // A fresh database, opened by eight connections at once: the schema lock keeps their
    // CREATE TABLEs apart, and the unique key their inserts.
    let fresh = create_database(&server, "race");
    racing_writers_store_a_report_once(&fresh);
}

/// A new empty database on `server`, through psql (the server's own client).
fn create_database(server: &PostgresServer, name: &str) -> DbSpec {
    let bin = mtasts_prereq::postgres_bin_dir().expect("PostgreSQL programs");
    let psql = bin.join("psql");
    let out = std::process::Command::new(&psql)
        .args([&server.url(), "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.url_for(name).parse().expect("spec")
}
