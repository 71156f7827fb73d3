//! The report store: every report kept as received (its JSON) beside what was read from it,
//! once per (organisation, report-id); messages that were not reports kept aside. SQLite (one
//! file, the default) or PostgreSQL (a fleet, a provider's volume), with the same tables and
//! the same statements; each backend only binds and reads.

mod postgres;
mod sqlite;

use std::collections::BTreeMap;
use std::path::PathBuf;

use mtasts_core::UnixTime;
use mtasts_core::report::{DomainSummary, SummaryKey, parse_report, summarize};

use crate::intake::Received;

/// Where reports are kept: `sqlite:PATH`, or a PostgreSQL URL (`postgres://…`,
/// `postgresql://…`), parsed when the flag is read.
#[derive(Debug, Clone)]
pub enum DbSpec {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<::postgres::Config>),
}

impl std::str::FromStr for DbSpec {
    type Err = DbError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            if !path.is_empty() {
                return Ok(Self::Sqlite(PathBuf::from(path)));
            }
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return s
                .parse::<::postgres::Config>()
                .map(|c| Self::Postgres(Box::new(c)))
                .map_err(|source| DbError::PostgresUrl {
                    url: redact(s),
                    source,
                });
        }
        Err(DbError::Spec(s.to_string()))
    }
}

/// `s` with any password in its user-info replaced, for messages.
fn redact(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => s.to_string(),
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error("`{0}`: a report store is `sqlite:PATH` or `postgres://USER@HOST[:PORT]/DB`")]
    /// An unknown `--db` value.
    Spec(String),
    #[error("`{url}` is not a usable PostgreSQL URL")]
    /// A PostgreSQL URL that does not parse.
    PostgresUrl {
        /// The URL, password hidden.
        url: String,
        #[source]
        /// Why.
        source: ::postgres::Error,
    },
    #[error("report store {}", path.display())]
    /// SQLite failed.
    Sqlite {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: rusqlite::Error,
    },
    #[error("report store {target}")]
    /// PostgreSQL failed.
    Postgres {
        /// Host and database.
        target: String,
        #[source]
        /// Why.
        source: ::postgres::Error,
    },
    #[error("report store {target}: TLS setup")]
    /// The TLS configuration for PostgreSQL could not be built.
    PostgresTls {
        /// Host and database.
        target: String,
        #[source]
        /// Why.
        source: mtasts_resolver::fetch::TrustError,
    },
}

/// What storing a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new report, with its row id.
    New(i64),
    /// The same organisation's report with this id was already stored; nothing changed.
    Duplicate,
}

/// A message that arrived as a report and was kept aside (see [`ReportDb::store_ignored`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IgnoredMessage {
    /// When it arrived.
    pub received_at: UnixTime,
    /// Its reporting domain, if it named one.
    pub reporting_domain: Option<String>,
    /// Why it is not a report.
    pub reason: String,
}

/// Which reports a summary covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this policy domain.
    pub domain: Option<String>,
    /// Only reports whose range ends at or after this time.
    pub since: Option<UnixTime>,
}

/// One report's rows, as both backends insert them.
#[derive(Debug)]
struct NewReport<'a> {
    organization: &'a str,
    report_id: &'a str,
    start: i64,
    end: i64,
    contact: Option<&'a str>,
    received_at: i64,
    source: &'a str,
    gzipped: bool,
    warnings: String,
    raw: &'a [u8],
    /// (policy domain, policy type, successful, failed)
    policies: Vec<(Option<&'a str>, &'a str, i64, i64)>,
}

