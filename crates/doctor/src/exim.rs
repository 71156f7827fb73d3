//! The rules for Exim: the routers and transports of docs/exim.md are in its configuration,
//! the lookup router comes before the ordinary DNS router, and `MTASTS_ANSWERS` is where the
//! daemon answers Exim.

use mtasts_daemon::ListenAddr;

use crate::probe::{Endpoint, ProbeError};
use crate::{Finding, Level};

const AREA: &str = "exim";
const ROUTERS: [&str; 4] = [
    "mtasts_lookup",
    "mtasts_defer",
    "mtasts_enforce",
    "mtasts_dane",
];
const TRANSPORTS: [&str; 3] = [
    "mtasts_enforce_smtp",
    "mtasts_dane_smtp",
    "mtasts_opportunistic_smtp",
];
/// The snippets' default when `MTASTS_ANSWERS` is not set.
pub const DEFAULT_ANSWERS: &str = "inet:127.0.0.1:8462";

/// A parsed configuration: the router names in order with their drivers, the transports,
/// and the `MTASTS_ANSWERS` macro.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EximConfig {
    /// `(name, driver)` of each router, in order.
    pub routers: Vec<(String, String)>,
    /// Transport names.
    pub transports: Vec<String>,
    /// The value `MTASTS_ANSWERS` is given (the first definition).
    pub answers: Option<String>,
}

/// Reads Exim's configuration text (plain `exim4.conf` or Debian's conf.d files joined in
/// order).
pub fn parse(text: &str) -> EximConfig {
    let mut c = EximConfig::default();
    let mut section = "";
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix("begin ") {
            section = match s.trim() {
                "routers" => "routers",
                "transports" => "transports",
                _ => "other",
            };
            current = None;
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == "MTASTS_ANSWERS"
            && c.answers.is_none()
        {
            c.answers = Some(v.trim().to_string());
            continue;
        }
        // A driver instance starts with `name:` alone on its line, unindented.
        let unindented = !raw.starts_with([' ', '\t']);
        if unindented && let Some(name) = line.strip_suffix(':') {
            if !name.contains(char::is_whitespace) {
                match section {
                    "routers" => c.routers.push((name.to_string(), String::new())),
                    "transports" => c.transports.push(name.to_string()),
                    _ => {}
                }
                current = Some(name.to_string());
            }
            continue;
        }
        if section == "routers"
            && current.is_some()
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "driver"
            && let Some(last) = c.routers.last_mut()
        {
            last.1 = v.trim().to_string();
        }
    }
    c
}

/// Where `MTASTS_ANSWERS` points, as an endpoint.
pub fn answers_endpoint(answers: &str) -> Option<Endpoint> {
    if let Some(a) = answers.strip_prefix("inet:") {
        Some(Endpoint::Tcp(a.to_string()))
    } else {
        answers
            .strip_prefix("unix:")
            .or_else(|| answers.starts_with('/').then_some(answers))
            .map(|p| Endpoint::Unix(p.into()))
    }
}

fn same(ep: &Endpoint, l: &ListenAddr) -> bool {
    match (ep, l) {
        (Endpoint::Tcp(a), ListenAddr::Tcp(s)) => a.parse() == Ok(*s),
        (Endpoint::Unix(p), ListenAddr::Unix(q)) => p == q,
        _ => false,
    }
}

