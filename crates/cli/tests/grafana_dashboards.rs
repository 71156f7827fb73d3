//! The Grafana dashboards in `dist/grafana/` use only metrics the code exports: each one's
//! queries are checked against what a running `mtasts daemon`, `mtasts serve` and
//! `mtasts tlsrpt dashboard` print at `/metrics` (every family is printed, with its
//! `# TYPE` line, even before its first sample).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `GET /metrics` on 127.0.0.1:`port`, retried until the server is up (at most 20 s).
fn scrape(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(body) =
            common::http_get(port, "/metrics").filter(|b| b.starts_with("HTTP/1.1 200"))
        {
            return body;
        }
        assert!(Instant::now() < deadline, "no metrics on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sample names a scrape offers: each `# TYPE` family, histograms with their series.
fn exported(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let (Some(name), Some(kind)) = (w.next(), w.next()) else {
            continue;
        };
        out.insert(name.to_string());
        if kind == "histogram" {
            for s in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{name}{s}"));
            }
        }
    }
    out
}

/// Every metric name in the dashboard's queries, and checks on its shape.
fn used(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("dashboard");
    let v: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let panels = v["panels"].as_array().expect("panels");
    assert!(
        panels.len() >= 5,
        "{}: {} panels",
        path.display(),
        panels.len()
    );
    let mut ids = BTreeSet::new();
    let mut names = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().expect("x"), g["w"].as_u64().expect("w"));
        assert!(x + w <= 24, "{} overflows the grid", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}");
            let expr = t["expr"].as_str().expect("expr");
            assert!(
                expr.contains("$instance"),
                "{expr}: not filtered by instance"
            );
            let bytes = expr.as_bytes();
            let mut i = 0;
            while let Some(at) = expr[i..].find("mtasts_") {
                let start = i + at;
                let end = expr[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(expr.len(), |n| start + n);
                let word_start = start == 0
                    || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
                if word_start {
                    names.insert(expr[start..end].to_string());
                }
                i = end;
            }
        }
    }
    let templating = v["templating"]["list"].as_array().expect("templating");
    for t in templating {
        if let Some(def) = t["definition"].as_str() {
            for name in def.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if name.starts_with("mtasts_") {
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

fn check(dashboard: &str, metrics: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dist/grafana")
        .join(dashboard);
    let exported = exported(metrics);
    let used = used(&path);
    assert!(!used.is_empty());
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "{dashboard} uses metrics the code does not export: {missing:?}\nexported: {exported:?}"
    );
    let unused: Vec<&String> = exported
        .iter()
        .filter(|e| {
            !used.contains(*e)
                && !e.ends_with("_bucket")
                && !e.ends_with("_sum")
                && !e.ends_with("_count")
        })
        .collect();
    println!(
        "{dashboard}: {} metrics used; exported but not shown: {unused:?}",
        used.len()
    );
}

#[test]
fn every_dashboard_panel_uses_exported_metrics() {
    let dir = std::env::temp_dir().join(format!("mtasts-grafana-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies")).expect("dir");
    std::fs::write(
        dir.join("policies/example.net.txt"),
        "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 86400\n",
    )
    .expect("policy");
    let exe = env!("CARGO_BIN_EXE_mtasts");
    let spawn = |args: &[&str]| {
        common::Proc(
            Command::new(exe)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn"),
        )
    };

    let port = common::free_port();
    let _daemon = spawn(&[
        "daemon",
        "--listen",
        "127.0.0.1:0",
        "--cache",
        "memory",
        "--nameserver",
        "127.0.0.1:9",
        "--metrics-listen",
        &format!("127.0.0.1:{port}"),
    ]);
    check("mtasts-daemon.json", &scrape(port));

    let port = common::free_port();
    let policies = dir.join("policies");
    let _serve = spawn(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", common::free_port()),
        "--plain-http",
        "--policies",
        policies.to_str().expect("path"),
        "--metrics-listen",
        &format!("127.0.0.1:{port}"),
    ]);
    check("mtasts-serve.json", &scrape(port));

    let port = common::free_port();
    let db = format!("sqlite:{}", dir.join("tlsrpt.sqlite3").display());
    let _dashboard = spawn(&[
        "tlsrpt",
        "dashboard",
        "--db",
        &db,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    check("mtasts-tlsrpt.json", &scrape(port));

    let _ = std::fs::remove_dir_all(&dir);
}