/// The statements, with `?N` parameters (PostgreSQL's `$N` is substituted once).
mod sql {
    /// The tables, with the column types each backend names its own way: `ID` (the row id),
    /// `INT` (64 bits), `BLOB`, `BOOL`.
    pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (
    id ID PRIMARY KEY,
    organization TEXT NOT NULL,
    report_id TEXT NOT NULL,
    start_time INT NOT NULL,
    end_time INT NOT NULL,
    contact TEXT,
    received_at INT NOT NULL,
    source TEXT NOT NULL,
    gzipped BOOL NOT NULL,
    warnings TEXT NOT NULL,
    raw BLOB NOT NULL,
    UNIQUE (organization, report_id)
);
CREATE TABLE IF NOT EXISTS report_policies (
    report INT NOT NULL REFERENCES reports(id),
    policy_domain TEXT,
    policy_type TEXT NOT NULL,
    successful INT NOT NULL,
    failed INT NOT NULL
);
CREATE INDEX IF NOT EXISTS report_policies_domain ON report_policies (policy_domain);
CREATE INDEX IF NOT EXISTS reports_end ON reports (end_time);
CREATE TABLE IF NOT EXISTS ignored_messages (
    id ID PRIMARY KEY,
    received_at INT NOT NULL,
    reporting_domain TEXT,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    policy_domain TEXT NOT NULL,
    policy_type TEXT NOT NULL,
    since INT NOT NULL,
    PRIMARY KEY (policy_domain, policy_type)
);
CREATE TABLE IF NOT EXISTS session_policies (
    day TEXT NOT NULL,
    domain TEXT NOT NULL,
    tlsrpt_record TEXT NOT NULL,
    policy TEXT NOT NULL,
    successful INT NOT NULL,
    failed INT NOT NULL,
    PRIMARY KEY (day, domain, tlsrpt_record, policy)
);
CREATE TABLE IF NOT EXISTS session_failures (
    day TEXT NOT NULL,
    domain TEXT NOT NULL,
    tlsrpt_record TEXT NOT NULL,
    policy TEXT NOT NULL,
    failure TEXT NOT NULL,
    sessions INT NOT NULL,
    PRIMARY KEY (day, domain, tlsrpt_record, policy, failure)
);
CREATE TABLE IF NOT EXISTS outgoing_reports (
    id ID PRIMARY KEY,
    day TEXT NOT NULL,
    domain TEXT NOT NULL,
    tlsrpt_record TEXT NOT NULL,
    report_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    json BLOB NOT NULL,
    created_at INT NOT NULL,
    UNIQUE (day, domain, tlsrpt_record)
);
CREATE TABLE IF NOT EXISTS report_deliveries (
    report INT NOT NULL REFERENCES outgoing_reports(id),
    uri TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INT NOT NULL,
    first_attempt INT NULL,
    next_attempt INT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (report, uri)
);
CREATE INDEX IF NOT EXISTS report_deliveries_due ON report_deliveries (state, next_attempt);
";

    /// [`SCHEMA`] with each type word replaced by `types`' (ID, INT, BLOB, BOOL) names.
    pub fn schema(types: [&str; 4]) -> String {
        SCHEMA
            .replace(" ID ", &format!(" {} ", types[0]))
            .replace(" INT ", &format!(" {} ", types[1]))
            .replace(" BLOB ", &format!(" {} ", types[2]))
            .replace(" BOOL ", &format!(" {} ", types[3]))
    }

