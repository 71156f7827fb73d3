//! The SQLite backend: one file, the default.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Backend, DbError, Delivery, DeliveryRow, NewOutgoing, NewReport, ReportRow, SessionFailureRow,
    SessionPolicyRow, SessionRow, SessionRows, TotalsRow, sql,
};

fn delivery_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
    ))
}

fn deliveries(
    conn: &Connection,
    statement: &str,
    param: &dyn rusqlite::ToSql,
) -> rusqlite::Result<Vec<DeliveryRow>> {
    let mut stmt = conn.prepare(statement)?;
    let rows = stmt.query_map([param], delivery_row)?;
    rows.collect()
}

fn report_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ReportRow> {
    Ok(ReportRow {
        id: row.get(0)?,
        organization: row.get(1)?,
        report_id: row.get(2)?,
        received_at: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
        source: row.get(4)?,
        raw: row.get(5)?,
    })
}

/// The rows of a five-column query on `day`.
fn five<D>(conn: &Connection, statement: &str, day: &str) -> rusqlite::Result<Vec<SessionRow<D>>>
where
    D: rusqlite::types::FromSql,
{
    let mut stmt = conn.prepare(statement)?;
    let rows = stmt.query_map(params![day], |row| {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
        ))
    })?;
    rows.collect()
}

/// The column types of [`sql::SCHEMA`].
const TYPES: [&str; 4] = ["INTEGER", "INTEGER", "BLOB", "INTEGER"];

#[derive(Debug)]
pub(super) struct Sqlite {
    conn: Connection,
    path: PathBuf,
}

impl Sqlite {
    pub(super) fn open(path: &Path) -> Result<Self, DbError> {
        let err = |source| DbError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        // WAL: one fsync per stored report instead of the rollback journal's several, readers
        // (the dashboard) never block the intake; FULL keeps every answered 201 on disk.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.execute_batch(&sql::schema(TYPES)).map_err(err)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> DbError + use<> {
        let path = self.path.clone();
        move |source| DbError::Sqlite {
            path: path.clone(),
            source,
        }
    }
}

