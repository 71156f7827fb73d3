//! The report store: every report kept as received (its JSON) beside what was read from it,
//! once per (organisation, report-id). SQLite, one file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mtasts_core::UnixTime;
use mtasts_core::report::{DomainSummary, SummaryKey, parse_report, summarize};
use rusqlite::{Connection, OptionalExtension, params};

use crate::intake::Received;

/// Where reports are kept: `sqlite:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSpec {
    /// A SQLite file.
    Sqlite(PathBuf),
}

impl std::str::FromStr for DbSpec {
    type Err = DbError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("sqlite:") {
            Some(path) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            _ => Err(DbError::Spec(s.to_string())),
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error("`{0}`: a report store is `sqlite:PATH`")]
    /// An unknown `--db` value.
    Spec(String),
    #[error("report store {}", path.display())]
    /// SQLite failed.
    Sqlite {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: rusqlite::Error,
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    organization TEXT NOT NULL,
    report_id TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER NOT NULL,
    contact TEXT,
    received_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    gzipped INTEGER NOT NULL,
    warnings TEXT NOT NULL,
    raw BLOB NOT NULL,
    UNIQUE (organization, report_id)
);
CREATE TABLE IF NOT EXISTS report_policies (
    report INTEGER NOT NULL REFERENCES reports(id),
    policy_domain TEXT,
    policy_type TEXT NOT NULL,
    successful INTEGER NOT NULL,
    failed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS report_policies_domain ON report_policies (policy_domain);
CREATE INDEX IF NOT EXISTS reports_end ON reports (end_time);
CREATE TABLE IF NOT EXISTS ignored_messages (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    reporting_domain TEXT,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL
);
";

/// The SQLite report store.
#[derive(Debug)]
pub struct ReportDb {
    conn: Connection,
    path: PathBuf,
}

impl ReportDb {
    /// Opens (creating if needed) the store `spec` names.
    pub fn open(spec: &DbSpec) -> Result<Self, DbError> {
        let DbSpec::Sqlite(path) = spec;
        let err = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            conn,
            path: path.clone(),
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> DbError + '_ {
        |source| DbError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Stores `received` (from `source`, e.g. a file name or a peer) unless the organisation's
    /// report with that id is already there. One transaction: all of it or nothing.
    pub fn store(
        &mut self,
        received: &Received,
        source: &str,
        now: UnixTime,
    ) -> Result<Stored, DbError> {
        let path = self.path.clone();
        let err = move |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
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
        let tx = self.conn.transaction().map_err(&err)?;
        let known: Option<i64> = tx
            .query_row(
                "SELECT id FROM reports WHERE organization = ?1 AND report_id = ?2",
                params![r.organization, r.report_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(&err)?;
        if known.is_some() {
            return Ok(Stored::Duplicate);
        }
        let as_i64 = |t: UnixTime| i64::try_from(t).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO reports (organization, report_id, start_time, end_time, contact, received_at, source, gzipped, warnings, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                r.organization,
                r.report_id,
                as_i64(r.start),
                as_i64(r.end),
                r.contact,
                as_i64(now),
                source,
                received.gzipped,
                warnings,
                received.json,
            ],
        )
        .map_err(&err)?;
        let id = tx.last_insert_rowid();
        for p in &r.policies {
            tx.execute(
                "INSERT INTO report_policies (report, policy_domain, policy_type, successful, failed)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id,
                    p.policy_domain,
                    p.policy_type.as_str(),
                    as_i64(p.successful),
                    as_i64(p.failed)
                ],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok(Stored::New(id))
    }

    /// Keeps a message that arrived as a report but is not stored as one (no valid DKIM
    /// signature, no usable report), with why: nothing received is lost, and an operator can
    /// look at it (`sqlite3 … 'SELECT raw FROM ignored_messages'`).
    pub fn store_ignored(
        &mut self,
        raw: &[u8],
        reporting_domain: Option<&str>,
        reason: &str,
        now: UnixTime,
    ) -> Result<i64, DbError> {
        self.conn
            .execute(
                "INSERT INTO ignored_messages (received_at, reporting_domain, reason, raw)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    i64::try_from(now).unwrap_or(i64::MAX),
                    reporting_domain,
                    reason,
                    raw
                ],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The ignored messages received at or after `since`, oldest first.
    pub fn ignored(&self, since: Option<UnixTime>) -> Result<Vec<IgnoredMessage>, DbError> {
        let since = since.map_or(i64::MIN, |t| i64::try_from(t).unwrap_or(i64::MAX));
        let mut stmt = self
            .conn
            .prepare(
                "SELECT received_at, reporting_domain, reason FROM ignored_messages
                 WHERE received_at >= ?1 ORDER BY id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![since], |row| {
                Ok(IgnoredMessage {
                    received_at: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                    reporting_domain: row.get(1)?,
                    reason: row.get(2)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// How many reports are stored.
    pub fn count(&self) -> Result<u64, DbError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM reports", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(self.err())
    }

    /// Totals per policy domain and policy type over the reports `filter` selects, from the
    /// stored JSON through the core parser and aggregation (the same code as on intake).
    pub fn summary(&self, filter: &Filter) -> Result<BTreeMap<SummaryKey, DomainSummary>, DbError> {
        let since = filter
            .since
            .map_or(i64::MIN, |t| i64::try_from(t).unwrap_or(i64::MAX));
        let mut stmt = self
            .conn
            .prepare(
                "SELECT raw FROM reports WHERE end_time >= ?1 AND (?2 IS NULL OR id IN
                   (SELECT report FROM report_policies WHERE policy_domain = ?2))
                 ORDER BY id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![since, filter.domain], |row| {
                row.get::<_, Vec<u8>>(0)
            })
            .map_err(self.err())?;
        let mut totals = BTreeMap::new();
        for raw in rows {
            let raw = raw.map_err(self.err())?;
            // Stored reports were usable when stored; one that no longer parses is skipped
            // rather than hiding every other report.
            if let Ok(parsed) = parse_report(&raw) {
                summarize(&parsed.report, &mut totals);
            }
        }
        if let Some(d) = &filter.domain {
            totals.retain(|(domain, _), _| domain.as_deref() == Some(d.as_str()));
        }
        Ok(totals)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
