//! Web sessions and pairing links. Compiled once per backend.

use super::column::decode;
use super::{Conn, Db, This};
use crate::clock::Timestamp;
use crate::store::web::{Failures, PairingRow, SessionRow};
use crate::store::{Error, NewAudit};

const SESSION_COLUMNS: &str = "id, secret_hash, name, scopes, csrf, pairing_id, created_at, \
                               last_seen_at, expires_at, revoked_at";
const PAIRING_COLUMNS: &str =
    "id, name, code_hash, scopes, created_at, expires_at, created_by, redeemed_at, revoked_at";

impl This {
    pub(crate) async fn insert_session(
        &self,
        row: &SessionRow,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let row = row.clone();
        self.audited(
            move |conn| Box::pin(async move { insert_session(&mut *conn, &row).await }),
            move |_| audit,
        )
        .await
    }

    pub(crate) async fn session_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<SessionRow>, Error> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM web_sessions WHERE secret_hash = $1");
        let row = sqlx::query(&sql)
            .bind(&hash[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db)?;
        row.as_ref().map(decode::<SessionRow>).transpose()
    }

    pub(crate) async fn touch_session(&self, id: &str, now: Timestamp) -> Result<(), Error> {
        sqlx::query(
            "UPDATE web_sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1",
        )
        .bind(now.as_millis())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(Error::db)?;
        Ok(())
    }

    pub(crate) async fn revoke_session(
        &self,
        id: &str,
        now: Timestamp,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let id = id.to_owned();
        self.audited(
            move |conn| Box::pin(async move { revoke_session(conn, &id, now).await }),
            move |_| audit,
        )
        .await
    }

    pub(crate) async fn insert_pairing(
        &self,
        row: &PairingRow,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let row = row.clone();
        self.audited(
            move |conn| Box::pin(async move { insert_pairing(conn, &row).await }),
            move |_| audit,
        )
        .await
    }

    pub(crate) async fn redeem_pairing(
        &self,
        hash: &[u8; 32],
        now: Timestamp,
        session: impl FnOnce(&PairingRow) -> SessionRow + Send + 'static,
        audit: impl FnOnce(&(PairingRow, SessionRow)) -> Vec<NewAudit> + Send + 'static,
    ) -> Result<Option<(PairingRow, SessionRow)>, Error> {
        let hash = *hash;
        self.audited(
            move |conn| {
                Box::pin(async move {
                    let sql = format!(
                        "UPDATE pairings SET redeemed_at = $1 WHERE code_hash = $2 \
                         AND redeemed_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
                         RETURNING {PAIRING_COLUMNS}"
                    );
                    let row = sqlx::query(&sql)
                        .bind(now.as_millis())
                        .bind(&hash[..])
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(Error::db)?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let pairing = decode::<PairingRow>(&row)?;
                    let created = session(&pairing);
                    insert_session(&mut *conn, &created).await?;
                    Ok(Some((pairing, created)))
                })
            },
            move |out| out.as_ref().map(audit).unwrap_or_default(),
        )
        .await
    }

    pub(crate) async fn live_pairings(&self) -> Result<Vec<PairingRow>, Error> {
        let sql = format!(
            "SELECT {PAIRING_COLUMNS} FROM pairings WHERE revoked_at IS NULL \
             ORDER BY created_at DESC, id"
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db)?;
        rows.iter().map(decode::<PairingRow>).collect()
    }

    pub(crate) async fn revoke_pairing(
        &self,
        id: &str,
        now: Timestamp,
        audit: impl FnOnce(&Vec<String>) -> Vec<NewAudit> + Send + 'static,
    ) -> Result<Vec<String>, Error> {
        let id = id.to_owned();
        self.audited(
            move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE pairings SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(now.as_millis())
                    .bind(&id)
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::db)?;
                    if done.rows_affected() == 0 {
                        return Err(Error::NotFound);
                    }
                    sqlx::query_scalar(
                        "UPDATE web_sessions SET revoked_at = $1 WHERE pairing_id = $2 \
                         AND revoked_at IS NULL RETURNING id",
                    )
                    .bind(now.as_millis())
                    .bind(&id)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(Error::db)
                })
            },
            audit,
        )
        .await
    }
}

/// Ends a session (ending an ended one changes nothing).
async fn revoke_session(conn: &mut Conn, id: &str, now: Timestamp) -> Result<(), Error> {
    sqlx::query("UPDATE web_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now.as_millis())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(Error::db)?;
    Ok(())
}

/// Stores a new pairing link (only its code's hash).
async fn insert_pairing(conn: &mut Conn, row: &PairingRow) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO pairings (id, name, code_hash, scopes, created_at, expires_at, \
         created_by, redeemed_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.code_hash[..])
    .bind(row.scopes.to_string())
    .bind(row.created_at.as_millis())
    .bind(row.expires_at.as_millis())
    .bind(&row.created_by)
    .bind(row.redeemed_at.map(Timestamp::as_millis))
    .bind(row.revoked_at.map(Timestamp::as_millis))
    .execute(&mut *conn)
    .await
    .map_err(Error::db)?;
    Ok(())
}

async fn insert_session<'e, E>(executor: E, row: &SessionRow) -> Result<(), Error>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    sqlx::query(
        "INSERT INTO web_sessions (id, secret_hash, name, scopes, csrf, pairing_id, created_at, \
         last_seen_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&row.id)
    .bind(&row.secret_hash[..])
    .bind(&row.name)
    .bind(row.scopes.to_string())
    .bind(&row.csrf)
    .bind(&row.pairing_id)
    .bind(row.created_at.as_millis())
    .bind(row.last_seen_at.as_millis())
    .bind(row.expires_at.as_millis())
    .bind(row.revoked_at.map(Timestamp::as_millis))
    .execute(executor)
    .await
    .map_err(Error::db)?;
    Ok(())
}

impl This {
    pub(crate) async fn passphrase_failures(
        &self,
        source: &str,
    ) -> Result<Option<Failures>, Error> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT failures, locked_until FROM passphrase_failures WHERE source = $1",
        )
        .bind(source)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::db)?;
        Ok(row.map(|(count, until)| Failures {
            count,
            locked_until: Timestamp::from_millis(until),
        }))
    }

    pub(crate) async fn swap_passphrase_failures(
        &self,
        source: &str,
        seen: Option<Failures>,
        next: Failures,
    ) -> Result<bool, Error> {
        let done = match seen {
            None => {
                sqlx::query(
                    "INSERT INTO passphrase_failures (source, failures, locked_until) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(source)
                .bind(next.count)
                .bind(next.locked_until.as_millis())
                .execute(&self.pool)
                .await
            }
            Some(seen) => {
                sqlx::query(
                    "UPDATE passphrase_failures SET failures = $2, locked_until = $3 \
                 WHERE source = $1 AND failures = $4 AND locked_until = $5",
                )
                .bind(source)
                .bind(next.count)
                .bind(next.locked_until.as_millis())
                .bind(seen.count)
                .bind(seen.locked_until.as_millis())
                .execute(&self.pool)
                .await
            }
        };
        Ok(done.map_err(Error::db)?.rows_affected() == 1)
    }

    pub(crate) async fn clear_passphrase_failures(
        &self,
        source: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        sqlx::query("DELETE FROM passphrase_failures WHERE source = $1 OR locked_until < $2")
            .bind(source)
            .bind(now.as_millis() - 86_400_000)
            .execute(&self.pool)
            .await
            .map_err(Error::db)?;
        Ok(())
    }
}
