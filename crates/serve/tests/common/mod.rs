//! Shared by the serve tests: a temporary directory with `policies/` and `certs/`, and a
//! server listening with TLS on a loopback address.

#![allow(dead_code, clippy::expect_used)] // each test file uses some of it

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// A temporary directory with `policies/` and `certs/`, removed on drop.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("mtasts-serve-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("policies")).expect("dir");
        std::fs::create_dir_all(p.join("certs")).expect("dir");
        Self(p)
    }
    pub fn policies(&self) -> PathBuf {
        self.0.join("policies")
    }
    pub fn certs(&self) -> PathBuf {
        self.0.join("certs")
    }
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).expect("write");
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `server` over HTTPS on `ip` (a free port); it stops when the sender is dropped.
pub async fn listen_tls(
    server: &Arc<mtasts_serve::Server>,
    ip: IpAddr,
) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let acceptor = server.tls_acceptor().expect("tls");
    tokio::spawn(mtasts_serve::serve(
        listener,
        Some(acceptor),
        server.clone(),
        rx,
    ));
    (addr, stop)
}
