//! Authoritative DNS over UDP and TCP for every name of a world, with per-name faults.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

use crate::Error;

const TTL: u32 = 300;
const MAX_CNAME_CHAIN: usize = 8;

/// How the server misbehaves for one name (all types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsFault {
    /// NXDOMAIN even if records exist.
    #[serde(rename = "nxdomain")]
    NxDomain,
    /// NOERROR with an empty answer.
    #[serde(rename = "nodata")]
    NoData,
    #[serde(rename = "servfail")]
    /// Answer SERVFAIL.
    ServFail,
    /// Answer REFUSED.
    Refused,
    /// Never answers (a client times out).
    Drop,
    /// Over UDP, answers with TC set and no records, forcing TCP; over TCP, answers normally.
    Truncate,
    /// Data that fails DNSSEC validation: answered SERVFAIL, as a validating resolver does.
    Bogus,
}

/// The zone data: records by lower-case name, and faults.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: BTreeMap<String, Vec<RData>>,
    faults: HashMap<String, DnsFault>,
    /// Names at or below these are "DNSSEC-secure": answers carry the AD bit when the client
    /// asks (AD or DO), as from a validating resolver. The simulation: see [`Zone::secure`].
    secure: Vec<String>,
    /// Names at or below these fail validation (SERVFAIL unless CD), as a whole zone does
    /// when its signatures expired or its DS matches no key.
    bogus_below: Vec<String>,
}

/// Lower-case, no trailing dot: the zone's key for a name.
pub fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    /// Adds a record.
    pub fn add(&mut self, name: &str, rdata: RData) {
        self.records.entry(key(name)).or_default().push(rdata);
    }

    /// Sets a fault for a name.
    pub fn fault(&mut self, name: &str, fault: DnsFault) {
        self.faults.insert(key(name), fault);
    }

    /// Marks `suffix` and every name below it as DNSSEC-secure: this server then sets the AD
    /// bit itself, simulating a validating resolver. Only for fast in-process tests; the lab
    /// (`mtasts lab`) signs such zones for real and validates with unbound instead.
    pub fn secure(&mut self, suffix: &str) {
        self.secure.push(key(suffix));
    }

    /// Simulates a zone whose data all fails validation: `suffix` and every name below it.
    pub fn bogus_below(&mut self, suffix: &str) {
        self.bogus_below.push(key(suffix));
    }

    /// The names with a fault set.
    pub fn faulted_names(&self) -> impl Iterator<Item = &str> {
        self.faults.keys().map(String::as_str)
    }

    /// Every record, by lower-case name (what the lab signs).
    pub fn records(&self) -> &BTreeMap<String, Vec<RData>> {
        &self.records
    }

    fn fault_at(&self, name: &str) -> Option<DnsFault> {
        self.faults.get(name).copied().or_else(|| {
            self.bogus_below
                .iter()
                .any(|s| name == s || name.ends_with(&format!(".{s}")))
                .then_some(DnsFault::Bogus)
        })
    }

    /// Whether `name` is in a secure part of the zone.
    pub fn is_secure(&self, name: &str) -> bool {
        let name = key(name);
        self.secure
            .iter()
            .any(|s| name == *s || name.ends_with(&format!(".{s}")))
    }

    /// Removes the records of one type at a name.
    pub fn clear_type(&mut self, name: &str, rtype: RecordType) {
        if let Some(v) = self.records.get_mut(&key(name)) {
            v.retain(|r| r.record_type() != rtype);
        }
    }

    /// Removes every record and fault at a name.
    pub fn clear(&mut self, name: &str) {
        self.records.remove(&key(name));
        self.faults.remove(&key(name));
    }

    /// All names with records.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.records.keys().map(String::as_str)
    }

    fn rdata(&self, name: &str, rtype: RecordType) -> Vec<&RData> {
        self.records
            .get(name)
            .map(|v| v.iter().filter(|r| r.record_type() == rtype).collect())
            .unwrap_or_default()
    }

    /// Answers one query: (response code, answer records). With `checking_disabled` (the
    /// client's CD bit) a bogus name is answered with its data, as a validating resolver does.
    fn answer(
        &self,
        qname: &Name,
        qtype: RecordType,
        checking_disabled: bool,
    ) -> (ResponseCode, Vec<Record>) {
        let mut answers = Vec::new();
        let mut name = qname.clone();
        for _ in 0..MAX_CNAME_CHAIN {
            let k = key(&name.to_ascii());
            match self.fault_at(&k) {
                Some(DnsFault::NxDomain) => return (ResponseCode::NXDomain, answers),
                Some(DnsFault::NoData) => return (ResponseCode::NoError, answers),
                Some(DnsFault::Bogus) if checking_disabled => {}
                Some(DnsFault::ServFail | DnsFault::Bogus) => {
                    return (ResponseCode::ServFail, Vec::new());
                }
                Some(DnsFault::Refused) => return (ResponseCode::Refused, Vec::new()),
                _ => {}
            }
            let direct = self.rdata(&k, qtype);
            if !direct.is_empty() {
                answers.extend(
                    direct
                        .into_iter()
                        .map(|r| Record::from_rdata(name.clone(), TTL, r.clone())),
                );
                return (ResponseCode::NoError, answers);
            }
            let cname = self
                .rdata(&k, RecordType::CNAME)
                .into_iter()
                .next()
                .cloned();
            match cname {
                Some(RData::CNAME(target)) if qtype != RecordType::CNAME => {
                    answers.push(Record::from_rdata(
                        name.clone(),
                        TTL,
                        RData::CNAME(target.clone()),
                    ));
                    name = target.0.clone();
                }
                _ if self.records.contains_key(&k) => return (ResponseCode::NoError, answers),
                _ if answers.is_empty() => return (ResponseCode::NXDomain, answers),
                // A CNAME pointing outside the zone: return the chain so far.
                _ => return (ResponseCode::NoError, answers),
            }
        }
        (ResponseCode::ServFail, Vec::new())
    }
}

