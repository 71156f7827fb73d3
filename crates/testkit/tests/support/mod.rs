//! Minimal raw clients, so the testkit's tests see exactly what goes over the wire.

#![allow(dead_code, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;

pub async fn dns(addr: SocketAddr, name: &str, rtype: RecordType, tcp: bool) -> Option<Message> {
    dns_with(addr, name, rtype, tcp, false).await
}

/// With `dnssec_ok`, the query carries EDNS with the DO bit (asks for DNSSEC status).
pub async fn dns_with(
    addr: SocketAddr,
    name: &str,
    rtype: RecordType,
    tcp: bool,
    dnssec_ok: bool,
) -> Option<Message> {
    let mut q = Message::new();
    q.set_id(4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    if dnssec_ok {
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_dnssec_ok(true);
        q.set_edns(edns);
    }
    let bytes = q.to_vec().expect("encode");
    let fut = async {
        if tcp {
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_u16(u16::try_from(bytes.len()).ok()?).await.ok()?;
            s.write_all(&bytes).await.ok()?;
            let len = s.read_u16().await.ok()?;
            let mut buf = vec![0u8; usize::from(len)];
            s.read_exact(&mut buf).await.ok()?;
            Message::from_vec(&buf).ok()
        } else {
            let s = UdpSocket::bind("127.0.0.1:0").await.ok()?;
            s.send_to(&bytes, addr).await.ok()?;
            let mut buf = vec![0u8; 4096];
            let n = s.recv(&mut buf).await.ok()?;
            Message::from_vec(&buf[..n]).ok()
        }
    };
    // Generous for a loaded machine; only the never-answering fault waits it out.
    tokio::time::timeout(Duration::from_secs(3), fut)
        .await
        .ok()
        .flatten()
}

pub fn txt_strings(m: &Message) -> Vec<Vec<String>> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            hickory_proto::rr::RData::TXT(t) => Some(
                t.txt_data()
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

pub fn client_config(
    ca_der: rustls::pki_types::CertificateDer<'static>,
    sni: bool,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca_der).expect("add root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_sni = sni;
    Arc::new(config)
}

/// TLS to `addr` verifying `name`; SNI sent only if `sni`. Ok(()) when the chain verified.
pub async fn tls_verify<S>(
    stream: S,
    config: Arc<ClientConfig>,
    name: &str,
) -> Result<tokio_rustls::client::TlsStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    TlsConnector::from(config)
        .connect(server_name, stream)
        .await
        .map_err(|e| e.to_string())
}

/// Reads one SMTP reply (all continuation lines).
pub async fn smtp_reply<R: tokio::io::AsyncRead + Unpin>(r: &mut BufReader<R>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return all;
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

pub async fn smtp_cmd<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    cmd: &str,
) -> String {
    s.get_mut()
        .write_all(format!("{cmd}\r\n").as_bytes())
        .await
        .expect("write");
    smtp_reply(s).await
}
