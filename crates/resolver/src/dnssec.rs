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

/// Where DNSSEC-qualified TLSA answers come from: a validating resolver's AD bit, or
/// mtasts' own validation.
pub trait TlsaSource: Sync {
    /// TLSA records at `owner`, with status.
    fn tlsa_at(&self, owner: &str) -> impl Future<Output = Answer<Tlsa>> + Send;
    /// Where the CNAME chain at `host` ends, if its address lookup is one and validated.
    fn cname_target(&self, host: &str) -> impl Future<Output = Option<String>> + Send;
}

impl TlsaSource for DnssecClient {
    fn tlsa_at(&self, owner: &str) -> impl Future<Output = Answer<Tlsa>> + Send {
        self.tlsa(owner)
    }
    fn cname_target(&self, host: &str) -> impl Future<Output = Option<String>> + Send {
        self.secure_cname_target(host)
    }
}

/// The TLSA records that apply to MX host `host` and the name they were found under
/// (RFC 7672 §2.2.3): when the host's address lookup is a CNAME chain validated end to end,
/// the chain's last name first, unless it has (authenticatedly) none; else the host name
/// itself — as Postfix and Exim look them up, so all three agree.
pub async fn host_tlsa<S: TlsaSource>(source: &S, host: &str) -> (String, Answer<Tlsa>) {
    if let Some(expanded) = source.cname_target(host).await {
        let answer = source.tlsa_at(&tlsa_name(&expanded)).await;
        let none_there = answer.status == DnssecStatus::Secure && answer.records.is_empty();
        if !none_there {
            return (expanded, answer);
        }
    }
    (host.to_string(), source.tlsa_at(&tlsa_name(host)).await)
}

/// An MX record's (preference, host), the host lower-case without the trailing dot.
pub fn pick_mx(r: &RData) -> Option<(u16, String)> {
    match r {
        RData::MX(mx) => Some((mx.preference(), bare(mx.exchange()))),
        _ => None,
    }
}

pub(crate) fn pick_tlsa(r: &RData) -> Option<Tlsa> {
    match r {
        RData::TLSA(t) => Some(Tlsa {
            usage: u8::from(t.cert_usage()),
            selector: u8::from(t.selector()),
            matching: u8::from(t.matching()),
            data: t.cert_data().to_vec(),
        }),
        _ => None,
    }
}

pub(crate) fn pick_cname(r: &RData) -> Option<String> {
    match r {
        RData::CNAME(c) => Some(bare(&c.0)),
        _ => None,
    }
}

fn bare(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// MX hosts in preference order (resolvers rotate RRsets; ties by name).
pub(crate) fn by_preference(answer: Answer<(u16, String)>) -> Answer<String> {
    let mut records = answer.records;
    records.sort();
    Answer {
        status: answer.status,
        records: records.into_iter().map(|(_, host)| host).collect(),
    }
}

/// Where a validated CNAME chain ends: answers list a chain in order, so its last target.
pub(crate) fn chain_end(chain: Answer<String>) -> Option<String> {
    (chain.status == DnssecStatus::Secure)
        .then(|| chain.records.last().cloned())
        .flatten()
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
        by_preference(self.lookup(domain, RecordType::MX, pick_mx).await)
    }

    /// TLSA records at `owner`, with status.
    pub async fn tlsa(&self, owner: &str) -> Answer<Tlsa> {
        self.lookup(owner, RecordType::TLSA, pick_tlsa).await
    }

    /// The TLSA records that apply to MX host `host` ([`host_tlsa`]).
    pub async fn host_tlsa(&self, host: &str) -> (String, Answer<Tlsa>) {
        host_tlsa(self, host).await
    }

    /// Where the CNAME chain at `host` ends, if its address lookup is one and validated.
    pub async fn secure_cname_target(&self, host: &str) -> Option<String> {
        chain_end(self.lookup(host, RecordType::A, pick_cname).await)
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
