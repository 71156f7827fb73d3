//! Real DNSSEC for the lab: the zones of DNSSEC scenarios, signed by BIND's `dnssec-signzone`
//! under a signed `test.` zone whose key is the run's trust anchor, and served by NSD.
//!
//! BIND's signer rather than an in-process one: the signatures, NSEC/NSEC3 chains and DS
//! records a validator sees are then made by the implementation most of the signed internet
//! uses, not by code that shares our assumptions; and its start/end times make an expired
//! zone as cheaply as a good one. The lab's own server keeps answering every name (unsigned,
//! for clients that ask it directly); the signed tree delegates every unsigned second-level
//! domain back to it, so a validating resolver sees exactly one chain of trust.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use hickory_proto::rr::RData;
use serde::Deserialize;

use crate::Error;
use crate::dns::key;

/// The lab's signed root: the trust anchor is its key.
pub const LAB_ROOT: &str = "test";
/// The name of the server holding the signed zones (NSD), in `test.`.
const NS_SIGNED: &str = "ns-signed.test";
/// The name of the lab's own server, to which every unsigned domain is delegated.
const NS_LAB: &str = "ns-lab.test";
const TTL: u32 = 300;
/// Good signatures: valid from an hour ago (clock skew) for 30 days.
const VALID_FROM: &str = "now-3600";
const VALID_UNTIL: &str = "now+2592000";

/// How a signed zone is broken on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigningFault {
    /// Every signature of the zone expired two days ago (re-signing stopped a month ago).
    ExpiredSignatures,
    /// The parent's DS names a key the zone does not publish (a botched key rollover).
    DsMismatch,
}

/// One zone to sign: a DNSSEC scenario's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedZone {
    /// The apex, e.g. `dane.test`.
    pub apex: String,
    /// NSEC3 (no salt, no extra iterations, RFC 9276) instead of NSEC.
    pub nsec3: bool,
    /// A deliberate failure, if any.
    pub fault: Option<SigningFault>,
    /// Names whose signatures are corrupted after signing (bogus answers for those names).
    pub broken: Vec<String>,
}

impl SignedZone {
    /// A correctly signed zone with NSEC.
    pub fn new(apex: &str) -> Self {
        Self {
            apex: key(apex),
            nsec3: false,
            fault: None,
            broken: Vec::new(),
        }
    }
}

/// The signed zone files and the trust anchor, written under one directory.
#[derive(Debug, Clone)]
pub struct SignedTree {
    /// (apex, signed zone file), `test.` included.
    pub zones: Vec<(String, PathBuf)>,
    /// The DS record of `test.`'s key in presentation format, for a validator's trust anchor.
    pub trust_anchor: String,
    /// The same anchor as `test.`'s DNSKEY record, for validators that take keys.
    pub trust_anchor_dnskey: String,
}

fn under(name: &str, apex: &str) -> bool {
    name == apex || name.ends_with(&format!(".{apex}"))
}