    /// A new report, or no row when (organisation, report-id) is already there.
    pub const INSERT_REPORT: &str = "INSERT INTO reports (organization, report_id, start_time, end_time, contact, received_at, source, gzipped, warnings, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (organization, report_id) DO NOTHING RETURNING id";
    pub const INSERT_POLICY: &str =
        "INSERT INTO report_policies (report, policy_domain, policy_type, successful, failed)
         VALUES (?1, ?2, ?3, ?4, ?5)";
    /// The columns of [`super::ReportRow`], in order.
    pub const SELECT_REPORTS: &str =
        "SELECT id, organization, report_id, received_at, source, raw FROM reports
         WHERE end_time >= ?1 AND (CAST(?2 AS TEXT) IS NULL OR id IN
           (SELECT report FROM report_policies WHERE policy_domain = CAST(?2 AS TEXT)))
         ORDER BY id";
    pub const SELECT_ONE: &str =
        "SELECT id, organization, report_id, received_at, source, raw FROM reports
         WHERE id = ?1";
    /// Per (policy domain, type): successful, failed, reports; from the policy rows alone.
    pub const TOTALS: &str = "SELECT policy_domain, policy_type, CAST(SUM(successful) AS BIGINT),
           CAST(SUM(failed) AS BIGINT), COUNT(*) FROM report_policies
         GROUP BY policy_domain, policy_type ORDER BY policy_domain, policy_type";
    pub const COUNT_IGNORED: &str = "SELECT COUNT(*) FROM ignored_messages";
    /// Alerts firing: (policy domain, `''` for none; policy type).
    pub const SELECT_ALERTS: &str = "SELECT policy_domain, policy_type FROM alerts ORDER BY 1, 2";
    pub const FIRE_ALERT: &str =
        "INSERT INTO alerts (policy_domain, policy_type, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (policy_domain, policy_type) DO NOTHING";
    pub const END_ALERT: &str = "DELETE FROM alerts WHERE policy_domain = ?1 AND policy_type = ?2";
    pub const INSERT_IGNORED: &str =
        "INSERT INTO ignored_messages (received_at, reporting_domain, reason, raw)
         VALUES (?1, ?2, ?3, ?4) RETURNING id";
    pub const SELECT_IGNORED: &str =
        "SELECT received_at, reporting_domain, reason FROM ignored_messages
         WHERE received_at >= ?1 ORDER BY id";
    pub const COUNT_REPORTS: &str = "SELECT COUNT(*) FROM reports";
    /// Sending side: one day's sessions of one policy, counted up.
    pub const ADD_SESSION_POLICY: &str =
        "INSERT INTO session_policies (day, domain, tlsrpt_record, policy, successful, failed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (day, domain, tlsrpt_record, policy) DO UPDATE SET
           successful = session_policies.successful + excluded.successful,
           failed = session_policies.failed + excluded.failed";
    pub const ADD_SESSION_FAILURE: &str =
        "INSERT INTO session_failures (day, domain, tlsrpt_record, policy, failure, sessions)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (day, domain, tlsrpt_record, policy, failure) DO UPDATE SET
           sessions = session_failures.sessions + excluded.sessions";
    pub const SELECT_SESSION_POLICIES: &str =
        "SELECT domain, tlsrpt_record, policy, successful, failed FROM session_policies
         WHERE day = ?1 ORDER BY 1, 2, 3";
    /// Sending side: a day's report, built once (retries send the same bytes and id).
    pub const INSERT_OUTGOING: &str =
        "INSERT INTO outgoing_reports (day, domain, tlsrpt_record, report_id, filename, json, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (day, domain, tlsrpt_record) DO NOTHING RETURNING id";
    pub const INSERT_DELIVERY: &str =
        "INSERT INTO report_deliveries (report, uri, state, attempts, first_attempt, next_attempt, last_error)
         VALUES (?1, ?2, 'pending', 0, NULL, ?3, NULL)";
    pub const SELECT_SESSION_DAYS: &str = "SELECT DISTINCT day FROM session_policies ORDER BY 1";
    pub const SELECT_OUTGOING_KEYS: &str =
        "SELECT domain, tlsrpt_record FROM outgoing_reports WHERE day = ?1 ORDER BY 1, 2";
    /// The columns of [`super::Delivery`], in order: what is due at ?1.
    pub const SELECT_DUE: &str =
        "SELECT r.id, d.uri, d.state, d.attempts, d.first_attempt, d.next_attempt, d.last_error,
           r.day, r.domain, r.report_id, r.filename, r.json
         FROM report_deliveries d JOIN outgoing_reports r ON r.id = d.report
         WHERE d.state = 'pending' AND d.next_attempt <= ?1 ORDER BY r.id, d.uri";
    /// The same columns, for every report of day ?1 or later.
    pub const SELECT_DELIVERIES: &str =
        "SELECT r.id, d.uri, d.state, d.attempts, d.first_attempt, d.next_attempt, d.last_error,
           r.day, r.domain, r.report_id, r.filename, r.json
         FROM report_deliveries d JOIN outgoing_reports r ON r.id = d.report
         WHERE r.day >= ?1 ORDER BY r.id, d.uri";
    pub const UPDATE_DELIVERY: &str =
        "UPDATE report_deliveries SET state = ?3, attempts = ?4, first_attempt = ?5,
           next_attempt = ?6, last_error = ?7 WHERE report = ?1 AND uri = ?2";
    pub const SELECT_SESSION_FAILURES: &str =
        "SELECT domain, tlsrpt_record, policy, failure, sessions FROM session_failures
         WHERE day = ?1 ORDER BY 1, 2, 3, 4";
}

/// One session as rows: (policy key, successful, failed) and (policy key, failure key, 1).
pub(crate) struct SessionRows<'a> {
    pub(crate) day: &'a str,
    pub(crate) domain: &'a str,
    pub(crate) tlsrpt_record: &'a str,
    pub(crate) policies: Vec<(String, i64, i64)>,
    pub(crate) failures: Vec<(String, String, i64)>,
}

