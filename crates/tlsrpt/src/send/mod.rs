//! The sending side's reports (RFC 8460 §4–5): each ended UTC day's counted sessions become
//! one report per (policy domain, TLS-RPT record), built once after a per-domain delay and
//! stored with a delivery per `rua` URI; deliveries are tried, retried with back-off and
//! given up after the retry window ([`mtasts_core::delivery`]).
//!
//! The `rua` comes from the TLS-RPT record the MTA saw when it reported the sessions
//! (libtlsrpt passes it with each datagram, as tlsrpt-reporter uses it); results without one
//! are reported to the record found at `_smtp._tls.<domain>` when the report is built.

pub mod config;
pub mod https;
pub mod mail;

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use mtasts_core::UnixTime;
use mtasts_core::delivery::AfterFailure;
use mtasts_core::session::{DomainDay, ReportMeta, day_start, render_report, report_filename};
use mtasts_resolver::{Dns, TxtAnswer};

pub use config::{ConfigError, SendConfig};
use mail::{MailSendError, ReportMessage, SigningKey};

use crate::store::{DbError, Delivery, DeliveryState, NewOutgoing, ReportDb};

/// Why a run could not go on (a single delivery failing is not this: it is retried).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("the report store")]
    /// The store failed.
    Db(#[source] DbError),
    #[error("`{0}` is not a UTC day (YYYY-MM-DD)")]
    /// `--day` is not a day.
    BadDay(String),
    #[error("the UTC day {0} has not ended yet; a report covers a whole day (RFC 8460 §4.1)")]
    /// `--day` is today or later.
    DayNotEnded(String),
    #[error("the HTTPS client")]
    /// The HTTPS client could not be set up.
    Https(#[source] https::PostError),
    #[error("the DKIM key")]
    /// The DKIM key is unusable.
    Dkim(#[source] ConfigError),
    #[error("a store task failed: {0}")]
    /// A blocking task panicked or was cancelled.
    Task(String),
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    #[error(transparent)]
    /// By HTTPS.
    Https(#[from] https::PostError),
    #[error(transparent)]
    /// By mail.
    Mail(#[from] MailSendError),
    #[error("`{0}`: only mailto: and https: rua URIs are used (TRT-06)")]
    /// Another scheme.
    Scheme(String),
}

/// A day's report of one (domain, record), as built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The UTC day.
    pub day: String,
    /// The policy domain.
    pub domain: String,
    /// The TLS-RPT record its sessions were counted under (may be empty).
    pub tlsrpt_record: String,
    /// `report-id`.
    pub report_id: String,
    /// The §5.1 file name (`.json.gz`).
    pub filename: String,
    /// The JSON.
    pub json: String,
}

/// Where a built report goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rua {
    /// These URIs.
    Uris(Vec<String>),
    /// Nowhere: the domain has no usable TLS-RPT record (why). Kept, not sent.
    None(String),
    /// Not known yet: the lookup failed for now (why); built on the next run.
    Later(String),
}

/// What one run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Reports built: the report and where it goes.
    pub built: Vec<(Rendered, Rua)>,
    /// (day, domain, due at): reports whose delay has not passed yet.
    pub waiting: Vec<(String, String, UnixTime)>,
    /// Delivery attempts made: the delivery as stored after the attempt, and how it went
    /// (`Ok(how)` delivered).
    pub attempts: Vec<(Delivery, Result<String, String>)>,
}

/// Builds and delivers reports.
#[derive(Debug)]
pub struct Sender<D> {
    config: SendConfig,
    dns: Arc<D>,
    poster: https::Poster,
    key: Option<SigningKey>,
}

fn digest(text: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `report-id`: unique per (day, domain, record), readable, and a valid msg-id for the
/// Subject's `<…>` (MAIL-05): `2026-11-30.example.com.1a2b3c4d@mail.example.net`.
pub fn report_id(day: &str, domain: &str, record: &str, submitter: &str) -> String {
    let h = digest(record);
    format!(
        "{day}.{domain}.{:02x}{:02x}{:02x}{:02x}@{submitter}",
        h[0], h[1], h[2], h[3]
    )
}

/// A number spreading domains over the delay after midnight (JSON-10).
fn spread(domain: &str) -> u64 {
    let h = digest(domain);
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

/// `json` gzipped (DLV-02).
pub fn gzip(json: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(json);
    enc.finish().unwrap_or_default()
}

async fn with_db<T, F>(db: &Arc<Mutex<ReportDb>>, f: F) -> Result<T, SendError>
where
    T: Send + 'static,
    F: FnOnce(&mut ReportDb) -> Result<T, DbError> + Send + 'static,
{
    crate::store::blocking(db, f)
        .await
        .map_err(|e| SendError::Task(e.to_string()))?
        .map_err(SendError::Db)
}

/// The UTC day of `t`.
pub fn day_of(t: UnixTime) -> String {
    crate::collect::utc_day(t)
}

impl<D: Dns> Sender<D> {
    /// A sender for `config`, looking up `rua` records and HTTPS hosts through `dns`.
    pub fn new(config: SendConfig, dns: Arc<D>) -> Result<Self, SendError> {
        let poster = https::Poster::new(&config.https).map_err(SendError::Https)?;
        let key = config
            .dkim
            .as_ref()
            .map(SigningKey::from_config)
            .transpose()
            .map_err(SendError::Dkim)?;
        Ok(Self {
            config,
            dns,
            poster,
            key,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SendConfig {
        &self.config
    }

    /// The report of `counts`, the sessions of (`domain`, `record`) on `day`.
    pub fn render(&self, day: &str, domain: &str, record: &str, counts: &DomainDay) -> Rendered {
        let start = day_start(day).unwrap_or(0);
        let id = report_id(day, domain, record, &self.config.submitter);
        let meta = ReportMeta {
            organization: &self.config.organization,
            contact_info: &self.config.contact,
            report_id: &id,
            day_start: start,
        };
        let json = render_report(&meta, counts);
        Rendered {
            day: day.to_string(),
            domain: domain.to_string(),
            tlsrpt_record: record.to_string(),
            filename: report_filename(
                &self.config.submitter,
                domain,
                start,
                start + mtasts_core::delivery::DAY - 1,
                None,
                true,
            ),
            report_id: id,
            json,
        }
    }

    /// Where reports about `domain` go: `record` (as the MTA saw it) or, when empty, the
    /// record at `_smtp._tls.<domain>` (TRT-01, TRT-03, TRT-06).
    pub async fn rua(&self, domain: &str, record: &str) -> Rua {
        use mtasts_core::tlsrpt::{parse_tlsrpt, select_tlsrpt};
        let parsed = if record.is_empty() {
            match self.dns.txt(&format!("_smtp._tls.{domain}")).await {
                Ok(TxtAnswer::Records(rrset)) => {
                    select_tlsrpt(&rrset).map_err(|e| mtasts_core::errors::Chain(&e).to_string())
                }
                Ok(TxtAnswer::NxDomain | TxtAnswer::NoData) => {
                    return Rua::None(format!("no TXT record at _smtp._tls.{domain}"));
                }
                Err(e) => {
                    return Rua::Later(format!(
                        "looking up _smtp._tls.{domain}: {}",
                        mtasts_core::errors::Chain(&e)
                    ));
                }
            }
        } else {
            parse_tlsrpt(record.as_bytes()).map_err(|e| mtasts_core::errors::Chain(&e).to_string())
        };
        match parsed {
            Ok(r) => Rua::Uris(r.usable),
            Err(why) => Rua::None(why),
        }
    }

    /// Builds the reports due at `now` (or all of `day`, delay or not), stores them with
    /// their deliveries, then tries every delivery due. `dry_run`: builds and returns the
    /// reports without storing or delivering anything.
    pub async fn run(
        &self,
        db: &Arc<Mutex<ReportDb>>,
        now: UnixTime,
        day: Option<&str>,
        dry_run: bool,
    ) -> Result<RunSummary, SendError> {
        let today = day_of(now);
        let days = match day {
            Some(d) => {
                if day_start(d).is_none() {
                    return Err(SendError::BadDay(d.to_string()));
                }
                if *d >= *today.as_str() {
                    return Err(SendError::DayNotEnded(d.to_string()));
                }
                vec![d.to_string()]
            }
            None => with_db(db, |db| db.session_days())
                .await?
                .into_iter()
                .filter(|d| *d < today)
                .collect(),
        };
        let mut summary = RunSummary::default();
        for d in days {
            let (counts, built) = {
                let d = d.clone();
                with_db(db, move |db| {
                    Ok((db.session_day(&d)?, db.outgoing_keys(&d)?))
                })
                .await?
            };
            for ((domain, record), day_counts) in counts {
                if built.contains(&(domain.clone(), record.clone())) {
                    continue;
                }
                let due = self
                    .config
                    .schedule
                    .build_at(day_start(&d).unwrap_or(0), spread(&domain));
                if day.is_none() && now < due {
                    summary.waiting.push((d.clone(), domain, due));
                    continue;
                }
                let rendered = self.render(&d, &domain, &record, &day_counts);
                let rua = self.rua(&domain, &record).await;
                if !dry_run {
                    self.store(db, &rendered, &rua, now).await?;
                }
                summary.built.push((rendered, rua));
            }
        }
        if !dry_run {
            summary.attempts = self.deliver_due(db, now).await?;
        }
        Ok(summary)
    }

    async fn store(
        &self,
        db: &Arc<Mutex<ReportDb>>,
        r: &Rendered,
        rua: &Rua,
        now: UnixTime,
    ) -> Result<(), SendError> {
        let uris = match rua {
            Rua::Uris(u) => u.clone(),
            Rua::None(why) => {
                tracing::info!(domain = %r.domain, day = %r.day, why = %why,
                    "tlsrpt send: report kept, not sent: the domain has no usable TLS-RPT record");
                Vec::new()
            }
            Rua::Later(why) => {
                tracing::warn!(domain = %r.domain, day = %r.day, why = %why,
                    "tlsrpt send: report not built yet, its rua is unknown for now");
                return Ok(());
            }
        };
        let r = r.clone();
        with_db(db, move |db| {
            db.add_outgoing(&NewOutgoing {
                day: &r.day,
                domain: &r.domain,
                tlsrpt_record: &r.tlsrpt_record,
                report_id: &r.report_id,
                filename: &r.filename,
                json: r.json.as_bytes(),
                created_at: now,
                rua: &uris,
                due: now,
            })
        })
        .await?;
        Ok(())
    }

    /// Tries every delivery due at `now` and records each outcome.
    pub async fn deliver_due(
        &self,
        db: &Arc<Mutex<ReportDb>>,
        now: UnixTime,
    ) -> Result<Vec<(Delivery, Result<String, String>)>, SendError> {
        let due = with_db(db, move |db| db.due_deliveries(now)).await?;
        let mut out = Vec::with_capacity(due.len());
        for mut d in due {
            let outcome = self
                .deliver(&d, now)
                .await
                .map_err(|e| mtasts_core::errors::Chain(&e).to_string());
            let first = *d.first_attempt.get_or_insert(now);
            d.attempts = d.attempts.saturating_add(1);
            match &outcome {
                Ok(how) => {
                    d.state = DeliveryState::Delivered;
                    d.last_error = None;
                    tracing::info!(domain = %d.domain, report_id = %d.report_id, uri = %d.uri, how = %how,
                        "tlsrpt send: report delivered");
                }
                Err(e) => {
                    d.last_error = Some(e.clone());
                    match self.config.schedule.after_failure(first, d.attempts, now) {
                        AfterFailure::RetryAt(at) => {
                            d.next_attempt = at;
                            tracing::warn!(domain = %d.domain, report_id = %d.report_id, uri = %d.uri,
                                error = %e, retry_at = at, "tlsrpt send: delivery failed, will retry");
                        }
                        AfterFailure::GiveUp => {
                            d.state = DeliveryState::GaveUp;
                            tracing::error!(domain = %d.domain, report_id = %d.report_id, uri = %d.uri,
                                error = %e, attempts = d.attempts, "tlsrpt send: delivery given up (RETRY-01)");
                        }
                    }
                }
            }
            let stored = d.clone();
            with_db(db, move |db| db.update_delivery(&stored)).await?;
            out.push((d, outcome));
        }
        Ok(out)
    }

    /// One attempt of one delivery; `Ok` says how it went.
    pub async fn deliver(&self, d: &Delivery, now: UnixTime) -> Result<String, DeliverError> {
        let gzipped = gzip(&d.json);
        let scheme = d
            .uri
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "https" => {
                let posted = self
                    .poster
                    .post(self.dns.as_ref(), &d.uri, &gzipped)
                    .await?;
                Ok(if posted.unvalidated {
                    format!(
                        "HTTP {} (certificate not valid, sent anyway: HTTP-03)",
                        posted.status
                    )
                } else {
                    format!("HTTP {}", posted.status)
                })
            }
            "mailto" => {
                let to = mail::mailto_addresses(&d.uri)?;
                let (Some(mail), Some(dkim), Some(key)) =
                    (&self.config.mail, &self.config.dkim, &self.key)
                else {
                    return Err(MailSendError::NotConfigured.into());
                };
                let message = mail::compose(
                    &ReportMessage {
                        from: &mail.from,
                        to: &to,
                        policy_domain: &d.domain,
                        submitter: &self.config.submitter,
                        report_id: &d.report_id,
                        day: &d.day,
                        filename: &d.filename,
                        gzipped: &gzipped,
                        date: now,
                    },
                    dkim,
                    key,
                )?;
                mail::submit(mail, &self.config.submitter, &to, &message).await?;
                Ok(format!(
                    "submitted to {} for {}",
                    mail.server,
                    to.join(", ")
                ))
            }
            _ => Err(DeliverError::Scheme(d.uri.clone())),
        }
    }
}
