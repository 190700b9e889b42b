//! The OAuth authorization server's clients, grants, codes, families and refresh tokens.
//! Compiled once per backend.

use super::column::{decode, get};
use super::{Conn, DbRow, This};
use crate::clock::Timestamp;
use crate::store::oauth::{
    ClientCap, ClientRow, CodeRow, CodeUse, ConsentFormRow, FamilyRow, GrantRow, RefreshRow,
    RefreshUse,
};
use crate::store::{Conflict, Error, NewAudit, TokenRow};

const CLIENT_COLUMNS: &str = "id, secret_hash, name, redirect_uris, auth_method, \
     application_type, grant_types, scope, metadata, created_at, deleted_at";
const GRANT_COLUMNS: &str = "id, client_id, scopes, created_at, revoked_at";
const CODE_COLUMNS: &str = "code_hash, client_id, redirect_uri, code_challenge, resource, scopes, \
     family_id, created_at, expires_at";
const FAMILY_COLUMNS: &str = "id, client_id, resource, scopes, created_at, revoked_at";

/// A client never authorized: no code was ever issued to it and no consent remembered.
const NEVER_AUTHORIZED: &str = "NOT EXISTS (SELECT 1 FROM oauth_codes c \
     WHERE c.client_id = oauth_clients.id) AND NOT EXISTS (SELECT 1 FROM oauth_grants g \
     WHERE g.client_id = oauth_clients.id)";