/// A day's stored rows, as the backends read them: (domain, record, policy, a, b) where
/// (a, b) is (successful, failed) for policies and (failure key, sessions) for failures.
type SessionRow<D> = (String, String, String, D, i64);
type SessionPolicyRow = SessionRow<i64>;
type SessionFailureRow = SessionRow<String>;

/// A day's report to send, as built (sending side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutgoing<'a> {
    /// The UTC day (`YYYY-MM-DD`).
    pub day: &'a str,
    /// The policy domain it is about.
    pub domain: &'a str,
    /// The TLS-RPT record the sessions were counted under (`""`: looked up when built).
    pub tlsrpt_record: &'a str,
    /// `report-id`.
    pub report_id: &'a str,
    /// The §5.1 file name.
    pub filename: &'a str,
    /// The report JSON.
    pub json: &'a [u8],
    /// When it was built.
    pub created_at: UnixTime,
    /// The `rua` URIs to deliver it to, each first due at `due`.
    pub rua: &'a [String],
    /// When the first attempt is due.
    pub due: UnixTime,
}

/// Where one report stands with one `rua` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet; tried at `next_attempt`.
    Pending,
    /// Accepted by the endpoint.
    Delivered,
    /// Given up after the retry window (RETRY-01).
    GaveUp,
}

impl DeliveryState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::GaveUp => "gave-up",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "delivered" => Self::Delivered,
            "gave-up" => Self::GaveUp,
            _ => Self::Pending,
        }
    }
}

/// One (report, `rua` URI) as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The report's row id.
    pub report: i64,
    /// The `rua` URI.
    pub uri: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the first attempt was made.
    pub first_attempt: Option<UnixTime>,
    /// When the next attempt is due.
    pub next_attempt: UnixTime,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The report's UTC day.
    pub day: String,
    /// The policy domain.
    pub domain: String,
    /// `report-id`.
    pub report_id: String,
    /// The §5.1 file name.
    pub filename: String,
    /// The report JSON.
    pub json: Vec<u8>,
}

/// A delivery as the backends read it: (report, uri, state, attempts, first, next, error,
/// day, domain, report-id, filename, json).
type DeliveryRow = (
    i64,
    String,
    String,
    i64,
    Option<i64>,
    i64,
    Option<String>,
    String,
    String,
    String,
    String,
    Vec<u8>,
);

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        let time = |t: i64| u64::try_from(t).unwrap_or(0);
        Self {
            report: r.0,
            uri: r.1,
            state: DeliveryState::parse(&r.2),
            attempts: u32::try_from(r.3).unwrap_or(u32::MAX),
            first_attempt: r.4.map(time),
            next_attempt: time(r.5),
            last_error: r.6,
            day: r.7,
            domain: r.8,
            report_id: r.9,
            filename: r.10,
            json: r.11,
        }
    }
}

/// A stored report as read back: where it came from and its JSON as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// The row id (stable; the dashboard links to it).
    pub id: i64,
    /// `organization-name`.
    pub organization: String,
    /// `report-id`.
    pub report_id: String,
    /// When it arrived.
    pub received_at: UnixTime,
    /// How it arrived (`https:PEER`, `mail:dkim=D`, `file:NAME`).
    pub source: String,
    /// The JSON as received.
    pub raw: Vec<u8>,
}

/// Session totals of one (policy domain, policy type), from the policy rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// The policy domain (`None`: the report left it out).
    pub policy_domain: Option<String>,
    /// The policy type.
    pub policy_type: String,
    /// Successful sessions.
    pub successful: u64,
    /// Failed sessions.
    pub failed: u64,
    /// Reports.
    pub reports: u64,
}

/// (policy domain, policy type, successful, failed, reports), as the backends read them.
type TotalsRow = (Option<String>, String, i64, i64, i64);