impl Backend for Sqlite {
    fn insert_report(&mut self, r: &NewReport<'_>) -> Result<Option<i64>, DbError> {
        let err = self.err();
        let tx = self.conn.transaction().map_err(&err)?;
        let id: Option<i64> = tx
            .query_row(
                sql::INSERT_REPORT,
                params![
                    r.organization,
                    r.report_id,
                    r.start,
                    r.end,
                    r.contact,
                    r.received_at,
                    r.source,
                    r.gzipped,
                    r.warnings,
                    r.raw,
                ],
                |row| row.get(0),
            )
            .optional()
            .map_err(&err)?;
        let Some(id) = id else {
            return Ok(None);
        };
        for (domain, policy_type, successful, failed) in &r.policies {
            tx.execute(
                sql::INSERT_POLICY,
                params![id, domain, policy_type, successful, failed],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok(Some(id))
    }

    fn reports(&mut self, since: i64, domain: Option<&str>) -> Result<Vec<ReportRow>, DbError> {
        let err = self.err();
        let mut stmt = self.conn.prepare(sql::SELECT_REPORTS).map_err(&err)?;
        let rows = stmt
            .query_map(params![since, domain], report_row)
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn report(&mut self, id: i64) -> Result<Option<ReportRow>, DbError> {
        self.conn
            .query_row(sql::SELECT_ONE, params![id], report_row)
            .optional()
            .map_err(self.err())
    }

    fn totals(&mut self) -> Result<Vec<TotalsRow>, DbError> {
        let err = self.err();
        let mut stmt = self.conn.prepare(sql::TOTALS).map_err(&err)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn alerts(&mut self) -> Result<Vec<(String, String)>, DbError> {
        let err = self.err();
        let mut stmt = self.conn.prepare(sql::SELECT_ALERTS).map_err(&err)?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn set_alert(&mut self, domain: &str, kind: &str, since: Option<i64>) -> Result<(), DbError> {
        match since {
            Some(t) => self.conn.execute(sql::FIRE_ALERT, params![domain, kind, t]),
            None => self.conn.execute(sql::END_ALERT, params![domain, kind]),
        }
        .map(|_| ())
        .map_err(self.err())
    }

    fn count_ignored(&mut self) -> Result<i64, DbError> {
        self.conn
            .query_row(sql::COUNT_IGNORED, [], |row| row.get(0))
            .map_err(self.err())
    }

    fn insert_ignored(
        &mut self,
        received_at: i64,
        domain: Option<&str>,
        reason: &str,
        raw: &[u8],
    ) -> Result<i64, DbError> {
        self.conn
            .query_row(
                sql::INSERT_IGNORED,
                params![received_at, domain, reason, raw],
                |row| row.get(0),
            )
            .map_err(self.err())
    }

    fn ignored(&mut self, since: i64) -> Result<Vec<(i64, Option<String>, String)>, DbError> {
        let err = self.err();
        let mut stmt = self.conn.prepare(sql::SELECT_IGNORED).map_err(&err)?;
        let rows = stmt
            .query_map(params![since], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn count(&mut self) -> Result<i64, DbError> {
        self.conn
            .query_row(sql::COUNT_REPORTS, [], |row| row.get(0))
            .map_err(self.err())
    }

    fn add_session(&mut self, rows: &SessionRows<'_>) -> Result<(), DbError> {
        let err = self.err();
        let tx = self.conn.transaction().map_err(&err)?;
        for (policy, successful, failed) in &rows.policies {
            tx.execute(
                sql::ADD_SESSION_POLICY,
                params![
                    rows.day,
                    rows.domain,
                    rows.tlsrpt_record,
                    policy,
                    successful,
                    failed
                ],
            )
            .map_err(&err)?;
        }
        for (policy, failure, sessions) in &rows.failures {
            tx.execute(
                sql::ADD_SESSION_FAILURE,
                params![
                    rows.day,
                    rows.domain,
                    rows.tlsrpt_record,
                    policy,
                    failure,
                    sessions
                ],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    fn session_day(
        &mut self,
        day: &str,
    ) -> Result<(Vec<SessionPolicyRow>, Vec<SessionFailureRow>), DbError> {
        let err = self.err();
        let policies = five(&self.conn, sql::SELECT_SESSION_POLICIES, day).map_err(&err)?;
        let failures = five(&self.conn, sql::SELECT_SESSION_FAILURES, day).map_err(err)?;
        Ok((policies, failures))
    }

    fn insert_outgoing(&mut self, r: &NewOutgoing<'_>) -> Result<bool, DbError> {
        let err = self.err();
        let created = i64::try_from(r.created_at).unwrap_or(i64::MAX);
        let due = i64::try_from(r.due).unwrap_or(i64::MAX);
        let tx = self.conn.transaction().map_err(&err)?;
        let id: Option<i64> = tx
            .query_row(
                sql::INSERT_OUTGOING,
                params![
                    r.day,
                    r.domain,
                    r.tlsrpt_record,
                    r.report_id,
                    r.filename,
                    r.json,
                    created
                ],
                |row| row.get(0),
            )
            .optional()
            .map_err(&err)?;
        let Some(id) = id else {
            return Ok(false);
        };
        for uri in r.rua {
            tx.execute(sql::INSERT_DELIVERY, params![id, uri, due])
                .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok(true)
    }

    fn session_days(&mut self) -> Result<Vec<String>, DbError> {
        let err = self.err();
        let mut stmt = self.conn.prepare(sql::SELECT_SESSION_DAYS).map_err(&err)?;
        let rows = stmt.query_map([], |row| row.get(0)).map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn outgoing_keys(&mut self, day: &str) -> Result<Vec<(String, String)>, DbError> {
        let err = self.err();
        let mut stmt = self.conn.prepare(sql::SELECT_OUTGOING_KEYS).map_err(&err)?;
        let rows = stmt
            .query_map(params![day], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn due(&mut self, now: i64) -> Result<Vec<DeliveryRow>, DbError> {
        let err = self.err();
        deliveries(&self.conn, sql::SELECT_DUE, &now).map_err(err)
    }

    fn deliveries_since(&mut self, day: &str) -> Result<Vec<DeliveryRow>, DbError> {
        let err = self.err();
        deliveries(&self.conn, sql::SELECT_DELIVERIES, &day).map_err(err)
    }

    fn update_delivery(&mut self, d: &Delivery) -> Result<(), DbError> {
        let err = self.err();
        let time = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        self.conn
            .execute(
                sql::UPDATE_DELIVERY,
                params![
                    d.report,
                    d.uri,
                    d.state.as_str(),
                    i64::from(d.attempts),
                    d.first_attempt.map(time),
                    time(d.next_attempt),
                    d.last_error
                ],
            )
            .map_err(err)?;
        Ok(())
    }
}
