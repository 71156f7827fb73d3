//! The declarative world: zone data, policy hosts and MX hosts, started in-process.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, TLSA, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::task::JoinSet;

use crate::Error;
use crate::ca::TestCa;
use crate::dns::{self, DnsFault, DnsState, Zone};
use crate::dnssec::{self, Nsd, SignedZone};
use crate::https::{self, HttpRequest, HttpsHostState, PolicyHost};
use crate::smtp::{self, Delivery, SmtpHost, SmtpHostState, SmtpSession};
use crate::tls::TlsRecord;
use crate::unbound::Unbound;

/// Where the world binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Port 0 everywhere, for parallel tests; clients use [`World::port_map`].
    Ephemeral,
    /// DNS on 127.0.0.1:53, each host on its own address at ports 443 and 25: for a network
    /// namespace where real MTAs run.
    RealPorts,
}

const HTTPS_PORT: u16 = 443;
const SMTP_PORT: u16 = 25;

/// In [`DnssecMode::Signed`]: where NSD serves the signed zones.
pub const SIGNED_ZONES_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 53);
/// In [`DnssecMode::Signed`]: where the validating resolver (unbound) answers.
pub const RESOLVER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)), 53);
/// In [`DnssecMode::Signed`]: a resolver that passes DNSSEC records on without validating
/// (unbound as an ISP resolver often is), for validators of their own.
pub const PASSTHROUGH_RESOLVER_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 54)), 53);

/// How the world's signed zones are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnssecMode {
    /// The lab's server sets the AD bit itself for names of signed zones and answers SERVFAIL
    /// for broken ones, as a validating resolver would: fast, in-process, for unit tests.
    #[default]
    Simulated,
    /// Zones signed for real (`dnssec-signzone`), served by NSD on [`SIGNED_ZONES_ADDR`] under
    /// a signed `test.` delegating everything else to the lab's server, and validated by
    /// unbound on [`RESOLVER_ADDR`] with the run's trust anchor. Needs
    /// [`Placement::RealPorts`] (delegations carry no port), in a lab namespace.
    Signed,
}

/// Builds a [`World`].
#[derive(Debug, Clone)]
pub struct WorldBuilder {
    zone: Zone,
    policy_hosts: BTreeMap<String, PolicyHost>,
    smtp_hosts: BTreeMap<String, SmtpHost>,
    addresses: BTreeMap<String, Ipv4Addr>,
    /// (owner, MX host): TLSA 3 1 1 records computed from the host's certificate at build.
    tlsa_auto: Vec<(String, String)>,
    /// Owners of TLSA 2 0 1 records computed from the test CA's certificate at build.
    tlsa_ca: Vec<String>,
    dns_latency: Duration,
    placement: Placement,
    signed_zones: Vec<SignedZone>,
    dnssec_mode: DnssecMode,
    errors: Vec<String>,
}

impl Default for WorldBuilder {
    fn default() -> Self {
        Self {
            zone: Zone::default(),
            policy_hosts: BTreeMap::new(),
            smtp_hosts: BTreeMap::new(),
            addresses: BTreeMap::new(),
            tlsa_auto: Vec::new(),
            tlsa_ca: Vec::new(),
            dns_latency: Duration::ZERO,
            placement: Placement::Ephemeral,
            signed_zones: Vec::new(),
            dnssec_mode: DnssecMode::Simulated,
            errors: Vec::new(),
        }
    }
}

fn name(s: &str) -> Result<Name, String> {
    Name::from_ascii(s).map_err(|e| format!("`{s}` is not a DNS name: {e}"))
}