impl This {
    pub(crate) async fn hold_consent_form(
        &self,
        row: &ConsentFormRow,
        now: Timestamp,
        max: i64,
    ) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(Error::db)?;
        // The expired forms go, and the oldest of the rest beyond `max - 1`.
        sqlx::query(
            "DELETE FROM oauth_consent_forms WHERE expires_at <= $1 \
             OR id NOT IN (SELECT id FROM oauth_consent_forms WHERE expires_at > $1 \
             ORDER BY expires_at DESC, id DESC LIMIT $2)",
        )
        .bind(now.as_millis())
        .bind(max.saturating_sub(1).max(0))
        .execute(&mut *tx)
        .await
        .map_err(Error::db)?;
        sqlx::query(
            "INSERT INTO oauth_consent_forms (id, csrf_hash, request, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&row.id)
        .bind(&row.csrf_hash)
        .bind(&row.request)
        .bind(row.expires_at.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(Error::db)?;
        tx.commit().await.map_err(Error::db)
    }

    pub(crate) async fn take_consent_form(
        &self,
        id: &str,
        csrf_hash: &[u8; 32],
        next_csrf_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<ConsentFormRow>, Error> {
        sqlx::query_as(
            "UPDATE oauth_consent_forms SET csrf_hash = $1 \
             WHERE id = $2 AND csrf_hash = $3 AND expires_at > $4 \
             RETURNING id, csrf_hash, request, expires_at",
        )
        .bind(&next_csrf_hash[..])
        .bind(id)
        .bind(&csrf_hash[..])
        .bind(now.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::db)
    }

    pub(crate) async fn end_consent_form(&self, id: &str) -> Result<bool, Error> {
        let ended = sqlx::query("DELETE FROM oauth_consent_forms WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(Error::db)?
            .rows_affected();
        Ok(ended == 1)
    }

    pub(crate) async fn insert_client(
        &self,
        row: &ClientRow,
        cap: ClientCap,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let row = row.clone();
        self.audited(
            move |conn| {
                Box::pin(async move {
                    sqlx::query(&format!(
                        "UPDATE oauth_clients SET deleted_at = $1 WHERE deleted_at IS NULL AND created_at < $2 \
                         AND {NEVER_AUTHORIZED}"
                    ))
                    .bind(cap.now.as_millis())
                    .bind(cap.stale_before.as_millis())
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::db)?;
                    let (live, unauthorized): (i64, i64) = sqlx::query_as(&format!(
                        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN {NEVER_AUTHORIZED} THEN 1 ELSE 0 END), 0) \
                         FROM oauth_clients WHERE deleted_at IS NULL"
                    ))
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(Error::db)?;
                    if live >= i64::from(cap.max) || unauthorized >= i64::from(cap.unauthorized) {
                        return Err(Error::Conflict(Conflict::ClientCap));
                    }
                    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
                    sqlx::query(
                        "INSERT INTO oauth_clients (id, secret_hash, name, redirect_uris, auth_method, \
                         application_type, grant_types, scope, metadata, created_at, deleted_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)",
                    )
                    .bind(&row.id)
                    .bind(row.secret_hash.as_ref().map(|h| &h[..]))
                    .bind(&row.name)
                    .bind(json(&row.redirect_uris))
                    .bind(&row.auth_method)
                    .bind(&row.application_type)
                    .bind(json(&row.grant_types))
                    .bind(&row.scope)
                    .bind(&row.metadata)
                    .bind(row.created_at.as_millis())
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

    pub(crate) async fn client(&self, id: &str) -> Result<Option<ClientRow>, Error> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1 AND deleted_at IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db)?;
        row.as_ref().map(client_from_row).transpose()
    }

    pub(crate) async fn live_clients(&self) -> Result<Vec<ClientRow>, Error> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE deleted_at IS NULL \
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db)?;
        rows.iter().map(client_from_row).collect()
    }

    pub(crate) async fn delete_client(
        &self,
        id: &str,
        now: Timestamp,
        audit: Vec<NewAudit>,
    ) -> Result<Vec<String>, Error> {
        let id = id.to_owned();
        self.audited(
            move |conn| {
                Box::pin(async move {
                    let id = id.as_str();
                    let deleted = sqlx::query(
            "UPDATE oauth_clients SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(now.as_millis())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(Error::db)?;
                    if deleted.rows_affected() == 0 {
                        return Err(Error::NotFound);
                    }
                    sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
        )
        .bind(now.as_millis())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(Error::db)?;
                    let families: Vec<String> = sqlx::query_scalar(
                        "SELECT id FROM oauth_families WHERE client_id = $1 AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(Error::db)?;
                    let mut revoked = Vec::new();
                    for family in families {
                        revoked.extend(
                            revoke_family(&mut *conn, &family, "client deleted", now).await?,
                        );
                    }
                    Ok(revoked)
                })
            },
            move |_| audit,
        )
        .await
    }

    pub(crate) async fn insert_grant(
        &self,
        row: &GrantRow,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let row = row.clone();
        self.audited(
            move |conn| Box::pin(async move { insert_grant(conn, &row).await }),
            move |_| audit,
        )
        .await
    }

    pub(crate) async fn live_grants(
        &self,
        client_id: Option<&str>,
    ) -> Result<Vec<GrantRow>, Error> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM oauth_grants \
             WHERE revoked_at IS NULL AND ($1 IS NULL OR client_id = $1) ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(client_id)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db)?;
        rows.iter().map(decode::<GrantRow>).collect()
    }

    pub(crate) async fn revoke_grant(
        &self,
        id: &str,
        now: Timestamp,
        audit: impl FnOnce(&GrantRow) -> Vec<NewAudit> + Send + 'static,
    ) -> Result<GrantRow, Error> {
        let id = id.to_owned();
        self.audited(
            move |conn| {
                Box::pin(async move {
                    let sql = format!(
                        "UPDATE oauth_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                         RETURNING {GRANT_COLUMNS}"
                    );
                    let row = sqlx::query(&sql)
                        .bind(now.as_millis())
                        .bind(&id)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(Error::db)?
                        .ok_or(Error::NotFound)?;
                    decode::<GrantRow>(&row)
                })
            },
            audit,
        )
        .await
    }

    pub(crate) async fn insert_code(
        &self,
        row: &CodeRow,
        audit: Vec<NewAudit>,
    ) -> Result<(), Error> {
        let row = row.clone();
        self.audited(
            move |conn| Box::pin(async move { insert_code(conn, &row).await }),
            move |_| audit,
        )
        .await
    }

