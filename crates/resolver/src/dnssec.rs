//! DNS lookups that carry their DNSSEC status, for DANE awareness.
//!
//! The status comes from the AD bit of a validating resolver (e.g. a local unbound), exactly
//! as Postfix gets it for its own DANE checks (`smtp_dns_support_level = dnssec`). Using the
//! same resolver view as Postfix keeps the daemon's decision and Postfix's verification in
//! agreement. The resolver must be trusted (loopback): the AD bit is only as good as the path.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use mtasts_core::dane::{Answer, DnssecStatus, Tlsa, tlsa_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Why no validating resolver could be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoValidatingResolver {
    #[error("reading /etc/resolv.conf")]
    /// /etc/resolv.conf could not be read.
    SystemConfig(#[source] hickory_resolver::ResolveError),
    #[error("no nameserver in /etc/resolv.conf")]
    /// /etc/resolv.conf names no nameserver.
    NoNameserver,
}

/// Queries one validating resolver and reports the AD bit.
#[derive(Debug, Clone)]
pub struct DnssecClient {
    server: SocketAddr,
    timeout: Duration,
}

impl DnssecClient {
    /// Queries `server`, or the first nameserver of /etc/resolv.conf.
    pub fn new(
        server: Option<SocketAddr>,
        timeout: Duration,
    ) -> Result<Self, NoValidatingResolver> {
        let server = match server {
            Some(s) => s,
            None => {
                let (config, _) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(NoValidatingResolver::SystemConfig)?;
                config
                    .name_servers()
                    .first()
                    .map(|n| n.socket_addr)
                    .ok_or(NoValidatingResolver::NoNameserver)?
            }
        };
        Ok(Self { server, timeout })
    }

    /// The resolver asked.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// MX host names of `domain` in preference order (resolvers rotate RRsets; ties by name,
    /// so a report reads the same every time), with status.
    pub async fn mx(&self, domain: &str) -> Answer<String> {
        let answer = self
            .lookup(domain, RecordType::MX, |r| match r {
                RData::MX(mx) => Some((
                    mx.preference(),
                    mx.exchange()
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                )),
                _ => None,
            })
            .await;
        let mut records = answer.records;
        records.sort();
        Answer {
            status: answer.status,
            records: records.into_iter().map(|(_, host)| host).collect(),
        }
    }

    /// TLSA records at `owner`, with status.
    pub async fn tlsa(&self, owner: &str) -> Answer<Tlsa> {
        self.lookup(owner, RecordType::TLSA, |r| match r {
            RData::TLSA(t) => Some(Tlsa {
                usage: u8::from(t.cert_usage()),
                selector: u8::from(t.selector()),
                matching: u8::from(t.matching()),
                data: t.cert_data().to_vec(),
            }),
            _ => None,
        })
        .await
    }

    /// The TLSA records that apply to MX host `host` and the name they were found under
    /// (RFC 7672 §2.2.3): when the host's address lookup is a CNAME chain validated end to
    /// end, the chain's last name first, unless it has (authenticatedly) none; else the host
    /// name itself — as Postfix and Exim look them up, so all three agree.
    pub async fn host_tlsa(&self, host: &str) -> (String, Answer<Tlsa>) {
        if let Some(expanded) = self.secure_cname_target(host).await {
            let answer = self.tlsa(&tlsa_name(&expanded)).await;
            let none_there = answer.status == DnssecStatus::Secure && answer.records.is_empty();
            if !none_there {
                return (expanded, answer);
            }
        }
        (host.to_string(), self.tlsa(&tlsa_name(host)).await)
    }

    /// Where the CNAME chain at `host` ends, if its address lookup is one and validated.
    async fn secure_cname_target(&self, host: &str) -> Option<String> {
        let chain = self
            .lookup(host, RecordType::A, |r| match r {
                RData::CNAME(c) => Some(c.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .await;
        // Answers list a chain in order: the last target is where it ends.
        (chain.status == DnssecStatus::Secure)
            .then(|| chain.records.last().cloned())
            .flatten()
    }

    async fn lookup<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Answer<T> {
        let failed = |status| Answer {
            status,
            records: Vec::new(),
        };
        let Ok(qname) = Name::from_ascii(format!("{}.", name.trim_end_matches('.'))) else {
            return failed(DnssecStatus::Indeterminate);
        };
        let Some(response) = self.ask(&qname, rtype, false).await else {
            return failed(DnssecStatus::Indeterminate);
        };
        let status = match response.response_code() {
            ResponseCode::NoError | ResponseCode::NXDomain if response.authentic_data() => {
                DnssecStatus::Secure
            }
            ResponseCode::NoError | ResponseCode::NXDomain => DnssecStatus::Insecure,
            // A validating resolver answers SERVFAIL both for bogus data and when it cannot
            // reach the data at all. Asking again with checking disabled tells them apart: if
            // the data then comes, only validation failed.
            ResponseCode::ServFail => match self.ask(&qname, rtype, true).await {
                Some(m)
                    if matches!(
                        m.response_code(),
                        ResponseCode::NoError | ResponseCode::NXDomain
                    ) =>
                {
                    DnssecStatus::Bogus
                }
                _ => DnssecStatus::Indeterminate,
            },
            _ => DnssecStatus::Indeterminate,
        };
        let records = response
            .answers()
            .iter()
            .filter_map(|r| pick(r.data()))
            .collect();
        Answer { status, records }
    }

    /// One question, two tries: one lost UDP datagram must not turn into a deferral.
    async fn ask(
        &self,
        qname: &Name,
        rtype: RecordType,
        checking_disabled: bool,
    ) -> Option<Message> {
        for _ in 0..2 {
            if let Ok(Ok(m)) = tokio::time::timeout(
                self.timeout,
                self.exchange(qname.clone(), rtype, checking_disabled),
            )
            .await
            {
                return Some(m);
            }
        }
        None
    }

    async fn exchange(
        &self,
        qname: Name,
        rtype: RecordType,
        checking_disabled: bool,
    ) -> std::io::Result<Message> {
        let mut query = Message::new();
        // Unpredictable query id (with the random source port) against spoofed answers.
        let mut id_bytes = [0u8; 2];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id_bytes)
            .map_err(|_| std::io::Error::other("no randomness"))?;
        let id = u16::from_be_bytes(id_bytes);
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true);
        edns.set_max_payload(1232);
        query
            .set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .set_authentic_data(true)
            .set_checking_disabled(checking_disabled)
            .add_query(Query::query(qname, rtype))
            .set_edns(edns);
        let bytes = query.to_vec().map_err(std::io::Error::other)?;
        let udp = UdpSocket::bind(if self.server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })
        .await?;
        udp.connect(self.server).await?;
        udp.send(&bytes).await?;
        let mut buf = vec![0u8; 4096];
        let response = loop {
            let n = udp.recv(&mut buf).await?;
            match Message::from_vec(&buf[..n]) {
                Ok(m) if m.id() == id => break m,
                _ => continue,
            }
        };
        if !response.truncated() {
            return Ok(response);
        }
        let mut tcp = TcpStream::connect(self.server).await?;
        let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
        tcp.write_u16(len).await?;
        tcp.write_all(&bytes).await?;
        let len = tcp.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        tcp.read_exact(&mut buf).await?;
        Message::from_vec(&buf).map_err(std::io::Error::other)
    }
}