impl WorldBuilder {
    /// Where to bind (default: ephemeral).
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    fn rdata(mut self, owner: &str, rdata: Result<RData, String>) -> Self {
        match rdata {
            Ok(r) => self.zone.add(owner, r),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// One TXT record; text over 255 bytes is split into several strings.
    pub fn txt(self, owner: &str, text: &str) -> Self {
        let strings: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
        self.rdata(owner, Ok(RData::TXT(TXT::from_bytes(strings))))
    }

    /// One TXT record made of exactly these character-strings.
    pub fn txt_strings(self, owner: &str, strings: &[&str]) -> Self {
        let strings: Vec<&[u8]> = strings.iter().map(|s| s.as_bytes()).collect();
        self.rdata(owner, Ok(RData::TXT(TXT::from_bytes(strings))))
    }

    /// A CNAME.
    pub fn cname(self, owner: &str, target: &str) -> Self {
        let r = name(target).map(|t| RData::CNAME(CNAME(t)));
        self.rdata(owner, r)
    }

    /// An MX record.
    pub fn mx(self, domain: &str, preference: u16, host: &str) -> Self {
        let r = name(host).map(|h| RData::MX(MX::new(preference, h)));
        self.rdata(domain, r)
    }

    /// An A record. For a fake host, also the address it binds.
    pub fn a(mut self, owner: &str, ip: Ipv4Addr) -> Self {
        self.addresses.entry(dns::key(owner)).or_insert(ip);
        self.rdata(owner, Ok(RData::A(A(ip))))
    }

    /// An AAAA record (DNS data only; fake hosts listen on IPv4 loopback).
    pub fn aaaa(self, owner: &str, ip: Ipv6Addr) -> Self {
        self.rdata(owner, Ok(RData::AAAA(AAAA(ip))))
    }

    /// A TLSA record.
    pub fn tlsa(self, owner: &str, usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Self {
        let r = TLSA::new(
            CertUsage::from(usage),
            Selector::from(selector),
            Matching::from(matching),
            data,
        );
        self.rdata(owner, Ok(RData::TLSA(r)))
    }

    /// A TLSA `3 1 1` record at `owner` matching the certificate the fake SMTP server `host`
    /// presents for its own name (DANE-EE, SPKI, SHA-256).
    pub fn tlsa_for(mut self, owner: &str, host: &str) -> Self {
        self.tlsa_auto.push((owner.to_string(), dns::key(host)));
        self
    }

    /// A TLSA `2 0 1` record at `owner` matching the test CA's certificate (DANE-TA: every
    /// valid lab certificate chains to it, and the lab's servers send it in their chain).
    pub fn tlsa_for_ca(mut self, owner: &str) -> Self {
        self.tlsa_ca.push(owner.to_string());
        self
    }

    /// Marks `suffix` and all names below it DNSSEC-secure (answers carry the AD bit): the
    /// simulation only, whatever the [`DnssecMode`]; see [`Self::signed_zone`] for a zone that
    /// is signed for real in a lab.
    pub fn dnssec_secure(mut self, suffix: &str) -> Self {
        self.zone.secure(suffix);
        self
    }

    /// A zone that is DNSSEC-signed (really, or simulated: [`Self::dnssec_mode`]).
    pub fn signed_zone(mut self, zone: SignedZone) -> Self {
        self.signed_zones.push(zone);
        self
    }

    /// Whether signed zones are signed and validated for real (default: simulated).
    pub fn dnssec_mode(mut self, mode: DnssecMode) -> Self {
        self.dnssec_mode = mode;
        self
    }

    /// A fault for every query at `owner`.
    pub fn dns_fault(mut self, owner: &str, fault: DnsFault) -> Self {
        self.zone.fault(owner, fault);
        self
    }

    /// Added delay before every DNS answer.
    pub fn dns_latency(mut self, latency: Duration) -> Self {
        self.dns_latency = latency;
        self
    }

    /// Serves `https://mta-sts.<domain>/…` as `host` says (adds its A record).
    pub fn policy(mut self, domain: &str, host: PolicyHost) -> Self {
        self.policy_hosts
            .insert(format!("mta-sts.{}", dns::key(domain)), host);
        self
    }

    /// Runs an SMTP server for `host` (adds its A record).
    pub fn smtp(mut self, host: &str, spec: SmtpHost) -> Self {
        self.smtp_hosts.insert(dns::key(host), spec);
        self
    }

    /// A complete, valid MTA-STS domain: TXT id, policy, MX records and valid MX servers.
    pub fn sts_domain(self, domain: &str, id: &str, mode: &str, mx_hosts: &[&str]) -> Self {
        let mut policy = format!("version: STSv1\nmode: {mode}\n");
        for h in mx_hosts {
            policy.push_str(&format!("mx: {h}\n"));
        }
        policy.push_str("max_age: 604800\n");
        let mut b = self
            .txt(&format!("_mta-sts.{domain}"), &format!("v=STSv1; id={id};"))
            .policy(domain, PolicyHost::ok(&policy));
        for (i, h) in mx_hosts.iter().enumerate() {
            let pref = u16::try_from(10 * (i + 1)).unwrap_or(u16::MAX);
            b = b.mx(domain, pref, h).smtp(h, SmtpHost::valid());
        }
        b
    }

    /// Starts everything.
    pub async fn build(mut self) -> Result<World, Error> {
        if let Some(e) = self.errors.first() {
            return Err(Error::Config(e.clone()));
        }
        let started = std::time::Instant::now();
        let ca = TestCa::new()?;
        let dir = temp_dir()?;
        let ca_file = dir.join("ca.pem");
        ca.write_pem(&ca_file)?;
        let private_ca_file = dir.join("private-ca.pem");
        std::fs::write(&private_ca_file, ca.untrusted_pem())
            .map_err(|e| Error::Io(format!("{}: {e}", private_ca_file.display())))?;

        // Every fake host gets its own loopback address, so per-host behaviour (e.g. an MX
        // without STARTTLS) is decided by where the client connected, as on the real internet.
        let mut next = 0u32;
        let mut host_ip = |host: &str, addresses: &BTreeMap<String, Ipv4Addr>| -> Ipv4Addr {
            if let Some(ip) = addresses.get(host) {
                return *ip;
            }
            // 127.1.0.1 upwards, skipping .0 and .255 in the last octet.
            loop {
                next += 1;
                let [_, b, c, d] = (0x7f01_0000u32 + next).to_be_bytes();
                if d != 0 && d != 255 {
                    return Ipv4Addr::new(127, b, c, d);
                }
            }
        };
        let mut tasks = JoinSet::new();
        let (https_port, smtp_port, dns_bind) = match self.placement {
            Placement::Ephemeral => (0, 0, SocketAddr::from(([127, 0, 0, 1], 0))),
            Placement::RealPorts => (
                HTTPS_PORT,
                SMTP_PORT,
                SocketAddr::from(([127, 0, 0, 1], 53)),
            ),
        };

        let mut https_hosts = BTreeMap::new();
        for (host, spec) in std::mem::take(&mut self.policy_hosts) {
            let ip = host_ip(&host, &self.addresses);
            if !self.addresses.contains_key(&host) {
                self.zone.add(&host, RData::A(A(ip)));
                self.addresses.insert(host.clone(), ip);
            }
            let state = Arc::new(HttpsHostState {
                host: host.clone(),
                spec: Mutex::new(spec),
                certs: Arc::default(),
                failed_handshakes: Mutex::new(Vec::new()),
                requests: Mutex::new(Vec::new()),
                spki: Mutex::new(Vec::new()),
            });
            let bound = https::serve(
                SocketAddr::new(IpAddr::V4(ip), https_port),
                state.clone(),
                &ca,
                &mut tasks,
            )
            .await?;
            https_hosts.insert(
                host,
                (state, SocketAddr::new(IpAddr::V4(ip), HTTPS_PORT), bound),
            );
        }
        let mut smtp_hosts = BTreeMap::new();
        for (host, spec) in std::mem::take(&mut self.smtp_hosts) {
            let ip = host_ip(&host, &self.addresses);
            if !self.addresses.contains_key(&host) {
                self.zone.add(&host, RData::A(A(ip)));
                self.addresses.insert(host.clone(), ip);
            }
            let state = Arc::new(SmtpHostState {
                host: host.clone(),
                spec: Mutex::new(spec),
                certs: Arc::default(),
                spki: Mutex::new(Vec::new()),
                accepted: Default::default(),
                sessions: Mutex::new(Vec::new()),
                deliveries: Mutex::new(Vec::new()),
            });
            let bound = smtp::serve(
                SocketAddr::new(IpAddr::V4(ip), smtp_port),
                state.clone(),
                &ca,
                &mut tasks,
            )
            .await?;
            smtp_hosts.insert(
                host,
                (state, SocketAddr::new(IpAddr::V4(ip), SMTP_PORT), bound),
            );
        }
        for (owner, host) in std::mem::take(&mut self.tlsa_auto) {
            let (state, _, _) = smtp_hosts
                .get(&host)
                .ok_or_else(|| Error::Config(format!("tlsa_for: no SMTP server `{host}`")))?;
            let spki = state.spki.lock().map(|s| s.clone()).unwrap_or_default();
            let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
            self.zone.add(
                &owner,
                RData::TLSA(TLSA::new(
                    CertUsage::from(3),
                    Selector::from(1),
                    Matching::from(1),
                    digest.as_ref().to_vec(),
                )),
            );
        }
        let ca_digest = ring::digest::digest(&ring::digest::SHA256, ca.der().as_ref());
        for owner in std::mem::take(&mut self.tlsa_ca) {
            self.zone.add(
                &owner,
                RData::TLSA(TLSA::new(
                    CertUsage::from(2),
                    Selector::from(0),
                    Matching::from(1),
                    ca_digest.as_ref().to_vec(),
                )),
            );
        }
        let signed = match self.dnssec_mode {
            DnssecMode::Simulated => {
                for z in &self.signed_zones {
                    self.zone.secure(&z.apex);
                    if z.fault.is_some() {
                        self.zone.bogus_below(&z.apex);
                    }
                    for name in &z.broken {
                        self.zone.fault(name, DnsFault::Bogus);
                    }
                }
                None
            }
            DnssecMode::Signed if self.placement != Placement::RealPorts => {
                return Err(Error::Config(
                    "signed DNSSEC zones need real ports (a lab namespace): delegations carry no port"
                        .into(),
                ));
            }
            DnssecMode::Signed => Some(start_signed(&self.zone, &self.signed_zones, &dir)?),
        };
        let dns = Arc::new(DnsState {
            zone: Mutex::new(self.zone),
            latency: Mutex::new(self.dns_latency),
            log: dns::DnsLog::default(),
        });
        let dns_addr = dns::serve(dns_bind, dns.clone(), &mut tasks).await?;
        let world = World {
            ca,
            dir,
            ca_file,
            private_ca_file,
            dns_addr,
            dns,
            https: https_hosts,
            smtp: smtp_hosts,
            tasks,
            signed,
            started_in: started.elapsed(),
        };
        tracing::debug!(elapsed = ?world.started_in, "world started");
        Ok(world)
    }
}

#[derive(serde::Deserialize)]
struct Inline<T> {
    v: T,
}

fn temp_dir() -> Result<PathBuf, Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mtasts-testkit-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

type HostEntry<S> = (Arc<S>, SocketAddr, SocketAddr);

/// The real DNSSEC of a world: NSD with the signed zones, unbound validating.
#[derive(Debug)]
struct SignedDns {
    // Field order is drop order: the resolvers go first.
    resolver: Unbound,
    passthrough: Unbound,
    zones: Nsd,
    trust_anchor: String,
    trust_anchor_dnskey: String,
}

/// Signs the zones, starts NSD and the validating unbound in front of the tree.
fn start_signed(zone: &Zone, zones: &[SignedZone], dir: &Path) -> Result<SignedDns, Error> {
    let lab_ns = Ipv4Addr::new(127, 0, 0, 1);
    let IpAddr::V4(signed_ns) = SIGNED_ZONES_ADDR.ip() else {
        return Err(Error::Config(
            "the signed zones' address must be IPv4".into(),
        ));
    };
    // NSD answers the signed zones as they are: the lab's per-name faults cannot reach them.
    if let Some((name, apex)) = zone.faulted_names().find_map(|n| {
        zones
            .iter()
            .find(|z| n == z.apex || n.ends_with(&format!(".{}", z.apex)))
            .map(|z| (n, &z.apex))
    }) {
        return Err(Error::Config(format!(
            "`{name}` has a DNS fault but is in the signed zone `{apex}`, which NSD serves as signed: break a signed zone with dnssec_fault or bogus instead"
        )));
    }
    let dnssec_dir = dir.join("dnssec");
    let tree = dnssec::sign(zone.records(), zones, signed_ns, lab_ns, &dnssec_dir)?;
    let nsd = Nsd::start(SIGNED_ZONES_ADDR, &tree.zones, &dnssec_dir)?;
    // `test.` from NSD (it delegates onwards); any other name from the lab's server.
    let stubs = [
        (dnssec::LAB_ROOT, SIGNED_ZONES_ADDR),
        (".", SocketAddr::new(IpAddr::V4(lab_ns), 53)),
    ];
    let resolver = Unbound::validating(
        RESOLVER_ADDR,
        &stubs,
        &tree.trust_anchor,
        &dir.join("unbound"),
    )?;
    let passthrough = Unbound::at(
        PASSTHROUGH_RESOLVER_ADDR,
        &stubs,
        0,
        &dir.join("unbound-passthrough"),
    )?;
    Ok(SignedDns {
        resolver,
        passthrough,
        zones: nsd,
        trust_anchor: tree.trust_anchor,
        trust_anchor_dnskey: tree.trust_anchor_dnskey,
    })
}

/// A running fake internet. Dropping it stops every server and removes its files.
#[derive(Debug)]
pub struct World {
    ca: TestCa,
    dir: PathBuf,
    ca_file: PathBuf,
    private_ca_file: PathBuf,
    dns_addr: SocketAddr,
    dns: Arc<DnsState>,
    https: BTreeMap<String, HostEntry<HttpsHostState>>,
    smtp: BTreeMap<String, HostEntry<SmtpHostState>>,
    tasks: JoinSet<()>,
    signed: Option<SignedDns>,
    started_in: Duration,
}

impl Drop for World {
    fn drop(&mut self) {
        self.tasks.abort_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    /// A builder.
    pub fn builder() -> WorldBuilder {
        WorldBuilder::default()
    }

    /// Where the authoritative DNS listens (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// In [`DnssecMode::Signed`]: the validating resolver, the NSD serving the signed zones,
    /// and the trust anchor (the DS of `test.`).
    pub fn signed_dns(&self) -> Option<(SocketAddr, SocketAddr, &str)> {
        self.signed
            .as_ref()
            .map(|s| (s.resolver.addr(), s.zones.addr(), s.trust_anchor.as_str()))
    }

    /// In [`DnssecMode::Signed`]: the zone files, keys, and unbound's and NSD's configuration
    /// and logs (unbound logs why each answer was bogus).
    pub fn signed_dns_dir(&self) -> Option<PathBuf> {
        self.signed.as_ref().map(|_| self.dir.clone())
    }

    /// In [`DnssecMode::Signed`]: the trust anchor as `test.`'s DNSKEY record.
    pub fn trust_anchor_dnskey(&self) -> Option<&str> {
        self.signed.as_ref().map(|s| s.trust_anchor_dnskey.as_str())
    }

    /// The process ids of the unbounds and NSD in [`DnssecMode::Signed`].
    pub fn signed_dns_pids(&self) -> Vec<u32> {
        self.signed
            .as_ref()
            .map(|s| vec![s.resolver.pid(), s.passthrough.pid(), s.zones.pid()])
            .unwrap_or_default()
    }

    /// The test CA.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// A PEM file with the test CA certificate, for `--ca-file`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A PEM file with the second CA (the one [`CertKind::UntrustedCa`] certificates come
    /// from), for conditional trust tests.
    ///
    /// [`CertKind::UntrustedCa`]: crate::CertKind::UntrustedCa
    pub fn private_ca_file(&self) -> &Path {
        &self.private_ca_file
    }

    /// How long `build` took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// (address DNS gives, conventional port) → where the server really listens. Identity in
    /// [`Placement::RealPorts`].
    pub fn port_map(&self) -> HashMap<SocketAddr, SocketAddr> {
        let https = self
            .https
            .values()
            .map(|(_, public, bound)| (*public, *bound));
        let smtp = self
            .smtp
            .values()
            .map(|(_, public, bound)| (*public, *bound));
        https.chain(smtp).collect()
    }

    /// Where the SMTP server of `host` really listens.
    pub fn smtp_addr(&self, host: &str) -> Option<SocketAddr> {
        self.smtp.get(&dns::key(host)).map(|(_, _, bound)| *bound)
    }

    /// Where the policy host of `domain` really listens.
    pub fn policy_addr(&self, domain: &str) -> Option<SocketAddr> {
        self.https
            .get(&format!("mta-sts.{}", dns::key(domain)))
            .map(|(_, _, bound)| *bound)
    }

    /// The SubjectPublicKeyInfo (DER) of the certificate `mta-sts.<domain>` presents now.
    pub fn policy_spki(&self, domain: &str) -> Option<Vec<u8>> {
        self.https
            .get(&format!("mta-sts.{}", dns::key(domain)))
            .and_then(|(state, _, _)| state.spki.lock().ok().map(|s| s.clone()))
    }

    /// Queries the DNS server answered or dropped for (`name`, `rtype`).
    pub fn dns_queries(&self, name: &str, rtype: RecordType) -> u64 {
        self.dns.log.count(name, rtype)
    }

    /// Changes the zone while running.
    pub fn with_zone<T>(&self, f: impl FnOnce(&mut Zone) -> T) -> Option<T> {
        self.dns.zone.lock().ok().map(|mut z| f(&mut z))
    }

    /// Replaces the TXT records at `owner` with one record of `text` (`None`: removes them).
    pub fn set_txt(&self, owner: &str, text: Option<&str>) {
        self.with_zone(|z| {
            z.clear(owner);
            if let Some(t) = text {
                let strings: Vec<&[u8]> = t.as_bytes().chunks(255).collect();
                z.add(owner, RData::TXT(TXT::from_bytes(strings)));
            }
        });
    }

    /// Sets the added DNS latency.
    pub fn set_dns_latency(&self, latency: Duration) {
        if let Ok(mut l) = self.dns.latency.lock() {
            *l = latency;
        }
    }

    fn https_state(&self, domain: &str) -> Option<&Arc<HttpsHostState>> {
        self.https
            .get(&format!("mta-sts.{}", dns::key(domain)))
            .map(|(s, _, _)| s)
    }

    fn smtp_state(&self, host: &str) -> Option<&Arc<SmtpHostState>> {
        self.smtp.get(&dns::key(host)).map(|(s, _, _)| s)
    }

    /// Changes how the policy host of `domain` answers from now on, certificate included.
    pub fn set_policy(&self, domain: &str, host: PolicyHost) -> Result<(), Error> {
        let s = self
            .https_state(domain)
            .ok_or_else(|| Error::Config(format!("no policy host for `{domain}`")))?;
        if let Ok(mut spec) = s.spec.lock() {
            *spec = host;
        }
        https::install_cert(s, &self.ca)
    }

    /// Requests the policy host of `domain` received.
    pub fn policy_requests(&self, domain: &str) -> Vec<HttpRequest> {
        self.https_state(domain)
            .and_then(|s| s.requests.lock().ok().map(|r| r.clone()))
            .unwrap_or_default()
    }

    /// TLS handshakes to the policy host of `domain` that did not complete.
    pub fn policy_failed_handshakes(&self, domain: &str) -> Vec<TlsRecord> {
        self.https_state(domain)
            .and_then(|s| s.failed_handshakes.lock().ok().map(|r| r.clone()))
            .unwrap_or_default()
    }

    /// Changes how the MX `host` behaves for new connections, certificates included.
    pub fn set_smtp(&self, host: &str, spec: SmtpHost) -> Result<(), Error> {
        let s = self
            .smtp_state(host)
            .ok_or_else(|| Error::Config(format!("no SMTP server for `{host}`")))?;
        if let Ok(mut cur) = s.spec.lock() {
            *cur = spec;
        }
        smtp::install_certs(s, &self.ca)
    }

    /// Connections `host` accepted so far, counted as each is accepted: a client that got
    /// any reply is already counted (unlike [`Self::smtp_sessions`], recorded at the end).
    pub fn smtp_connections(&self, host: &str) -> u64 {
        self.smtp_state(host)
            .map_or(0, |s| s.accepted.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Finished SMTP sessions at `host`.
    pub fn smtp_sessions(&self, host: &str) -> Vec<SmtpSession> {
        self.smtp_state(host)
            .and_then(|s| s.sessions.lock().ok().map(|r| r.clone()))
            .unwrap_or_default()
    }

    /// Messages `host` accepted.
    pub fn deliveries(&self, host: &str) -> Vec<Delivery> {
        self.smtp_state(host)
            .and_then(|s| s.deliveries.lock().ok().map(|r| r.clone()))
            .unwrap_or_default()
    }

    /// Applies one control command, as `mtasts lab ctl` sends them:
    /// `txt NAME TEXT|-`, `mx DOMAIN PREF HOST[, PREF HOST…]`,
    /// `policy DOMAIN {toml inline table}`, `smtp HOST {toml inline table}`, `count DOMAIN`
    /// (TXT queries and policy fetches seen), `latency MS` (added to every DNS answer).
    pub fn control(&self, line: &str) -> Result<String, Error> {
        let line = line.trim();
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (target, arg) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
        let arg = arg.trim();
        let bad = |why: &str| Error::Config(format!("`{line}`: {why}"));
        const COMMANDS: [&str; 6] = ["txt", "mx", "policy", "smtp", "count", "latency"];
        if !COMMANDS.contains(&cmd) {
            return Err(bad(
                "unknown command; use txt, mx, policy, smtp, count or latency",
            ));
        }
        if target.is_empty() {
            return Err(bad("missing name"));
        }
        // The reason toml gives, with the column in the table as typed (not in the wrapper).
        let table_error = |e: toml::de::Error| {
            let column = e
                .span()
                .map(|s| format!(" (column {})", s.start.saturating_sub("v = ".len()) + 1))
                .unwrap_or_default();
            bad(&format!("{}{column}", e.message().trim_end()))
        };
        match cmd {
            "txt" => {
                self.with_zone(|z| z.clear_type(target, RecordType::TXT));
                if arg != "-" {
                    let strings: Vec<&[u8]> = arg.as_bytes().chunks(255).collect();
                    self.with_zone(|z| z.add(target, RData::TXT(TXT::from_bytes(strings))));
                }
            }
            "mx" => {
                let mut records = Vec::new();
                for item in arg.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (pref, host) = item
                        .split_once(' ')
                        .ok_or_else(|| bad("expected PREF HOST"))?;
                    let pref: u16 = pref
                        .trim()
                        .parse()
                        .map_err(|_| bad("preference is not a number"))?;
                    let host = Name::from_ascii(host.trim()).map_err(|e| bad(&e.to_string()))?;
                    records.push(RData::MX(MX::new(pref, host)));
                }
                self.with_zone(|z| {
                    z.clear_type(target, RecordType::MX);
                    for r in records {
                        z.add(target, r);
                    }
                });
            }
            "policy" => {
                let spec: Inline<PolicyHost> =
                    toml::from_str(&format!("v = {arg}")).map_err(table_error)?;
                self.set_policy(target, spec.v)?;
            }
            "smtp" => {
                let spec: Inline<SmtpHost> =
                    toml::from_str(&format!("v = {arg}")).map_err(table_error)?;
                self.set_smtp(target, spec.v)?;
            }
            "count" => {
                let txt = self.dns_queries(&format!("_mta-sts.{target}"), RecordType::TXT);
                let fetches = self.policy_requests(target).len();
                return Ok(format!("ok: txt_queries={txt} policy_fetches={fetches}"));
            }
            "latency" => {
                let ms: u64 = target
                    .parse()
                    .map_err(|_| bad("latency takes milliseconds"))?;
                self.set_dns_latency(Duration::from_millis(ms));
            }
            _ => {
                return Err(bad(
                    "unknown command; use txt, mx, policy, smtp, count or latency",
                ));
            }
        }
        Ok(format!("ok: {cmd} {target}"))
    }

    /// The host names with fake servers, and their (public) addresses.
    pub fn hosts(&self) -> Vec<(String, IpAddr)> {
        let https = self.https.iter().map(|(h, (_, a, _))| (h.clone(), a.ip()));
        let smtp = self.smtp.iter().map(|(h, (_, a, _))| (h.clone(), a.ip()));
        https.chain(smtp).collect()
    }
}

impl FromStr for Placement {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "ephemeral" => Ok(Self::Ephemeral),
            "real-ports" => Ok(Self::RealPorts),
            other => Err(Error::Config(format!("unknown placement `{other}`"))),
        }
    }
}