/// What a backend does; [`ReportDb`] turns reports into rows and rows into summaries.
trait Backend: Send + std::fmt::Debug {
    /// Inserts the report and its policies in one transaction; `None`: a duplicate.
    fn insert_report(&mut self, r: &NewReport<'_>) -> Result<Option<i64>, DbError>;
    fn reports(&mut self, since: i64, domain: Option<&str>) -> Result<Vec<ReportRow>, DbError>;
    fn report(&mut self, id: i64) -> Result<Option<ReportRow>, DbError>;
    fn totals(&mut self) -> Result<Vec<TotalsRow>, DbError>;
    fn count_ignored(&mut self) -> Result<i64, DbError>;
    fn alerts(&mut self) -> Result<Vec<(String, String)>, DbError>;
    /// Marks the alert firing since `since`, or (`None`) over.
    fn set_alert(&mut self, domain: &str, kind: &str, since: Option<i64>) -> Result<(), DbError>;
    fn insert_ignored(
        &mut self,
        received_at: i64,
        domain: Option<&str>,
        reason: &str,
        raw: &[u8],
    ) -> Result<i64, DbError>;
    /// (received at, reporting domain, reason)
    fn ignored(&mut self, since: i64) -> Result<Vec<(i64, Option<String>, String)>, DbError>;
    fn count(&mut self) -> Result<i64, DbError>;
    /// Adds one session's counts in one transaction.
    fn add_session(&mut self, rows: &SessionRows<'_>) -> Result<(), DbError>;
    /// The day's counts.
    fn session_day(
        &mut self,
        day: &str,
    ) -> Result<(Vec<SessionPolicyRow>, Vec<SessionFailureRow>), DbError>;
    /// Stores a built report and its deliveries in one transaction; false: already there.
    fn insert_outgoing(&mut self, r: &NewOutgoing<'_>) -> Result<bool, DbError>;
    /// The days with sessions counted.
    fn session_days(&mut self) -> Result<Vec<String>, DbError>;
    /// (domain, record) of the reports built for `day`.
    fn outgoing_keys(&mut self, day: &str) -> Result<Vec<(String, String)>, DbError>;
    /// Pending deliveries due at `now`.
    fn due(&mut self, now: i64) -> Result<Vec<DeliveryRow>, DbError>;
    /// Every delivery of the reports of `day` or later.
    fn deliveries_since(&mut self, day: &str) -> Result<Vec<DeliveryRow>, DbError>;
    /// Records an attempt's outcome.
    fn update_delivery(&mut self, d: &Delivery) -> Result<(), DbError>;
}

/// Runs `f` on the shared store off the async runtime's threads (the store may fsync); a
/// lock poisoned by a panicked holder is taken anyway (the store itself stays consistent).
pub async fn blocking<T, F>(
    db: &std::sync::Arc<std::sync::Mutex<ReportDb>>,
    f: F,
) -> Result<Result<T, DbError>, tokio::task::JoinError>
where
    T: Send + 'static,
    F: FnOnce(&mut ReportDb) -> Result<T, DbError> + Send + 'static,
{
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut db = match db.lock() {
            Ok(d) => d,
            Err(p) => p.into_inner(),
        };
        f(&mut db)
    })
    .await
}

/// The report store.
#[derive(Debug)]
pub struct ReportDb {
    backend: Box<dyn Backend>,
}

fn as_i64(t: UnixTime) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

impl ReportDb {
    /// Opens (creating the tables if needed) the store `spec` names.
    pub fn open(spec: &DbSpec) -> Result<Self, DbError> {
        let backend: Box<dyn Backend> = match spec {
            DbSpec::Sqlite(path) => Box::new(sqlite::Sqlite::open(path)?),
            DbSpec::Postgres(config) => Box::new(postgres::Postgres::open(config)?),
        };
        Ok(Self { backend })
    }

    /// Stores `received` (from `source`, e.g. a file name or a peer) unless the organisation's
    /// report with that id is already there. One transaction: all of it or nothing.
    pub fn store(
        &mut self,
        received: &Received,
        source: &str,
        now: UnixTime,
    ) -> Result<Stored, DbError> {
        let r = &received.parsed.report;
        let warnings = serde_json::to_string(
            &received
                .parsed
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|_| "[]".into());
        let row = NewReport {
            organization: &r.organization,
            report_id: &r.report_id,
            start: as_i64(r.start),
            end: as_i64(r.end),
            contact: r.contact.as_deref(),
            received_at: as_i64(now),
            source,
            gzipped: received.gzipped,
            warnings,
            raw: &received.json,
            policies: r
                .policies
                .iter()
                .map(|p| {
                    (
                        p.policy_domain.as_deref(),
                        p.policy_type.as_str(),
                        as_i64(p.successful),
                        as_i64(p.failed),
                    )
                })
                .collect(),
        };
        Ok(match self.backend.insert_report(&row)? {
            Some(id) => Stored::New(id),
            None => Stored::Duplicate,
        })
    }

