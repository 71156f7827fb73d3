//! The SQLite backend: one file, the default.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Backend, DbError, NewReport, sql};

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

    fn raw_reports(&mut self, since: i64, domain: Option<&str>) -> Result<Vec<Vec<u8>>, DbError> {
        let err = self.err();
        let mut stmt = self.conn.prepare(sql::SELECT_RAW).map_err(&err)?;
        let rows = stmt
            .query_map(params![since, domain], |row| row.get(0))
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
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
}