/// What the DNS server saw: queries by (name, type).
#[derive(Debug, Default)]
pub struct DnsLog {
    counts: Mutex<HashMap<(String, RecordType), u64>>,
}

impl DnsLog {
    /// How many queries arrived for `name` and `rtype` (UDP and TCP together).
    pub fn count(&self, name: &str, rtype: RecordType) -> u64 {
        self.counts
            .lock()
            .map(|c| c.get(&(key(name), rtype)).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn record(&self, name: &Name, rtype: RecordType) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((key(&name.to_ascii()), rtype)).or_default() += 1;
        }
    }
}

/// Shared state of the server: zone (replaceable at run time), latency, log.
#[derive(Debug)]
pub struct DnsState {
    /// The records served.
    pub zone: Mutex<Zone>,
    /// Delay before each answer.
    pub latency: Mutex<Duration>,
    /// Every query received.
    pub log: DnsLog,
}

/// Binds UDP and TCP on `addr` (port 0: the same free port for both) and serves the zone.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<DnsState>,
    tasks: &mut JoinSet<()>,
) -> Result<SocketAddr, Error> {
    let (udp, tcp) = bind_pair(addr).await?;
    let local = udp.local_addr().map_err(Error::io("dns local_addr"))?;
    let udp = Arc::new(udp);
    let st = state.clone();
    tasks.spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            let query = buf[..n].to_vec();
            let (udp, st) = (udp.clone(), st.clone());
            tokio::spawn(async move {
                if let Some(reply) = respond(&st, &query, false).await {
                    let _ = udp.send_to(&reply, peer).await;
                }
            });
        }
    });
    tasks.spawn(async move {
        loop {
            let Ok((mut stream, _)) = tcp.accept().await else {
                continue;
            };
            let st = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(len) = stream.read_u16().await else {
                        return;
                    };
                    let mut query = vec![0u8; usize::from(len)];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    let Some(reply) = respond(&st, &query, true).await else {
                        continue;
                    };
                    let Ok(len) = u16::try_from(reply.len()) else {
                        return;
                    };
                    if stream.write_u16(len).await.is_err()
                        || stream.write_all(&reply).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(local)
}

async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    // With port 0, UDP picks a port and TCP must get the same one; retry on a clash.
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(Error::io("dns udp bind"))?;
        let port = udp.local_addr().map_err(Error::io("dns local_addr"))?;
        match TcpListener::bind(port).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if addr.port() == 0 => continue,
            Err(e) => return Err(Error::Io(format!("dns tcp bind {port}: {e}"))),
        }
    }
    Err(Error::Io(format!(
        "no common UDP/TCP port free on {}",
        addr.ip()
    )))
}

async fn respond(state: &DnsState, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let q = request.queries().first()?.clone();
    state.log.record(q.name(), q.query_type());
    let latency = state.latency.lock().map(|l| *l).unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (fault, (rcode, answers), secure) = {
        let zone = state.zone.lock().ok()?;
        let fault = zone.fault_at(&key(&q.name().to_ascii()));
        let (rcode, answers) = zone.answer(q.name(), q.query_type(), request.checking_disabled());
        // Secure only if every name in the answer (CNAME chain included) is.
        let secure = zone.is_secure(&q.name().to_ascii())
            && answers.iter().all(|r| zone.is_secure(&r.name().to_ascii()));
        (fault, (rcode, answers), secure)
    };
    let wants_ad = request.authentic_data()
        || request
            .extensions()
            .as_ref()
            .is_some_and(|e| e.flags().dnssec_ok);
    if fault == Some(DnsFault::Drop) {
        return None;
    }
    let mut reply = Message::new();
    reply
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .add_query(q);
    if let Some(edns) = request.extensions() {
        let mut out = hickory_proto::op::Edns::new();
        out.set_max_payload(1232);
        out.set_dnssec_ok(edns.flags().dnssec_ok);
        reply.set_edns(out);
    }
    if fault == Some(DnsFault::Truncate) && !tcp {
        reply.set_truncated(true);
    } else {
        reply.set_authentic_data(
            wants_ad
                && secure
                && !request.checking_disabled()
                && matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain),
        );
        reply.set_response_code(rcode);
        reply.add_answers(answers);
    }
    let bytes = reply.to_vec().ok()?;
    if !tcp && bytes.len() > 512 && request.extensions().is_none() {
        // No EDNS: a classic client gets TC and retries over TCP.
        let mut truncated = reply.truncate();
        truncated.set_truncated(true);
        return truncated.to_vec().ok();
    }
    Some(bytes)
}