    /// Keeps a message that arrived as a report but is not stored as one (no valid DKIM
    /// signature, no usable report), with why: nothing received is lost, and an operator can
    /// look at it (table `ignored_messages`).
    pub fn store_ignored(
        &mut self,
        raw: &[u8],
        reporting_domain: Option<&str>,
        reason: &str,
        now: UnixTime,
    ) -> Result<i64, DbError> {
        self.backend
            .insert_ignored(as_i64(now), reporting_domain, reason, raw)
    }

    /// The ignored messages received at or after `since`, oldest first.
    pub fn ignored(&mut self, since: Option<UnixTime>) -> Result<Vec<IgnoredMessage>, DbError> {
        let rows = self.backend.ignored(since.map_or(i64::MIN, as_i64))?;
        Ok(rows
            .into_iter()
            .map(|(at, reporting_domain, reason)| IgnoredMessage {
                received_at: u64::try_from(at).unwrap_or(0),
                reporting_domain,
                reason,
            })
            .collect())
    }

    /// How many reports are stored.
    pub fn count(&mut self) -> Result<u64, DbError> {
        Ok(u64::try_from(self.backend.count()?).unwrap_or(0))
    }

    /// Counts one session result (sending side) into `day` (`YYYY-MM-DD`, UTC): per policy
    /// a successful or failed session, per failure detail one more. One transaction.
    pub fn add_session(
        &mut self,
        day: &str,
        session: &mtasts_core::session::SessionResult,
    ) -> Result<(), DbError> {
        let mut rows = SessionRows {
            day,
            domain: session.domain.as_str(),
            tlsrpt_record: &session.tlsrpt_record,
            policies: Vec::with_capacity(session.policies.len()),
            failures: Vec::new(),
        };
        for p in &session.policies {
            let key = p.key().to_json();
            for f in &p.failures {
                rows.failures.push((
                    key.clone(),
                    mtasts_core::session::FailureKey::from(f).to_json(),
                    i64::try_from(f.failed_session_count).unwrap_or(i64::MAX),
                ));
            }
            rows.policies
                .push((key, i64::from(!p.failed), i64::from(p.failed)));
        }
        self.backend.add_session(&rows)
    }

    /// `day`'s sessions, by (recipient domain, TLS-RPT record): what that day's report to
    /// the domain holds.
    pub fn session_day(
        &mut self,
        day: &str,
    ) -> Result<BTreeMap<(String, String), mtasts_core::session::DomainDay>, DbError> {
        use mtasts_core::session::{DomainDay, FailureKey, PolicyKey};
        let (policies, failures) = self.backend.session_day(day)?;
        let mut out: BTreeMap<(String, String), DomainDay> = BTreeMap::new();
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        for (domain, record, policy, successful, failed) in policies {
            let Some(key) = PolicyKey::from_json(&policy) else {
                continue;
            };
            let c = out
                .entry((domain, record))
                .or_default()
                .policies
                .entry(key)
                .or_default();
            c.successful += count(successful);
            c.failed += count(failed);
        }
        for (domain, record, policy, failure, sessions) in failures {
            let (Some(key), Some(f)) = (
                PolicyKey::from_json(&policy),
                FailureKey::from_json(&failure),
            ) else {
                continue;
            };
            *out.entry((domain, record))
                .or_default()
                .policies
                .entry(key)
                .or_default()
                .failures
                .entry(f)
                .or_default() += count(sessions);
        }
        Ok(out)
    }

    /// Stores a built report with a pending delivery per `rua` URI, in one transaction;
    /// false when that day's report for (domain, record) was built before (kept as it was).
    pub fn add_outgoing(&mut self, r: &NewOutgoing<'_>) -> Result<bool, DbError> {
        self.backend.insert_outgoing(r)
    }

    /// The UTC days (`YYYY-MM-DD`) with sessions counted, oldest first.
    pub fn session_days(&mut self) -> Result<Vec<String>, DbError> {
        self.backend.session_days()
    }

    /// (domain, record) of the reports already built for `day`.
    pub fn outgoing_keys(&mut self, day: &str) -> Result<Vec<(String, String)>, DbError> {
        self.backend.outgoing_keys(day)
    }

