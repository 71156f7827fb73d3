//! The PostgreSQL backend: many receivers, one database. TLS through rustls with the web PKI
//! roots when the URL's `sslmode` asks for it (`prefer`, the default, falls back to plain
//! only when the server offers no TLS).

use postgres::{Client, Config};

use super::{
    Backend, DbError, Delivery, DeliveryRow, NewOutgoing, NewReport, ReportRow, SessionFailureRow,
    SessionPolicyRow, SessionRow, SessionRows, TotalsRow, sql,
};

fn delivery_row(row: &postgres::Row) -> Result<DeliveryRow, postgres::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
        row.try_get(8)?,
        row.try_get(9)?,
        row.try_get(10)?,
        row.try_get(11)?,
    ))
}

fn report_row(row: &postgres::Row) -> Result<ReportRow, postgres::Error> {
    Ok(ReportRow {
        id: row.try_get(0)?,
        organization: row.try_get(1)?,
        report_id: row.try_get(2)?,
        received_at: u64::try_from(row.try_get::<_, i64>(3)?).unwrap_or(0),
        source: row.try_get(4)?,
        raw: row.try_get(5)?,
    })
}

/// The column types of [`sql::SCHEMA`].
const TYPES: [&str; 4] = ["BIGSERIAL", "BIGINT", "BYTEA", "BOOLEAN"];

/// Serialises schema creation between processes starting at once (`CREATE … IF NOT EXISTS`
/// races in PostgreSQL); any constant of ours.
const SCHEMA_LOCK: i64 = 0x6d74_6173_7473_0001;

pub(super) struct Postgres {
    client: Client,
    target: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// `host/db` for messages (never the password).
fn target(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    format!(
        "postgres://{host}/{}",
        config.get_dbname().unwrap_or_default()
    )
}

/// The rows of a five-column query on `day`.
fn five<D>(
    client: &mut postgres::Client,
    statement: &str,
    day: &str,
) -> Result<Vec<SessionRow<D>>, postgres::Error>
where
    D: for<'a> postgres::types::FromSql<'a>,
{
    client
        .query(&pg(statement), &[&day])?
        .iter()
        .map(|row| {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            ))
        })
        .collect()
}

/// `?N` → `$N`.
fn pg(statement: &str) -> String {
    statement.replace('?', "$")
}

impl Postgres {
    pub(super) fn open(config: &Config) -> Result<Self, DbError> {
        let target = target(config);
        let tls = tls(&target)?;
        let err = |source| DbError::Postgres {
            target: target.clone(),
            source,
        };
        let mut client = config.connect(tls).map_err(err)?;
        let mut tx = client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(err)?;
        tx.batch_execute(&sql::schema(TYPES)).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self { client, target })
    }

    fn err(&self) -> impl Fn(postgres::Error) -> DbError + use<> {
        let target = self.target.clone();
        move |source| DbError::Postgres {
            target: target.clone(),
            source,
        }
    }
}