    pub(crate) async fn use_code(
        &self,
        hash: &[u8; 32],
        now: Timestamp,
        audit: impl FnOnce(&CodeUse) -> Vec<NewAudit> + Send + 'static,
    ) -> Result<CodeUse, Error> {
        let hash = *hash;
        self.audited(
            move |conn| {
                Box::pin(async move {
                    let sql = format!(
                        "UPDATE oauth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL \
                         RETURNING {CODE_COLUMNS}"
                    );
                    let fresh = sqlx::query(&sql)
                        .bind(now.as_millis())
                        .bind(&hash[..])
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(Error::db)?;
                    if let Some(row) = fresh {
                        let code = decode::<CodeRow>(&row)?;
                        return Ok(CodeUse::Fresh(code));
                    }
                    let family: Option<String> =
                        sqlx::query_scalar("SELECT family_id FROM oauth_codes WHERE code_hash = $1")
                            .bind(&hash[..])
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(Error::db)?;
                    let Some(family) = family else {
                        return Ok(CodeUse::Unknown);
                    };
                    let revoked = revoke_family(&mut *conn, &family, "authorization code reused", now).await?;
                    Ok(CodeUse::Reused(revoked))
                })
            },
            audit,
        )
        .await
    }

    pub(crate) async fn use_refresh(
        &self,
        hash: &[u8; 32],
        now: Timestamp,
        grace_ms: i64,
        audit: impl FnOnce(&RefreshUse) -> Vec<NewAudit> + Send + 'static,
    ) -> Result<RefreshUse, Error> {
        let hash = *hash;
        self.audited(
            move |conn| {
                Box::pin(async move {
                    let found = sqlx::query(
            "SELECT family_id, expires_at, used_at FROM oauth_refresh_tokens WHERE token_hash = $1",
        )
        .bind(&hash[..])
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::db)?;
                    let Some(found) = found else {
                        return Ok(RefreshUse::Invalid);
                    };
                    let family_id: String = get(&found, "family_id")?;
                    let expires_at: Timestamp = get(&found, "expires_at")?;
                    let used_at: Option<Timestamp> = get(&found, "used_at")?;
                    let sql = format!("SELECT {FAMILY_COLUMNS} FROM oauth_families WHERE id = $1");
                    let family = sqlx::query(&sql)
                        .bind(&family_id)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(Error::db)?
                        .as_ref()
                        .map(decode::<FamilyRow>)
                        .transpose()?;
                    let Some(family) = family.filter(|f| f.revoked_at.is_none()) else {
                        return Ok(RefreshUse::Invalid);
                    };
                    match used_at {
                        Some(at) if now.as_millis() - at.as_millis() > grace_ms => {
                            let revoked =
                                revoke_family(&mut *conn, &family_id, "refresh token reused", now)
                                    .await?;
                            return Ok(RefreshUse::Reused(revoked));
                        }
                        Some(_) => {}
                        None => {
                            if expires_at <= now {
                                return Ok(RefreshUse::Invalid);
                            }
                            sqlx::query(
                                "UPDATE oauth_refresh_tokens SET used_at = $1 WHERE token_hash = $2",
                            )
                            .bind(now.as_millis())
                            .bind(&hash[..])
                            .execute(&mut *conn)
                            .await
                            .map_err(Error::db)?;
                        }
                    }
                    Ok(RefreshUse::Valid(family))
                })
            },
            audit,
        )
        .await
    }

    pub(crate) async fn issue_tokens(
        &self,
        family: Option<&FamilyRow>,
        access: &TokenRow,
        refresh: &RefreshRow,
    ) -> Result<(), Error> {
        let mut tx = self.write_tx().await?;
        if let Some(f) = family {
            sqlx::query(
                "INSERT INTO oauth_families (id, client_id, resource, scopes, created_at, \
                 revoked_at, revoked_because) VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
            )
            .bind(&f.id)
            .bind(&f.client_id)
            .bind(&f.resource)
            .bind(f.scopes.to_string())
            .bind(f.created_at.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(Error::db)?;
        } else {
            let live =
                sqlx::query("SELECT id FROM oauth_families WHERE id = $1 AND revoked_at IS NULL")
                    .bind(&refresh.family_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(Error::db)?;
            if live.is_none() {
                return Err(Error::NotFound);
            }
        }
        super::tokens::insert_token(&mut tx, access).await?;
        sqlx::query(
            "INSERT INTO oauth_refresh_tokens (token_hash, family_id, created_at, expires_at, \
             used_at) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(&refresh.token_hash[..])
        .bind(&refresh.family_id)
        .bind(refresh.created_at.as_millis())
        .bind(refresh.expires_at.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(Error::db)?;
        tx.commit().await.map_err(Error::db)
    }

    pub(crate) async fn revoke_oauth_token(
        &self,
        hash: &[u8; 32],
        client_id: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, Error> {
        let mut tx = self.write_tx().await?;
        let access: Option<String> = sqlx::query_scalar(
            "UPDATE tokens SET revoked_at = $1 \
             WHERE secret_hash = $2 AND client_id = $3 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now.as_millis())
        .bind(&hash[..])
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::db)?;
        if let Some(id) = access {
            tx.commit().await.map_err(Error::db)?;
            return Ok(vec![id]);
        }
        let family: Option<String> = sqlx::query_scalar(
            "SELECT r.family_id FROM oauth_refresh_tokens r \
             JOIN oauth_families f ON f.id = r.family_id \
             WHERE r.token_hash = $1 AND f.client_id = $2 AND f.revoked_at IS NULL",
        )
        .bind(&hash[..])
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::db)?;
        let Some(family) = family else {
            return Ok(Vec::new());
        };
        let revoked = revoke_family(&mut tx, &family, "refresh token revoked", now).await?;
        tx.commit().await.map_err(Error::db)?;
        Ok(revoked)
    }
}

/// Revokes a family and every access token issued in it; returns those tokens' ids.
/// Remembers consent.
async fn insert_grant(conn: &mut Conn, row: &GrantRow) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO oauth_grants (id, client_id, scopes, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, NULL)",
    )
    .bind(&row.id)
    .bind(&row.client_id)
    .bind(row.scopes.to_string())
    .bind(row.created_at.as_millis())
    .execute(&mut *conn)
    .await
    .map_err(Error::db)?;
    Ok(())
}

/// Stores an authorization code (only its hash).
async fn insert_code(conn: &mut Conn, row: &CodeRow) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO oauth_codes (code_hash, client_id, redirect_uri, code_challenge, \
             resource, scopes, family_id, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
    )
    .bind(&row.code_hash[..])
    .bind(&row.client_id)
    .bind(&row.redirect_uri)
    .bind(&row.code_challenge)
    .bind(&row.resource)
    .bind(row.scopes.to_string())
    .bind(&row.family_id)
    .bind(row.created_at.as_millis())
    .bind(row.expires_at.as_millis())
    .execute(&mut *conn)
    .await
    .map_err(Error::db)?;
    Ok(())
}