/// The findings for `config`, the daemon's `exim_listen`, and a probe of `MTASTS_ANSWERS`.
pub fn findings(
    config: &EximConfig,
    exim_listen: &[ListenAddr],
    probe: Option<&Result<(), ProbeError>>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let missing: Vec<&str> = ROUTERS
        .iter()
        .copied()
        .filter(|r| !config.routers.iter().any(|(n, _)| n == r))
        .chain(
            TRANSPORTS
                .iter()
                .copied()
                .filter(|t| !config.transports.iter().any(|n| n == t)),
        )
        .collect();
    if missing.is_empty() {
        out.push(Finding::new(
            AREA,
            "snippets",
            Level::Ok,
            "the mtasts routers and transports are configured".into(),
        ));
    } else {
        out.push(
            Finding::new(
                AREA,
                "snippets-missing",
                Level::Error,
                format!(
                    "not in Exim's configuration: {}; Exim delivers without MTA-STS",
                    missing.join(", ")
                ),
            )
            .fix("include dist/exim/main.conf, routers.conf and transports.conf as docs/exim.md says"),
        );
        return out;
    }
    let lookup = config
        .routers
        .iter()
        .position(|(n, _)| n == "mtasts_lookup");
    let first_dns = config
        .routers
        .iter()
        .position(|(n, d)| d == "dnslookup" && !n.starts_with("mtasts_"));
    if let (Some(l), Some(d)) = (lookup, first_dns)
        && d < l
    {
        out.push(
            Finding::new(
                AREA,
                "router-order",
                Level::Error,
                format!(
                    "router {} (dnslookup) comes before mtasts_lookup: it routes remote mail first, so MTA-STS is never applied",
                    config.routers[d].0
                ),
            )
            .fix("put the mtasts routers before the dnslookup router (Debian: conf.d/router/190_mtasts sorts before 200_exim4-config_primary)"),
        );
    }
    let answers = config.answers.as_deref().unwrap_or(DEFAULT_ANSWERS);
    let Some(ep) = answers_endpoint(answers) else {
        out.push(Finding::new(
            AREA,
            "answers-unparsable",
            Level::Error,
            format!("MTASTS_ANSWERS = {answers} is neither inet:HOST:PORT nor unix:PATH"),
        ));
        return out;
    };
    if exim_listen.is_empty() {
        out.push(
            Finding::new(
                AREA,
                "daemon-not-answering-exim",
                Level::Error,
                format!(
                    "MTASTS_ANSWERS = {answers}, but the daemon's configuration has no exim_listen: every message defers"
                ),
            )
            .fix(format!(
                "exim_listen = [\"{}\"] in the daemon's configuration",
                answers.trim_start_matches("inet:")
            )),
        );
    } else if !exim_listen.iter().any(|l| same(&ep, l)) {
        out.push(
            Finding::new(
                AREA,
                "answers-mismatch",
                Level::Error,
                format!(
                    "MTASTS_ANSWERS = {answers} is not one of the daemon's exim_listen ({})",
                    exim_listen
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .fix("make MTASTS_ANSWERS and exim_listen name the same address"),
        );
    }
    match probe {
        Some(Ok(())) => out.push(Finding::new(
            AREA,
            "answers",
            Level::Ok,
            format!("something listens at MTASTS_ANSWERS = {answers}"),
        )),
        Some(Err(e)) => out.push(
            Finding::new(
                AREA,
                "answers-unreachable",
                Level::Error,
                format!(
                    "MTASTS_ANSWERS = {answers}: {}; Exim defers every remote message",
                    mtasts_core::errors::Chain(e)
                ),
            )
            .fix("start mtasts daemon with exim_listen set"),
        ),
        None => {}
    }
    out
}

/// With remembered TLS on in the daemon's `exim` zone, Exim needs the `mtasts_encrypt` router
/// and transport: without them a `mode="encrypt"` answer matches no mtasts router and the
/// mail goes out as Exim's default, TLS not required.
pub fn remembered_findings(config: &EximConfig, remembering: bool) -> Vec<Finding> {
    if !remembering {
        return Vec::new();
    }
    let router = config.routers.iter().any(|(n, _)| n == "mtasts_encrypt");
    let transport = config.transports.iter().any(|t| t == "mtasts_encrypt_smtp");
    if router && transport {
        return vec![Finding::new(
            AREA,
            "encrypt-route",
            Level::Ok,
            "remember_tls is on for Exim and the mtasts_encrypt router and transport are there"
                .into(),
        )];
    }
    vec![
        Finding::new(
            AREA,
            "encrypt-route-missing",
            Level::Error,
            "remember_tls is on in the daemon's exim zone, but Exim's configuration has no mtasts_encrypt router and transport: a remembered domain's mail goes out without TLS required".into(),
        )
        .fix("update the snippets from dist/exim/ (routers.conf and transports.conf)"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../dist/exim")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn listen() -> [ListenAddr; 1] {
        [ListenAddr::Tcp(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            8462,
        )))]
    }

    #[test]
    fn the_shipped_snippets_in_a_plain_configuration_pass() {
        let text = format!(
            "primary_hostname = x\n{}\nbegin routers\n{}\ndnslookup:\n  driver = dnslookup\n  transport = remote_smtp\nbegin transports\n{}\nremote_smtp:\n  driver = smtp\n",
            dist("main.conf"),
            dist("routers.conf"),
            dist("transports.conf"),
        );
        let c = parse(&text);
        assert_eq!(c.answers.as_deref(), Some(DEFAULT_ANSWERS), "{c:?}");
        assert!(
            c.routers
                .iter()
                .any(|(n, d)| n == "mtasts_enforce" && d == "manualroute")
        );
        let f = findings(&c, &listen(), Some(&Ok(())));
        assert!(f.iter().all(|f| f.level == Level::Ok), "{f:?}");
        // No exim_listen in the daemon: an error naming the setting.
        let f = findings(&c, &[], None);
        assert!(f.iter().any(|f| f.code == "daemon-not-answering-exim"));
    }

    #[test]
    fn remembered_tls_needs_the_encrypt_route() {
        let with = parse(&format!(
            "begin routers\n{}\nbegin transports\n{}",
            dist("routers.conf"),
            dist("transports.conf")
        ));
        assert!(remembered_findings(&with, false).is_empty());
        assert_eq!(remembered_findings(&with, true)[0].code, "encrypt-route");
        let old = parse(&format!(
            "begin routers\n{}\nbegin transports\n{}",
            dist("routers.conf").replace("mtasts_encrypt:", "something_else:"),
            dist("transports.conf")
        ));
        assert_eq!(
            remembered_findings(&old, true)[0].code,
            "encrypt-route-missing"
        );
    }

    #[test]
    fn a_dnslookup_router_before_the_lookup_router_is_an_error() {
        let (routers, transports) = (dist("routers.conf"), dist("transports.conf"));
        let text = format!(
            "begin routers\ndnslookup:\n  driver = dnslookup\n{routers}\nbegin transports\n{transports}"
        );
        let c = parse(&text);
        let f = findings(&c, &listen(), None);
        assert!(f.iter().any(|f| f.code == "router-order"), "{f:?}");
        let f = findings(
            &parse("begin routers\ndnslookup:\n driver = dnslookup\n"),
            &listen(),
            None,
        );
        assert_eq!(f[0].code, "snippets-missing");
        assert!(f[0].message.contains("mtasts_lookup"));
    }
}