fn tls(target: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, DbError> {
    let config = mtasts_resolver::fetch::root_store(None)
        .and_then(mtasts_resolver::fetch::base_client_config)
        .map_err(|source| DbError::PostgresTls {
            target: target.to_string(),
            source,
        })?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl Backend for Postgres {
    fn insert_report(&mut self, r: &NewReport<'_>) -> Result<Option<i64>, DbError> {
        let err = self.err();
        let mut tx = self.client.transaction().map_err(&err)?;
        let row = tx
            .query_opt(
                &pg(sql::INSERT_REPORT),
                &[
                    &r.organization,
                    &r.report_id,
                    &r.start,
                    &r.end,
                    &r.contact,
                    &r.received_at,
                    &r.source,
                    &r.gzipped,
                    &r.warnings,
                    &r.raw,
                ],
            )
            .map_err(&err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: i64 = row.try_get(0).map_err(&err)?;
        let insert = tx.prepare(&pg(sql::INSERT_POLICY)).map_err(&err)?;
        for (domain, policy_type, successful, failed) in &r.policies {
            tx.execute(&insert, &[&id, domain, policy_type, successful, failed])
                .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok(Some(id))
    }

    fn reports(&mut self, since: i64, domain: Option<&str>) -> Result<Vec<ReportRow>, DbError> {
        let err = self.err();
        self.client
            .query(&pg(sql::SELECT_REPORTS), &[&since, &domain])
            .map_err(&err)?
            .iter()
            .map(|row| report_row(row).map_err(&err))
            .collect()
    }

    fn report(&mut self, id: i64) -> Result<Option<ReportRow>, DbError> {
        let err = self.err();
        self.client
            .query_opt(&pg(sql::SELECT_ONE), &[&id])
            .map_err(&err)?
            .map(|row| report_row(&row).map_err(&err))
            .transpose()
    }

    fn totals(&mut self) -> Result<Vec<TotalsRow>, DbError> {
        let err = self.err();
        self.client
            .query(sql::TOTALS, &[])
            .map_err(&err)?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                ))
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(err)
    }

    fn alerts(&mut self) -> Result<Vec<(String, String)>, DbError> {
        let err = self.err();
        self.client
            .query(sql::SELECT_ALERTS, &[])
            .map_err(&err)?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(err)
    }

    fn set_alert(&mut self, domain: &str, kind: &str, since: Option<i64>) -> Result<(), DbError> {
        match since {
            Some(t) => self
                .client
                .execute(&pg(sql::FIRE_ALERT), &[&domain, &kind, &t]),
            None => self.client.execute(&pg(sql::END_ALERT), &[&domain, &kind]),
        }
        .map(|_| ())
        .map_err(self.err())
    }

    fn count_ignored(&mut self) -> Result<i64, DbError> {
        let err = self.err();
        self.client
            .query_one(sql::COUNT_IGNORED, &[])
            .and_then(|row| row.try_get(0))
            .map_err(err)
    }

    fn insert_ignored(
        &mut self,
        received_at: i64,
        domain: Option<&str>,
        reason: &str,
        raw: &[u8],
    ) -> Result<i64, DbError> {
        let err = self.err();
        self.client
            .query_one(
                &pg(sql::INSERT_IGNORED),
                &[&received_at, &domain, &reason, &raw],
            )
            .and_then(|row| row.try_get(0))
            .map_err(err)
    }

    fn ignored(&mut self, since: i64) -> Result<Vec<(i64, Option<String>, String)>, DbError> {
        let err = self.err();
        self.client
            .query(&pg(sql::SELECT_IGNORED), &[&since])
            .map_err(&err)?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(err)
    }

    fn count(&mut self) -> Result<i64, DbError> {
        let err = self.err();
        self.client
            .query_one(sql::COUNT_REPORTS, &[])
            .and_then(|row| row.try_get(0))
            .map_err(err)
    }

    fn add_session(&mut self, rows: &SessionRows<'_>) -> Result<(), DbError> {
        let err = self.err();
        let mut tx = self.client.transaction().map_err(&err)?;
        let policy = tx.prepare(&pg(sql::ADD_SESSION_POLICY)).map_err(&err)?;
        for (key, successful, failed) in &rows.policies {
            tx.execute(
                &policy,
                &[
                    &rows.day,
                    &rows.domain,
                    &rows.tlsrpt_record,
                    key,
                    successful,
                    failed,
                ],
            )
            .map_err(&err)?;
        }
        let failure = tx.prepare(&pg(sql::ADD_SESSION_FAILURE)).map_err(&err)?;
        for (key, detail, sessions) in &rows.failures {
            tx.execute(
                &failure,
                &[
                    &rows.day,
                    &rows.domain,
                    &rows.tlsrpt_record,
                    key,
                    detail,
                    sessions,
                ],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(err)
    }

    fn session_day(
        &mut self,
        day: &str,
    ) -> Result<(Vec<SessionPolicyRow>, Vec<SessionFailureRow>), DbError> {
        let err = self.err();
        let policies = five(&mut self.client, sql::SELECT_SESSION_POLICIES, day).map_err(&err)?;
        let failures = five(&mut self.client, sql::SELECT_SESSION_FAILURES, day).map_err(err)?;
        Ok((policies, failures))
    }

    fn insert_outgoing(&mut self, r: &NewOutgoing<'_>) -> Result<bool, DbError> {
        let err = self.err();
        let created = i64::try_from(r.created_at).unwrap_or(i64::MAX);
        let due = i64::try_from(r.due).unwrap_or(i64::MAX);
        let mut tx = self.client.transaction().map_err(&err)?;
        let row = tx
            .query_opt(
                &pg(sql::INSERT_OUTGOING),
                &[
                    &r.day,
                    &r.domain,
                    &r.tlsrpt_record,
                    &r.report_id,
                    &r.filename,
                    &r.json,
                    &created,
                ],
            )
            .map_err(&err)?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: i64 = row.try_get(0).map_err(&err)?;
        let insert = tx.prepare(&pg(sql::INSERT_DELIVERY)).map_err(&err)?;
        for uri in r.rua {
            tx.execute(&insert, &[&id, uri, &due]).map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok(true)
    }

    fn session_days(&mut self) -> Result<Vec<String>, DbError> {
        let err = self.err();
        self.client
            .query(sql::SELECT_SESSION_DAYS, &[])
            .map_err(&err)?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, postgres::Error>>()
            .map_err(err)
    }

    fn outgoing_keys(&mut self, day: &str) -> Result<Vec<(String, String)>, DbError> {
        let err = self.err();
        self.client
            .query(&pg(sql::SELECT_OUTGOING_KEYS), &[&day])
            .map_err(&err)?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(err)
    }

    fn due(&mut self, now: i64) -> Result<Vec<DeliveryRow>, DbError> {
        let err = self.err();
        self.client
            .query(&pg(sql::SELECT_DUE), &[&now])
            .map_err(&err)?
            .iter()
            .map(delivery_row)
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    fn deliveries_since(&mut self, day: &str) -> Result<Vec<DeliveryRow>, DbError> {
        let err = self.err();
        self.client
            .query(&pg(sql::SELECT_DELIVERIES), &[&day])
            .map_err(&err)?
            .iter()
            .map(delivery_row)
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    fn update_delivery(&mut self, d: &Delivery) -> Result<(), DbError> {
        let err = self.err();
        let time = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        self.client
            .execute(
                &pg(sql::UPDATE_DELIVERY),
                &[
                    &d.report,
                    &d.uri,
                    &d.state.as_str(),
                    &i64::from(d.attempts),
                    &d.first_attempt.map(time),
                    &time(d.next_attempt),
                    &d.last_error,
                ],
            )
            .map_err(err)?;
        Ok(())
    }
}
