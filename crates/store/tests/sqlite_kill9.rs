//! A writer process killed with SIGKILL in the middle of writes loses no committed entry and
//! leaves the SQLite file consistent. The writer is this test binary re-executed.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use mtasts_core::cache::{CachedPolicy, TxtLookup};
use mtasts_core::{DomainName, DomainState, Policy};
use mtasts_store::{EntryMeta, SqliteStore, Store};

const ENV: &str = "MTASTS_KILL9_DB";

fn state(i: u64) -> Arc<DomainState> {
    let text = format!("version: STSv1\nmode: enforce\nmx: mx{i}.example.com\nmax_age: 86400\n");
    Arc::new(DomainState {
        policy: Some(CachedPolicy {
            policy: Policy::parse(&text).expect("policy").policy,
            id: format!("id{i}").into(),
            fetched_at: i,
        }),
        txt: Some((i, TxtLookup::Found(format!("id{i}").into()))),
        failed_fetch: None,
    })
}

fn name(i: u64) -> DomainName {
    DomainName::parse(&format!("d{i}.example")).expect("domain")
}

/// The writer: runs only when re-executed by the test below.
#[tokio::test]
#[ignore = "helper process for sqlite_survives_kill_9_mid_write"]
async fn sqlite_writer_child() {
    let Some(path) = std::env::var_os(ENV) else {
        return;
    };
    let store = SqliteStore::open(&path).await.expect("open");
    let mut out = std::io::stdout();
    for i in 0.. {
        store
            .put(
                &name(i),
                state(i),
                EntryMeta {
                    refresh_at: Some(i),
                    expires_at: u64::MAX / 2,
                },
            )
            .await
            .expect("put");
        writeln!(out, "committed {i}").expect("stdout");
        out.flush().expect("flush");
    }
}

#[tokio::test]
async fn sqlite_survives_kill_9_mid_write() {
    let dir = std::env::temp_dir().join(format!("mtasts-kill9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("cache.sqlite3");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--ignored",
            "--exact",
            "sqlite_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut committed = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("committed ") {
            let n: u64 = n.parse().expect("number");
            committed = Some(n);
            if n >= 300 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "killed by SIGKILL, not finished: {status}"
    );
    let last = committed.expect("the writer committed entries");

    let store = SqliteStore::open(&path)
        .await
        .expect("reopen after kill -9");
    store.integrity_check().await.expect("consistent file");
    for i in 0..=last {
        let got = store
            .get(&name(i))
            .await
            .expect("decodes")
            .expect("committed entry present");
        assert_eq!(*got, *state(i), "entry {i}");
    }
    let count = store.count().await.expect("count");
    assert!(
        count > last,
        "{count} entries, {last} reported committed (one more may have landed)"
    );
    println!("writer killed after {last} reported commits; {count} entries intact");
    let _ = std::fs::remove_dir_all(dir);
}