async fn revoke_family(
    conn: &mut Conn,
    family: &str,
    because: &str,
    now: Timestamp,
) -> Result<Vec<String>, Error> {
    sqlx::query(
        "UPDATE oauth_families SET revoked_at = $1, revoked_because = $2 \
         WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(now.as_millis())
    .bind(because)
    .bind(family)
    .execute(&mut *conn)
    .await
    .map_err(Error::db)?;
    sqlx::query_scalar(
        "UPDATE tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL RETURNING id",
    )
    .bind(now.as_millis())
    .bind(family)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db)
}

fn strings(row: &DbRow, col: &str) -> Result<Vec<String>, Error> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|e| Error::Corrupt(format!("{col}: {e}")))
}

fn client_from_row(row: &DbRow) -> Result<ClientRow, Error> {
    let secret: Option<Vec<u8>> = get(row, "secret_hash")?;
    let secret_hash = match secret {
        None => None,
        Some(bytes) => Some(
            bytes
                .try_into()
                .map_err(|_| Error::Corrupt("client secret_hash is not 32 bytes".into()))?,
        ),
    };
    Ok(ClientRow {
        id: get(row, "id")?,
        secret_hash,
        name: get(row, "name")?,
        redirect_uris: strings(row, "redirect_uris")?,
        auth_method: get(row, "auth_method")?,
        application_type: get(row, "application_type")?,
        grant_types: strings(row, "grant_types")?,
        scope: get(row, "scope")?,
        metadata: get(row, "metadata")?,
        created_at: get(row, "created_at")?,
        deleted_at: get(row, "deleted_at")?,
    })
}
