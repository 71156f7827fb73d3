//! What Postfix's own log says about TLS, for remembered TLS on Postfix before 3.10 (which has
//! no TLSRPT results): `smtp(8)` logs `Verified|Trusted|Untrusted|Anonymous TLS connection
//! established to HOST[IP]:PORT: …` when a session starts TLS, then one `QUEUEID: to=<…>,
//! relay=HOST[IP]:PORT, … status=sent (…)` per recipient. A delivery is over TLS when the same
//! `smtp` process announced TLS to that relay for that message; a plaintext session announces
//! nothing. Postfix caches only plaintext connections (TLS connection reuse is off by
//! default, `smtp_tls_connection_reuse = no`), so a second message on a connection without a
//! new TLS line went in plaintext.

use std::collections::HashMap;

use crate::domain::DomainName;
use crate::remember::Seen;

/// One delivery read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The recipient's domain.
    pub domain: DomainName,
    /// The relay as logged, `host[ip]:port`.
    pub relay: String,
    /// Whether it went over TLS.
    pub seen: Seen,
}

/// A TLS session the process has open: the relay and the message it carries (set at the
/// first delivery on it).
#[derive(Debug, Clone)]
struct Session {
    relay: String,
    queue_id: Option<String>,
}

/// Reads log lines in order and says which were deliveries, over TLS or not.
#[derive(Debug, Default)]
pub struct Follower {
    /// By `smtp` process id.
    tls: HashMap<u32, Session>,
}

/// The process id of a `postfix…/smtp[PID]: ` line and the text after it.
fn smtp_line(line: &str) -> Option<(u32, &str)> {
    let at = line.find("/smtp[")?;
    let rest = &line[at + "/smtp[".len()..];
    let (pid, rest) = rest.split_once("]: ")?;
    Some((pid.parse().ok()?, rest))
}

/// `HOST[IP]:PORT` at the start of `text`, up to the `:` before the next field or the end.
fn relay_of(text: &str) -> Option<&str> {
    let close = text.find(']')?;
    let rest = &text[close + 1..];
    let port_len = rest
        .strip_prefix(':')
        .map(|p| 1 + p.bytes().take_while(u8::is_ascii_digit).count())
        .unwrap_or(0);
    Some(&text[..close + 1 + port_len])
}

impl Follower {
    /// A new follower.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one line; a delivery if it was one (`status=sent` with a relay).
    pub fn line(&mut self, line: &str) -> Option<Delivery> {
        let (pid, text) = smtp_line(line)?;
        for kind in ["Verified", "Trusted", "Untrusted", "Anonymous"] {
            if let Some(rest) = text
                .strip_prefix(kind)
                .and_then(|r| r.strip_prefix(" TLS connection established to "))
            {
                let relay = relay_of(rest)?.to_string();
                self.tls.insert(
                    pid,
                    Session {
                        relay,
                        queue_id: None,
                    },
                );
                return None;
            }
        }
        let (queue_id, fields) = text.split_once(": to=<")?;
        if !fields.contains(", status=sent ") {
            return None;
        }
        let (recipient, fields) = fields.split_once(">, ")?;
        let domain = DomainName::parse(recipient.rsplit_once('@')?.1).ok()?;
        let relay = fields
            .split(", ")
            .find_map(|f| f.strip_prefix("relay="))
            .and_then(relay_of)?
            .to_string();
        let tls = match self.tls.get_mut(&pid) {
            Some(s) if s.relay == relay => match &s.queue_id {
                None => {
                    s.queue_id = Some(queue_id.to_string());
                    true
                }
                Some(q) => q == queue_id,
            },
            _ => false,
        };
        Some(Delivery {
            domain,
            relay,
            seen: if tls { Seen::Tls } else { Seen::Plaintext },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &str) -> Vec<(String, Seen)> {
        let mut f = Follower::new();
        lines
            .lines()
            .filter_map(|l| f.line(l))
            .map(|d| (d.domain.to_string(), d.seen))
            .collect()
    }

    #[test]
    fn tls_and_plaintext_deliveries_are_told_apart_by_process_and_message() {
        let log = "\
Dec  3 13:40:01 sender postfix/smtp[101]: Verified TLS connection established to mx1.a.test[127.1.0.5]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
Dec  3 13:40:01 sender postfix/smtp[101]: 4B2C1D0A1: to=<u@a.test>, relay=mx1.a.test[127.1.0.5]:25, delay=0.1, delays=0.01/0/0.05/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Dec  3 13:40:01 sender postfix/smtp[101]: 4B2C1D0A1: to=<v@a.test>, relay=mx1.a.test[127.1.0.5]:25, delay=0.1, delays=0.01/0/0.05/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Dec  3 13:40:02 sender postfix/smtp[102]: 5C3D2E0B2: to=<u@b.test>, relay=mx1.b.test[127.1.0.9]:25, delay=0.1, delays=0.01/0/0.05/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Dec  3 13:40:03 sender postfix/smtp[101]: 6D4E3F0C3: to=<w@a.test>, relay=mx1.a.test[127.1.0.5]:25, delay=0.1, delays=0.01/0/0.05/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Dec  3 13:40:04 sender postfix/smtp[103]: Anonymous TLS connection established to mx1.c.test[127.1.0.11]:25: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)
Dec  3 13:40:04 sender postfix/smtp[103]: 7E5F4A0D4: to=<u@c.test>, relay=mx1.c.test[127.1.0.11]:25, delay=5, delays=0.01/0/4/1, dsn=4.0.0, status=deferred (host mx1.c.test[127.1.0.11] said: 451 try later)
Dec  3 13:40:05 sender postfix/smtp[103]: 7E5F4A0D4: to=<u@c.test>, relay=none, delay=5, status=deferred (connect to mx1.c.test[127.1.0.11]:25: Connection refused)
";
        assert_eq!(
            run(log),
            [
                ("a.test".to_string(), Seen::Tls),
                ("a.test".to_string(), Seen::Tls),
                ("b.test".to_string(), Seen::Plaintext),
                // Same process and relay, another message, no new TLS line: a cached
                // plaintext connection.
                ("a.test".to_string(), Seen::Plaintext),
            ]
        );
    }

    #[test]
    fn other_lines_are_not_deliveries() {
        for line in [
            "",
            "garbage",
            "Dec  3 13:40:01 sender postfix/smtpd[9]: connect from localhost[127.0.0.1]",
            "Dec  3 13:40:01 sender postfix/smtp[x]: 1: to=<u@a.test>, relay=h[1.2.3.4]:25, status=sent (ok)",
            "Dec  3 13:40:01 sender postfix/smtp[7]: 1: to=<nodomain>, relay=h[1.2.3.4]:25, status=sent (ok)",
            "Dec  3 13:40:01 sender postfix/smtp[7]: Verified TLS connection established to nowhere",
        ] {
            assert_eq!(Follower::new().line(line), None, "{line}");
        }
    }
}
