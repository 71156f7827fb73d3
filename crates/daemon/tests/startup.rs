//! A bad disk never keeps the daemon from starting (a daemon that is down makes Postfix defer
//! every delivery): an unreadable cache file is moved aside, an unopenable one leaves the
//! daemon on its memory tier while it is tried again (resolver/tests/txt_and_cache.rs shows
//! the entries reaching it once it opens). Both are counted.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_daemon::{Config, Daemon, ListenAddr, Options};
use mtasts_store::CacheSpec;

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mtasts-startup-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

/// Starts whose cache could not be used as it was.
fn fallbacks(daemon: &Daemon) -> u64 {
    daemon.server().counters().store_fallbacks.get()
}

fn config(cache: std::path::PathBuf) -> Config {
    Config {
        listen: vec![ListenAddr::Tcp(([127, 0, 0, 1], 0).into())],
        cache: CacheSpec::Sqlite(Some(cache)),
        nameserver: Some(([127, 0, 0, 1], 9).into()),
        ..Config::default()
    }
}

#[tokio::test]
async fn an_unreadable_cache_file_is_moved_aside_and_a_fresh_one_used() {
    let d = dir("corrupt");
    let file = d.join("cache.sqlite3");
    std::fs::write(
        &file,
        b"this is not an SQLite database, just bytes on a bad day\n",
    )
    .expect("write");
    let daemon = Daemon::from_config(config(file.clone()), Options::default())
        .await
        .expect("starts anyway");
    let aside: Vec<_> = std::fs::read_dir(&d)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("cache.sqlite3.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the old file is kept, aside");
    assert_eq!(
        std::fs::read(aside[0].path()).expect("read"),
        b"this is not an SQLite database, just bytes on a bad day\n"
    );
    mtasts_store::SqliteStore::open(&file)
        .await
        .expect("a fresh database in its place");
    assert_eq!(fallbacks(&daemon), 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn an_unopenable_cache_leaves_the_daemon_on_its_memory_tier() {
    let d = dir("unopenable");
    // Its directory would have to be a regular file.
    let blocker = d.join("not-a-dir");
    std::fs::write(&blocker, b"").expect("write");
    let daemon = Daemon::from_config(config(blocker.join("cache.sqlite3")), Options::default())
        .await
        .expect("starts on memory");
    assert_eq!(fallbacks(&daemon), 1);
    assert_eq!(daemon.listening().len(), 1, "bound and ready to serve");
    assert!(
        matches!(
            daemon.server().resolver().backing(),
            Some(mtasts_store::AnyStore::ReopeningSqlite(_))
        ),
        "the cache is tried again, not given up"
    );
    let _ = std::fs::remove_dir_all(&d);
}
