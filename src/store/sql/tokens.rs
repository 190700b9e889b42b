//! Tokens and settings. Compiled once per backend.

use agentgate_policy::Scope;

use super::column::{get, hash32, scopes};
use super::{Conn, DbRow, This};
use crate::clock::Timestamp;
use crate::store::{Conflict, Error, NewAudit, OAuthBinding, TokenRow};

pub(crate) const TOKEN_COLUMNS: &str = "id, name, secret_hash, scopes, created_at, expires_at, \
     last_used_at, revoked_at, created_by, client_id, audience, family_id, person";

impl This {
    pub(crate) async fn insert_token(
        &self,
        row: &TokenRow,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let row = row.clone();
        self.audited(
            move |conn| Box::pin(async move { insert_token(&mut *conn, &row).await }),
            move |_| audit,
        )
        .await
    }

    pub(crate) async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRow>, Error> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = $1");
        let row = sqlx::query(&sql)
            .bind(&hash[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db)?;
        row.as_ref().map(token_from_row).transpose()
    }

    pub(crate) async fn live_tokens(&self) -> Result<Vec<TokenRow>, Error> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL AND client_id IS NULL \
             ORDER BY created_at, name"
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db)?;
        rows.iter().map(token_from_row).collect()
    }

    pub(crate) async fn count_tokens(&self) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM tokens")
            .fetch_one(&self.pool)
            .await
            .map_err(Error::db)
    }

    pub(crate) async fn revoke_token(
        &self,
        id: &str,
        now: Timestamp,
        audit: impl FnOnce(&TokenRow) -> Vec<NewAudit> + Send + 'static,
    ) -> Result<TokenRow, Error> {
        let id = id.to_owned();
        self.audited(
            move |conn| Box::pin(async move { revoke_token(conn, &id, now).await }),
            audit,
        )
        .await
    }

    pub(crate) async fn touch_token(&self, id: &str, now: Timestamp) -> Result<(), Error> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now.as_millis())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(Error::db)?;
        Ok(())
    }

    pub(crate) async fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db)
    }

    pub(crate) async fn put_setting(
        &self,
        key: &str,
        value: &str,
        now: Timestamp,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.audited(
            move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(&key)
                    .bind(&value)
                    .bind(now.as_millis())
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::db)?;
                    Ok(())
                })
            },
            move |_| audit,
        )
        .await
    }
}

/// Revokes a live token in one statement, so the last-admin check and the revocation cannot
/// interleave with another revocation.
async fn revoke_token(conn: &mut Conn, id: &str, now: Timestamp) -> Result<TokenRow, Error> {
    let sql = format!(
        "UPDATE tokens SET revoked_at = $1 \
         WHERE id = $2 AND revoked_at IS NULL AND NOT ( \
           admin AND (expires_at IS NULL OR expires_at > $1) \
           AND NOT EXISTS (SELECT 1 FROM tokens o WHERE o.id != $2 AND o.revoked_at IS NULL \
             AND (o.expires_at IS NULL OR o.expires_at > $1) AND o.admin)) \
         RETURNING {TOKEN_COLUMNS}"
    );
    let revoked = sqlx::query(&sql)
        .bind(now.as_millis())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::db)?;
    if let Some(row) = revoked {
        return token_from_row(&row);
    }
    let live = sqlx::query("SELECT id FROM tokens WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::db)?;
    Err(if live.is_some() {
        Error::LastAdmin
    } else {
        Error::NotFound
    })
}

/// Inserts a token row (in a write, or a transaction issuing OAuth tokens). A live token's name
/// is checked first, so a unique violation left over is the secret's (or, when another instance
/// took the name at the same moment, the name's, told apart by the index the database names).
pub(crate) async fn insert_token(conn: &mut Conn, row: &TokenRow) -> Result<(), Error> {
    let taken = sqlx::query("SELECT id FROM tokens WHERE name = $1 AND revoked_at IS NULL")
        .bind(&row.name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::db)?;
    if taken.is_some() {
        return Err(Error::Conflict(Conflict::TokenName));
    }
    let oauth = row.oauth.as_ref();
    let admin = row.scopes.contains(Scope::Admin);
    sqlx::query(
        "INSERT INTO tokens (id, name, secret_hash, scopes, admin, created_at, expires_at, \
         last_used_at, revoked_at, created_by, client_id, audience, family_id, person) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.secret_hash[..])
    .bind(row.scopes.to_string())
    .bind(admin)
    .bind(row.created_at.as_millis())
    .bind(row.expires_at.map(Timestamp::as_millis))
    .bind(row.last_used_at.map(Timestamp::as_millis))
    .bind(row.revoked_at.map(Timestamp::as_millis))
    .bind(&row.created_by)
    .bind(oauth.map(|o| &o.client_id))
    .bind(oauth.map(|o| &o.audience))
    .bind(oauth.map(|o| &o.family_id))
    .bind(&row.person)
    .execute(conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            if db.constraint() == Some(LIVE_NAME_INDEX) {
                Error::Conflict(Conflict::TokenName)
            } else {
                Error::Conflict(Conflict::TokenSecret)
            }
        }
        _ => Error::db(e),
    })?;
    Ok(())
}

/// The unique index on live tokens' names (both schemas).
const LIVE_NAME_INDEX: &str = "tokens_live_name";

pub(crate) fn token_from_row(row: &DbRow) -> Result<TokenRow, Error> {
    Ok(TokenRow {
        id: get(row, "id")?,
        name: get(row, "name")?,
        secret_hash: hash32(row, "secret_hash")?,
        scopes: scopes(row)?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        last_used_at: get(row, "last_used_at")?,
        revoked_at: get(row, "revoked_at")?,
        created_by: get(row, "created_by")?,
        oauth: oauth_binding(row)?,
        person: get(row, "person")?,
    })
}

fn oauth_binding(row: &DbRow) -> Result<Option<OAuthBinding>, Error> {
    let client_id: Option<String> = get(row, "client_id")?;
    let Some(client_id) = client_id else {
        return Ok(None);
    };
    let audience: Option<String> = get(row, "audience")?;
    let family_id: Option<String> = get(row, "family_id")?;
    match (audience, family_id) {
        (Some(audience), Some(family_id)) => Ok(Some(OAuthBinding {
            client_id,
            audience,
            family_id,
        })),
        _ => Err(Error::Corrupt(
            "an OAuth token without its audience or family".into(),
        )),
    }
}