/// Signs the zones of `zones` and `test.` from the lab's records (lower-case names without
/// trailing dot), in `dir`. `signed_ns` is where the signed zones are served, `lab_ns` the
/// lab's own server (both on port 53: delegations carry no port).
pub fn sign(
    records: &BTreeMap<String, Vec<RData>>,
    zones: &[SignedZone],
    signed_ns: Ipv4Addr,
    lab_ns: Ipv4Addr,
    dir: &Path,
) -> Result<SignedTree, Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("dnssec directory"))?;
    for z in zones {
        if z.apex == LAB_ROOT || !under(&z.apex, LAB_ROOT) {
            return Err(Error::Config(format!(
                "signed zone `{}`: must be below `{LAB_ROOT}.`, the lab's signed root",
                z.apex
            )));
        }
        if let Some(b) = z.broken.iter().find(|b| !under(&key(b), &z.apex)) {
            return Err(Error::Config(format!(
                "signed zone `{}`: broken name `{b}` is not in the zone",
                z.apex
            )));
        }
    }
    for reserved in [NS_SIGNED, NS_LAB] {
        if records.keys().any(|n| under(n, reserved)) {
            return Err(Error::Config(format!(
                "`{reserved}` is the lab's name server name; no scenario may use it"
            )));
        }
    }
    // Each name goes to the deepest signed zone holding it; names of `test.` outside any
    // signed zone stay on the lab's server behind an unsigned delegation.
    let apexes: Vec<&str> = zones.iter().map(|z| z.apex.as_str()).collect();
    let owner_zone = |name: &str| -> Option<&str> {
        apexes
            .iter()
            .copied()
            .filter(|a| under(name, a))
            .max_by_key(|a| a.len())
    };
    let mut bodies: BTreeMap<&str, String> = apexes.iter().map(|a| (*a, String::new())).collect();
    let mut root_body = String::new();
    let mut unsigned_children = BTreeSet::new();
    for (name, rdatas) in records {
        if !under(name, LAB_ROOT) {
            continue;
        }
        let body = match owner_zone(name) {
            Some(apex) => bodies.get_mut(apex),
            None if name == LAB_ROOT => Some(&mut root_body),
            None => {
                let label = name.rsplit('.').nth(1).unwrap_or(name.as_str());
                unsigned_children.insert(format!("{label}.{LAB_ROOT}"));
                None
            }
        };
        let Some(body) = body else { continue };
        for r in rdatas {
            let text = presentation(r)
                .map_err(|why| Error::Config(format!("signed zone record at `{name}`: {why}")))?;
            let _ = writeln!(body, "{name}. {TTL} IN {} {text}", r.record_type());
        }
    }
    // Deepest zones first: a parent needs its children's DS records.
    let mut order: Vec<&SignedZone> = zones.iter().collect();
    order.sort_by_key(|z| std::cmp::Reverse(z.apex.matches('.').count()));
    let mut delegations: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for z in order {
        let parent = apexes
            .iter()
            .copied()
            .filter(|a| *a != z.apex && under(&z.apex, a))
            .max_by_key(|a| a.len())
            .unwrap_or(LAB_ROOT)
            .to_string();
        // Between `test.` and a deeper apex would sit an unsigned delegation: no chain.
        if parent == LAB_ROOT && z.apex.matches('.').count() != 1 {
            return Err(Error::Config(format!(
                "signed zone `{}`: must be a child of `{LAB_ROOT}.` or of another signed zone",
                z.apex
            )));
        }
        let mut text = soa_and_ns(&z.apex);
        text.push_str(bodies.get(z.apex.as_str()).map_or("", String::as_str));
        text.push_str(delegations.get(&z.apex).map_or("", String::as_str));
        let signed = sign_zone(dir, &z.apex, &text, z)?;
        let ds = match z.fault {
            Some(SigningFault::DsMismatch) => {
                // A key that signs nothing and is published nowhere.
                let decoy = keygen(dir, &z.apex, "decoy")?;
                ds_of(dir, &decoy)?
            }
            _ => ds_of(dir, &signed.key)?,
        };
        let entry = delegations.entry(parent).or_default();
        let _ = writeln!(entry, "{}. {TTL} IN NS {NS_SIGNED}.", z.apex);
        let _ = writeln!(entry, "{ds}");
        out.push((z.apex.clone(), signed.file));
    }
    let mut root = soa_and_ns(LAB_ROOT);
    let _ = writeln!(root, "{NS_SIGNED}. {TTL} IN A {signed_ns}");
    let _ = writeln!(root, "{NS_LAB}. {TTL} IN A {lab_ns}");
    root.push_str(&root_body);
    for child in &unsigned_children {
        let _ = writeln!(root, "{child}. {TTL} IN NS {NS_LAB}.");
    }
    root.push_str(delegations.get(LAB_ROOT).map_or("", String::as_str));
    let signed = sign_zone(dir, LAB_ROOT, &root, &SignedZone::new(LAB_ROOT))?;
    let trust_anchor = ds_of(dir, &signed.key)?;
    let key_file = std::fs::read_to_string(dir.join(format!("{}.key", signed.key)))
        .map_err(Error::io("reading the root DNSKEY file"))?;
    let trust_anchor_dnskey = key_file
        .lines()
        .filter(|l| !l.trim_start().starts_with(';') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    out.push((LAB_ROOT.to_string(), signed.file));
    Ok(SignedTree {
        zones: out,
        trust_anchor,
        trust_anchor_dnskey,
    })
}

fn soa_and_ns(apex: &str) -> String {
    format!(
        "$TTL {TTL}\n{apex}. {TTL} IN SOA {NS_SIGNED}. hostmaster.{LAB_ROOT}. 1 3600 600 86400 60\n\
         {apex}. {TTL} IN NS {NS_SIGNED}.\n"
    )
}

