//! Asking the things configured whether they are there: a socketmap request, a connect to a
//! datagram socket, a TCP connect. Blocking with timeouts: doctor asks each once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a socketmap (or line) server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `inet:HOST:PORT`.
    Tcp(String),
    /// `unix:PATH`.
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "inet:{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Why a probe got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    #[error("connecting to {0}")]
    /// Nothing listens, or it refused.
    Connect(String, #[source] std::io::Error),
    #[error("talking to {0}")]
    /// It listened but did not answer in time, or hung up.
    Io(String, #[source] std::io::Error),
    #[error("{0} answered something that is not a socketmap reply: {1:?}")]
    /// The bytes were not a netstring.
    NotSocketmap(String, String),
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn connect(ep: &Endpoint, timeout: Duration) -> Result<Box<dyn Stream>, ProbeError> {
    let name = ep.to_string();
    match ep {
        Endpoint::Tcp(addr) => {
            let sa: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(addr.as_str())
                .map_err(|e| ProbeError::Connect(name.clone(), e))?
                .next()
                .ok_or_else(|| {
                    ProbeError::Connect(name.clone(), std::io::ErrorKind::NotFound.into())
                })?;
            let s = TcpStream::connect_timeout(&sa, timeout)
                .map_err(|e| ProbeError::Connect(name.clone(), e))?;
            s.set_read_timeout(Some(timeout))
                .map_err(|e| ProbeError::Io(name.clone(), e))?;
            Ok(Box::new(s))
        }
        Endpoint::Unix(path) => {
            let s = UnixStream::connect(path).map_err(|e| ProbeError::Connect(name.clone(), e))?;
            s.set_read_timeout(Some(timeout))
                .map_err(|e| ProbeError::Io(name.clone(), e))?;
            Ok(Box::new(s))
        }
    }
}

/// Sends the socketmap request `map key` and returns the reply's text (`NOTFOUND `, `OK …`).
pub fn socketmap(
    ep: &Endpoint,
    map: &str,
    key: &str,
    timeout: Duration,
) -> Result<String, ProbeError> {
    let name = ep.to_string();
    let mut s = connect(ep, timeout)?;
    let request = format!("{map} {key}");
    s.write_all(format!("{}:{request},", request.len()).as_bytes())
        .map_err(|e| ProbeError::Io(name.clone(), e))?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Length prefix, then the payload and the comma.
    loop {
        let n = s
            .read(&mut byte)
            .map_err(|e| ProbeError::Io(name.clone(), e))?;
        if n == 0 {
            return Err(ProbeError::Io(
                name,
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        if byte[0] == b':' {
            break;
        }
        buf.push(byte[0]);
        if buf.len() > 6 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let Ok(len) = text.parse::<usize>() else {
        return Err(ProbeError::NotSocketmap(name, text));
    };
    let mut payload = vec![0u8; len + 1];
    s.read_exact(&mut payload)
        .map_err(|e| ProbeError::Io(name.clone(), e))?;
    if payload.pop() != Some(b',') {
        return Err(ProbeError::NotSocketmap(
            name,
            String::from_utf8_lossy(&payload).to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&payload).to_string())
}

/// Whether something listens on `ep` (a connect, nothing sent).
pub fn listening(ep: &Endpoint, timeout: Duration) -> Result<(), ProbeError> {
    connect(ep, timeout).map(drop)
}

/// Whether a datagram socket at `path` takes datagrams (a connect, nothing sent).
pub fn datagram_socket(path: &Path) -> Result<(), ProbeError> {
    let name = format!("unix:{}", path.display());
    let s = UnixDatagram::unbound().map_err(|e| ProbeError::Connect(name.clone(), e))?;
    s.connect(path).map_err(|e| ProbeError::Connect(name, e))
}
