//! Delegated DNS (RFC 8461 §8.2): an authoritative listener for one zone answering the
//! `_mta-sts` TXT of every served domain at `_mta-sts.<domain>.<zone>`. A customer sets
//! `_mta-sts.<domain> CNAME _mta-sts.<domain>.<zone>` and `mta-sts.<domain> CNAME <policy
//! host>` once; every later policy change (a new id) needs no DNS edit by anyone. The id and
//! the policy come from the same loaded sites, swapped at once on reload, so a sender that
//! sees a new id fetches the new policy.
//!
//! hickory's server crate does the transport (UDP and TCP); what to answer is decided by
//! [`answer`], a pure function.

use std::sync::Arc;

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

use mtasts_core::cache::UnixTime;

use crate::server::Server;
use crate::sites::Sites;

/// TTL of the TXT answers: short, so a new id is seen soon after a change.
pub const TTL: u32 = 300;

/// What to send back for one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The response code.
    pub code: ResponseCode,
    /// Whether we are authoritative for the name (inside the zone).
    pub authoritative: bool,
    /// Answer records.
    pub answers: Vec<Record>,
    /// The zone's SOA, for negative answers (RFC 2308).
    pub soa: Option<Record>,
}

/// The zone's SOA record (serial: the number of sites and a hash would do; a constant is
/// enough since secondaries are not expected).
fn soa(zone: &Name) -> Record {
    let mname = Name::from_ascii("ns")
        .and_then(|n| n.append_domain(zone))
        .unwrap_or_else(|_| zone.clone());
    let rname = Name::from_ascii("hostmaster")
        .and_then(|n| n.append_domain(zone))
        .unwrap_or_else(|_| zone.clone());
    Record::from_rdata(
        zone.clone(),
        TTL,
        RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 604_800, TTL)),
    )
}

/// The answer for `qname`/`qtype` in `zone`, from `sites`, at `now`. A retired domain whose
/// retirement is complete (RFC 8461 §8.3) has no TXT any more: the delegated record is the
/// one we can remove ourselves.
pub fn answer(
    zone: &Name,
    sites: &Sites,
    qname: &Name,
    qtype: RecordType,
    now: UnixTime,
) -> Answer {
    if !zone.zone_of(qname) {
        return Answer {
            code: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            soa: None,
        };
    }
    let negative = |code| Answer {
        code,
        authoritative: true,
        answers: Vec::new(),
        soa: Some(soa(zone)),
    };
    if qname == zone {
        return match qtype {
            RecordType::SOA => Answer {
                code: ResponseCode::NoError,
                authoritative: true,
                answers: vec![soa(zone)],
                soa: None,
            },
            _ => negative(ResponseCode::NoError),
        };
    }
    // `_mta-sts.<domain>.<zone>`: the labels between `_mta-sts` and the zone are the domain.
    let labels: Vec<String> = qname
        .iter()
        .take(qname.num_labels() as usize - zone.num_labels() as usize)
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    let site = match labels.split_first() {
        Some((first, domain)) if first == "_mta-sts" && !domain.is_empty() => {
            sites.for_host(&format!("mta-sts.{}", domain.join(".")))
        }
        _ => None,
    };
    let Some(site) = site.filter(|s| !s.retiring.is_some_and(|r| r.complete(now))) else {
        return negative(ResponseCode::NXDomain);
    };
    if qtype != RecordType::TXT && qtype != RecordType::ANY {
        return negative(ResponseCode::NoError);
    }
    let txt = format!("v=STSv1; id={};", site.id);
    Answer {
        code: ResponseCode::NoError,
        authoritative: true,
        answers: vec![Record::from_rdata(
            qname.clone(),
            TTL,
            RData::TXT(TXT::new(vec![txt])),
        )],
        soa: None,
    }
}

/// The listener's handler: each question answered from the server's current sites.
#[derive(Debug, Clone)]
pub struct Delegated {
    zone: Name,
    server: Arc<Server>,
}

impl Delegated {
    /// Answers for `zone` (e.g. `sts.provider.example`) from `server`'s sites.
    pub fn new(zone: &str, server: Arc<Server>) -> Result<Self, hickory_proto::ProtoError> {
        let mut zone = Name::from_ascii(zone.trim_end_matches('.'))?;
        zone.set_fqdn(true);
        Ok(Self {
            zone: zone.to_lowercase(),
            server,
        })
    }

    /// The zone.
    pub fn zone(&self) -> &Name {
        &self.zone
    }
}