struct Signed {
    file: PathBuf,
    /// The key's base name (`K<zone>.+013+<tag>`), in `dir`.
    key: String,
}

fn sign_zone(dir: &Path, apex: &str, text: &str, zone: &SignedZone) -> Result<Signed, Error> {
    let key = keygen(dir, apex, "key")?;
    let public = std::fs::read_to_string(dir.join(format!("{key}.key")))
        .map_err(Error::io("reading a DNSKEY file"))?;
    let unsigned = dir.join(format!("{apex}.zone"));
    std::fs::write(&unsigned, format!("{text}{public}")).map_err(Error::io("zone file"))?;
    let file = dir.join(format!("{apex}.signed"));
    let (start, end) = match zone.fault {
        // Two days past: validators forgive up to a day of clock skew (unbound: a tenth of
        // the validity period, at most 24 h), so one day would still validate at first.
        Some(SigningFault::ExpiredSignatures) => ("now-2592000", "now-172800"),
        _ => (VALID_FROM, VALID_UNTIL),
    };
    let mut args: Vec<String> = ["-q", "-P", "-z", "-O", "full", "-s", start, "-e", end, "-o"]
        .map(String::from)
        .to_vec();
    args.push(format!("{apex}."));
    if zone.nsec3 {
        args.extend(["-3", "-", "-H", "0"].map(String::from));
    }
    args.push("-f".into());
    args.push(file.display().to_string());
    args.push(unsigned.display().to_string());
    args.push(format!("{key}.private"));
    run(dir, "dnssec-signzone", &args)?;
    if !zone.broken.is_empty() {
        corrupt(&file, &zone.broken)?;
    }
    Ok(Signed { file, key })
}

/// A new ECDSA P-256 key used as both KSK and ZSK (a combined signing key); its base name.
fn keygen(dir: &Path, apex: &str, what: &str) -> Result<String, Error> {
    let out = run(
        dir,
        "dnssec-keygen",
        &[
            "-q",
            "-a",
            "ECDSAP256SHA256",
            "-f",
            "KSK",
            "-n",
            "ZONE",
            "-K",
            &dir.display().to_string(),
            &format!("{apex}."),
        ],
    )?;
    let name = out.trim().to_string();
    if name.is_empty() {
        return Err(Error::Io(format!(
            "dnssec-keygen printed no {what} name for {apex}"
        )));
    }
    Ok(name)
}

/// The SHA-256 DS record of a key, one line in presentation format.
fn ds_of(dir: &Path, key: &str) -> Result<String, Error> {
    let out = run(dir, "dnssec-dsfromkey", &["-2", &format!("{key}.key")])?;
    Ok(out.trim().to_string())
}

/// Flips the first character of every signature at the `names` (a base64 character for
/// another keeps the record well-formed, only the signature fails to verify).
fn corrupt(file: &Path, names: &[String]) -> Result<(), Error> {
    let text = std::fs::read_to_string(file).map_err(Error::io("signed zone file"))?;
    let names: BTreeSet<String> = names.iter().map(|n| format!("{}.", key(n))).collect();
    let mut hit = BTreeSet::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // owner ttl class RRSIG covered alg labels ttl expiry inception tag signer signature…
        let is_target =
            fields.len() > 12 && fields[3] == "RRSIG" && names.contains(&fields[0].to_lowercase());
        if !is_target {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        hit.insert(fields[0].to_lowercase());
        let sig = fields[12];
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let mut changed: Vec<String> = fields.iter().map(|f| (*f).to_string()).collect();
        changed[12] = format!("{flipped}{}", &sig[1..]);
        out.push_str(&changed.join(" "));
        out.push('\n');
    }
    if let Some(missing) = names.iter().find(|n| !hit.contains(*n)) {
        return Err(Error::Config(format!(
            "broken name `{missing}` has no records to sign, so nothing to break"
        )));
    }
    std::fs::write(file, out).map_err(Error::io("signed zone file"))
}