    /// Pending deliveries due at `now`, oldest report first.
    pub fn due_deliveries(&mut self, now: UnixTime) -> Result<Vec<Delivery>, DbError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        Ok(self
            .backend
            .due(now)?
            .into_iter()
            .map(Delivery::from)
            .collect())
    }

    /// Every delivery of the reports of `day` (`YYYY-MM-DD`) or later.
    pub fn deliveries_since(&mut self, day: &str) -> Result<Vec<Delivery>, DbError> {
        Ok(self
            .backend
            .deliveries_since(day)?
            .into_iter()
            .map(Delivery::from)
            .collect())
    }

    /// Records the outcome of an attempt (state, attempts, times, error of `d`).
    pub fn update_delivery(&mut self, d: &Delivery) -> Result<(), DbError> {
        self.backend.update_delivery(d)
    }

    /// The reports `filter` selects (a report naming the domain among others included),
    /// oldest first.
    pub fn reports(&mut self, filter: &Filter) -> Result<Vec<ReportRow>, DbError> {
        self.backend.reports(
            filter.since.map_or(i64::MIN, as_i64),
            filter.domain.as_deref(),
        )
    }

    /// One report by its row id.
    pub fn report(&mut self, id: i64) -> Result<Option<ReportRow>, DbError> {
        self.backend.report(id)
    }

    /// Session totals per policy domain and type over every stored report (cheap: from the
    /// policy rows, no JSON read), for metrics.
    pub fn totals(&mut self) -> Result<Vec<Totals>, DbError> {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(self
            .backend
            .totals()?
            .into_iter()
            .map(|(policy_domain, policy_type, ok, failed, reports)| Totals {
                policy_domain,
                policy_type,
                successful: n(ok),
                failed: n(failed),
                reports: n(reports),
            })
            .collect())
    }

    /// The (policy domain, policy type) alerts firing (domain `""`: none named).
    pub fn firing_alerts(
        &mut self,
    ) -> Result<std::collections::BTreeSet<(String, String)>, DbError> {
        Ok(self.backend.alerts()?.into_iter().collect())
    }

    /// Records that the alert for (`domain`, `kind`) fires (since `now`), or is over.
    pub fn set_alert(
        &mut self,
        domain: &str,
        kind: &str,
        firing: bool,
        now: UnixTime,
    ) -> Result<(), DbError> {
        self.backend
            .set_alert(domain, kind, firing.then_some(as_i64(now)))
    }

    /// How many messages were kept aside.
    pub fn count_ignored(&mut self) -> Result<u64, DbError> {
        Ok(u64::try_from(self.backend.count_ignored()?).unwrap_or(0))
    }

    /// Totals per policy domain and policy type over the reports `filter` selects, from the
    /// stored JSON through the core parser and aggregation (the same code as on intake).
    pub fn summary(
        &mut self,
        filter: &Filter,
    ) -> Result<BTreeMap<SummaryKey, DomainSummary>, DbError> {
        let rows = self.reports(filter)?;
        let mut totals = BTreeMap::new();
        for row in rows {
            // Stored reports were usable when stored; one that no longer parses is skipped
            // rather than hiding every other report.
            if let Ok(parsed) = parse_report(&row.raw) {
                summarize(&parsed.report, &mut totals);
            }
        }
        if let Some(d) = &filter.domain {
            totals.retain(|(domain, _), _| domain.as_deref() == Some(d.as_str()));
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_sqlite_or_postgres_and_hide_passwords() {
        assert!(matches!(
            "sqlite:/tmp/r.db".parse::<DbSpec>(),
            Ok(DbSpec::Sqlite(_))
        ));
        assert!(matches!(
            "postgres://mtasts@127.0.0.1:5432/reports".parse::<DbSpec>(),
            Ok(DbSpec::Postgres(_))
        ));
        assert!(matches!(
            "postgresql://u:secret@db.example/reports?sslmode=require".parse::<DbSpec>(),
            Ok(DbSpec::Postgres(_))
        ));
        for bad in ["sqlite:", "mysql://x", "reports.db"] {
            let e = bad.parse::<DbSpec>().map(|_| ()).unwrap_err();
            assert!(e.to_string().contains("sqlite:PATH"), "{e}");
        }
        let e = "postgres://u:secret@h/db?sslmode=bogus"
            .parse::<DbSpec>()
            .map(|_| ())
            .unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