#[async_trait::async_trait]
impl RequestHandler for Delegated {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let refuse = |code| {
            let mut h = Header::response_from_request(request.header());
            h.set_response_code(code);
            h
        };
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            let h = refuse(ResponseCode::NotImp);
            let _ = response
                .send_response(builder.error_msg(request.header(), ResponseCode::NotImp))
                .await;
            return h.into();
        }
        let Ok(info) = request.request_info() else {
            let h = refuse(ResponseCode::FormErr);
            let _ = response
                .send_response(builder.error_msg(request.header(), ResponseCode::FormErr))
                .await;
            return h.into();
        };
        if info.query.query_class() != DNSClass::IN {
            let h = refuse(ResponseCode::Refused);
            let _ = response
                .send_response(builder.error_msg(request.header(), ResponseCode::Refused))
                .await;
            return h.into();
        }
        let qname: Name = info.query.name().into();
        let sites = self.server.sites();
        let a = answer(
            &self.zone,
            &sites,
            &qname.to_lowercase(),
            info.query.query_type(),
            mtasts_tlsrpt::unix_now(),
        );
        let mut header = Header::response_from_request(request.header());
        header.set_authoritative(a.authoritative);
        header.set_recursion_available(false);
        header.set_response_code(a.code);
        let message = builder.build(header, a.answers.iter(), [], a.soa.iter(), []);
        match response.send_response(message).await {
            Ok(info) => info,
            Err(_) => header.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites() -> (tempdir::Dir, Sites) {
        let dir = tempdir::Dir::new();
        std::fs::write(
            dir.0.join("example.com.txt"),
            "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n",
        )
        .expect("write");
        let sites = Sites::load_dir(&dir.0).expect("sites");
        (dir, sites)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "mtasts-serve-dns-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).expect("dir");
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const NOW: UnixTime = 1_800_000_000;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    #[test]
    fn txt_in_the_zone_nxdomain_for_others_refused_outside() {
        let (_dir, sites) = sites();
        let zone = name("sts.provider.example.");
        let a = answer(
            &zone,
            &sites,
            &name("_mta-sts.example.com.sts.provider.example."),
            RecordType::TXT,
            NOW,
        );
        assert_eq!(a.code, ResponseCode::NoError);
        assert!(a.authoritative);
        let id = sites.iter().next().expect("site").id.clone();
        match a.answers[0].data() {
            RData::TXT(t) => assert_eq!(t.to_string(), format!("v=STSv1; id={id};")),
            other => panic!("{other:?}"),
        }
        let a = answer(
            &zone,
            &sites,
            &name("_mta-sts.example.org.sts.provider.example."),
            RecordType::TXT,
            NOW,
        );
        assert_eq!(a.code, ResponseCode::NXDomain);
        assert!(a.soa.is_some(), "negative answers carry the SOA");
        let a = answer(
            &zone,
            &sites,
            &name("_mta-sts.example.com.sts.provider.example."),
            RecordType::A,
            NOW,
        );
        assert_eq!(
            (a.code, a.answers.len()),
            (ResponseCode::NoError, 0),
            "NODATA"
        );
        let a = answer(&zone, &sites, &name("example.com."), RecordType::TXT, NOW);
        assert_eq!(a.code, ResponseCode::Refused);
        let a = answer(&zone, &sites, &zone, RecordType::SOA, NOW);
        assert_eq!(a.answers.len(), 1);
    }

    #[test]
    fn a_retired_domain_answers_its_none_id_until_removal_is_safe_then_nxdomain() {
        let (dir, _) = sites();
        // Retiring since NOW, the policy's max_age (86400) is the wait.
        std::fs::write(
            dir.0.join("example.com.retire"),
            "since = \"2027-01-15T08:00:00Z\"\n",
        )
        .expect("write");
        let sites = Sites::load_dir(&dir.0).expect("sites");
        assert!(sites.problems.is_empty(), "{:?}", sites.problems);
        let site = sites.iter().next().expect("site");
        assert_eq!(site.policy.mode, mtasts_core::policy::Mode::None);
        let zone = name("sts.provider.example.");
        let q = name("_mta-sts.example.com.sts.provider.example.");
        let a = answer(&zone, &sites, &q, RecordType::TXT, NOW + 86_399);
        assert_eq!(a.code, ResponseCode::NoError);
        match a.answers[0].data() {
            RData::TXT(t) => assert_eq!(t.to_string(), format!("v=STSv1; id={};", site.id)),
            other => panic!("{other:?}"),
        }
        let a = answer(&zone, &sites, &q, RecordType::TXT, NOW + 86_400);
        assert_eq!(a.code, ResponseCode::NXDomain);
    }
}