fn run<S: AsRef<std::ffi::OsStr>>(dir: &Path, program: &str, args: &[S]) -> Result<String, Error> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            Error::Io(format!(
                "running {program} (Debian package bind9-utils): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Io(format!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Zone-file text of the record types the lab publishes.
fn presentation(r: &RData) -> Result<String, String> {
    let name = |n: &hickory_proto::rr::Name| {
        let s = n.to_ascii();
        if s.ends_with('.') { s } else { format!("{s}.") }
    };
    Ok(match r {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::CNAME(c) => name(&c.0),
        RData::MX(mx) => format!("{} {}", mx.preference(), name(mx.exchange())),
        RData::TXT(txt) => txt
            .txt_data()
            .iter()
            .map(|s| quoted(s))
            .collect::<Vec<_>>()
            .join(" "),
        RData::TLSA(t) => {
            let hex: String = t.cert_data().iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{} {} {} {hex}",
                u8::from(t.cert_usage()),
                u8::from(t.selector()),
                u8::from(t.matching())
            )
        }
        other => {
            return Err(format!(
                "type {} cannot be signed by the lab",
                other.record_type()
            ));
        }
    })
}

/// A character-string in zone-file syntax: quoted, `"` and `\` escaped, other bytes outside
/// printable ASCII as `\DDD`.
fn quoted(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(char::from(b));
            }
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\{b:03}");
            }
        }
    }
    s.push('"');
    s
}

/// NSD serving signed zone files; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Nsd {
    child: Child,
    addr: SocketAddr,
}

impl Nsd {
    /// Starts `nsd` (Debian package `nsd`) in the foreground on `addr`, files under `dir`.
    pub fn start(addr: SocketAddr, zones: &[(String, PathBuf)], dir: &Path) -> Result<Self, Error> {
        let d = dir.display();
        let mut conf = format!(
            "server:\n  ip-address: {}@{}\n  username: \"\"\n  chroot: \"\"\n  server-count: 1\n\
             \x20 zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  zonelistfile: \"{d}/zone.list\"\n\
             \x20 xfrdfile: \"{d}/xfrd.state\"\n  database: \"\"\n  logfile: \"{d}/nsd.log\"\n\
             \x20 hide-version: yes\n  verbosity: 1\nremote-control:\n  control-enable: no\n",
            addr.ip(),
            addr.port()
        );
        for (apex, file) in zones {
            let _ = write!(
                conf,
                "zone:\n  name: \"{apex}.\"\n  zonefile: \"{}\"\n",
                file.display()
            );
        }
        let conf_file = dir.join("nsd.conf");
        std::fs::write(&conf_file, conf).map_err(Error::io("nsd config"))?;
        let (child, exited) = crate::unbound::spawn_listening("nsd", &conf_file, addr, dir)?;
        // Built first so that dropping it reaps the child on the error path too.
        let nsd = Self { child, addr };
        match exited {
            Some(why) => Err(Error::Io(format!("nsd exited: {why}"))),
            None => Ok(nsd),
        }
    }

    /// Where it answers.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id (`mtasts lab down` stops it by this if the lab itself was killed).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        // SIGTERM lets nsd stop its server and xfrd children; SIGKILL would orphan them.
        crate::unbound::terminate(&mut self.child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::TXT;

    #[test]
    fn character_strings_are_quoted_and_escaped() {
        let txt = RData::TXT(TXT::from_bytes(vec![
            b"v=STSv1; id=\"x\\".as_slice(),
            b"\x01",
        ]));
        assert_eq!(
            presentation(&txt).as_deref(),
            Ok(r#""v=STSv1; id=\"x\\" "\001""#)
        );
    }

    #[test]
    fn zones_that_cannot_chain_to_the_lab_root_are_refused_before_signing() {
        let dir = std::env::temp_dir().join(format!("mtasts-dnssec-unit-{}", std::process::id()));
        let records = BTreeMap::new();
        let ip = Ipv4Addr::LOCALHOST;
        let refused = |zone: SignedZone| match sign(&records, &[zone], ip, ip, &dir) {
            Err(Error::Config(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(SignedZone::new("example.org")).contains("below `test.`"));
        assert!(refused(SignedZone::new("a.b.test")).contains("child of `test.`"));
        let broken = SignedZone {
            broken: vec!["mx.other.test".into()],
            ..SignedZone::new("d.test")
        };
        assert!(refused(broken).contains("not in the zone"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_are_placed_under_the_right_apex() {
        assert!(under("mx1.dane.test", "dane.test"));
        assert!(under("dane.test", "dane.test"));
        assert!(!under("xdane.test", "dane.test"));
    }
}
