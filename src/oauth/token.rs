//! `/token`: client authentication, the code exchange and the refresh (rotation, reuse
//! revokes the family), and the tokens issued; `/revoke` (RFC 7009).

use super::*;

/// The audit entry for a grant family revoked because a code or refresh token came back.
pub(super) fn family_revoked(
    now: Timestamp,
    because: &'static str,
) -> impl FnOnce(&CodeUse) -> Vec<NewAudit> + Send + 'static {
    move |used| match used {
        CodeUse::Reused(revoked) => vec![NewAudit::of(
            now,
            events::OAUTH_FAMILY_REVOKED,
            None,
            json!({"because": because, "tokens_revoked": revoked.len()}),
        )],
        _ => Vec::new(),
    }
}

pub(super) fn check_resource(
    presented: Option<&str>,
    bound: &str,
    issuer: &str,
    servers: &[String],
) -> Result<(), Error> {
    let Some(presented) = presented else {
        return Ok(());
    };
    match resource::canonical(issuer, presented, servers) {
        Some(canonical) if canonical == bound => Ok(()),
        Some(_) => Err(Error::InvalidTarget(format!(
            "the grant is for `{bound}`, not `{presented}`"
        ))),
        None => Err(Error::InvalidTarget(format!(
            "this server does not protect the resource `{presented}`"
        ))),
    }
}

impl OAuth {
    /// Authenticates a client at `/token` or `/revoke`.
    pub async fn client_of(&self, creds: &ClientCredentials) -> Result<ClientRow, Error> {
        let client_id = creds
            .id
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::InvalidClient("client authentication is required".into()))?;
        let client = self
            .store
            .client(client_id)
            .await?
            .ok_or_else(|| Error::InvalidClient(format!("unknown client `{client_id}`")))?;
        if let Some(expected) = client.secret_hash {
            let presented = creds.secret.as_deref().unwrap_or("");
            if !TokenHash::of(presented).ct_eq(&expected) {
                return Err(Error::InvalidClient("client authentication failed".into()));
            }
        }
        Ok(client)
    }

    /// `POST /token`.
    pub async fn token(
        &self,
        creds: &ClientCredentials,
        req: TokenRequest,
        issuer: &str,
    ) -> Result<TokenResponse, Error> {
        let grant = req
            .grant_type
            .clone()
            .ok_or_else(|| Error::InvalidRequest("grant_type is required".into()))?;
        if !matches!(grant.as_str(), "authorization_code" | "refresh_token") {
            return Err(Error::UnsupportedGrantType);
        }
        let client = self.client_of(creds).await?;
        if grant == "authorization_code" {
            self.exchange_code(&client, req, issuer).await
        } else {
            self.refresh(&client, req, issuer).await
        }
    }

    pub(super) async fn exchange_code(
        &self,
        client: &ClientRow,
        req: TokenRequest,
        issuer: &str,
    ) -> Result<TokenResponse, Error> {
        let code = req
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::InvalidRequest("code is required".into()))?;
        let verifier = req
            .code_verifier
            .as_deref()
            .ok_or_else(|| Error::InvalidRequest("code_verifier is required (PKCE)".into()))?;
        let now = self.clock.now();
        let row = match self
            .store
            .use_code(
                &TokenHash::of(code).0,
                now,
                family_revoked(now, "authorization code reused"),
            )
            .await?
        {
            CodeUse::Fresh(row) => row,
            CodeUse::Reused(revoked) => {
                self.forget(&revoked);
                return Err(Error::InvalidGrant(
                    "the authorization code was already used; the tokens issued for it are revoked"
                        .into(),
                ));
            }
            CodeUse::Unknown => {
                return Err(Error::InvalidGrant("unknown authorization code".into()));
            }
        };
        if row.client_id != client.id {
            return Err(Error::InvalidGrant(
                "the authorization code was issued to another client".into(),
            ));
        }
        if row.expires_at <= now {
            return Err(Error::InvalidGrant(
                "the authorization code has expired".into(),
            ));
        }
        if req
            .redirect_uri
            .as_deref()
            .is_some_and(|r| r != row.redirect_uri)
        {
            return Err(Error::InvalidGrant(
                "redirect_uri differs from the authorization request's".into(),
            ));
        }
        if !pkce::verify(verifier, &row.code_challenge) {
            return Err(Error::InvalidGrant(
                "the PKCE code_verifier does not match".into(),
            ));
        }
        check_resource(
            req.resource.as_deref(),
            &row.resource,
            issuer,
            &self.settings.mcp_servers,
        )?;
        let family = FamilyRow {
            id: row.family_id.clone(),
            client_id: client.id.clone(),
            resource: row.resource.clone(),
            scopes: row.scopes,
            created_at: now,
            revoked_at: None,
        };
        self.issue(client, &family, true, row.scopes).await
    }

    pub(super) async fn refresh(
        &self,
        client: &ClientRow,
        req: TokenRequest,
        issuer: &str,
    ) -> Result<TokenResponse, Error> {
        let token = req
            .refresh_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::InvalidRequest("refresh_token is required".into()))?;
        let grace = i64::try_from(self.settings.refresh_grace.as_millis()).unwrap_or(i64::MAX);
        let family = match self
            .store
            .use_refresh(&TokenHash::of(token).0, self.clock.now(), grace, {
                let entry = family_revoked(self.clock.now(), "refresh token reused");
                move |used: &RefreshUse| match used {
                    RefreshUse::Reused(revoked) => entry(&CodeUse::Reused(revoked.clone())),
                    _ => Vec::new(),
                }
            })
            .await?
        {
            RefreshUse::Valid(family) => family,
            RefreshUse::Reused(revoked) => {
                self.forget(&revoked);
                return Err(Error::InvalidGrant(
                    "the refresh token was already used; every token of this grant is revoked"
                        .into(),
                ));
            }
            RefreshUse::Invalid => {
                return Err(Error::InvalidGrant(
                    "the refresh token is unknown, expired or revoked".into(),
                ));
            }
        };
        if family.client_id != client.id {
            return Err(Error::InvalidGrant(
                "the refresh token was issued to another client".into(),
            ));
        }
        check_resource(
            req.resource.as_deref(),
            &family.resource,
            issuer,
            &self.settings.mcp_servers,
        )?;
        let scopes = match req.scope.as_deref() {
            None => family.scopes,
            Some(text) => {
                let wanted = parse_scopes(Some(text))?;
                if !family.scopes.covers(wanted) {
                    return Err(Error::InvalidScope(
                        "a refresh cannot widen the granted scope".into(),
                    ));
                }
                wanted
            }
        };
        self.issue(client, &family, false, scopes).await
    }

    pub(super) async fn issue(
        &self,
        client: &ClientRow,
        family: &FamilyRow,
        new_family: bool,
        scopes: ScopeSet,
    ) -> Result<TokenResponse, Error> {
        let now = self.clock.now();
        let (access, row) =
            crate::auth::mint_row(String::new(), scopes, now).map_err(|_| Error::Random)?;
        let refresh = random(REFRESH_PREFIX)?;
        let label: String = client
            .name
            .as_deref()
            .unwrap_or("client")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(24)
            .collect();
        let row = TokenRow {
            name: format!("oauth.{label}.{}", &row.id[4..]),
            expires_at: Some(now.plus(self.settings.access_ttl)),
            oauth: Some(OAuthBinding {
                client_id: client.id.clone(),
                audience: family.resource.clone(),
                family_id: family.id.clone(),
            }),
            ..row
        };
        let refresh_row = RefreshRow {
            token_hash: TokenHash::of(&refresh).0,
            family_id: family.id.clone(),
            created_at: now,
            expires_at: now.plus(self.settings.refresh_ttl),
        };
        match self
            .store
            .issue_tokens(new_family.then_some(family), &row, &refresh_row)
            .await
        {
            Err(store::Error::NotFound) => {
                return Err(Error::InvalidGrant("this grant has been revoked".into()));
            }
            other => other?,
        }
        Ok(TokenResponse {
            access_token: access.expose().to_owned(),
            token_type: "Bearer",
            expires_in: self.settings.access_ttl.as_secs(),
            refresh_token: refresh,
            scope: scope_string(&scopes),
        })
    }

    /// `POST /revoke` (RFC 7009): revokes an access token, or a refresh token and its whole
    /// grant. Unknown tokens are not an error.
    pub async fn revoke(&self, creds: &ClientCredentials, token: &str) -> Result<(), Error> {
        let client = self.client_of(creds).await?;
        let now = self.clock.now();
        let revoked = self
            .store
            .revoke_oauth_token(&TokenHash::of(token).0, &client.id, now)
            .await?;
        self.forget(&revoked);
        // Recorded after the fact (the revocation stands even if this fails): the log shows it,
        // and every other instance sharing the database forgets the tokens when it reads this.
        if !revoked.is_empty() {
            let entries = revoked
                .iter()
                .map(|id| {
                    NewAudit::of(
                        now,
                        events::TOKEN_REVOKED,
                        Some(id),
                        json!({"by": client.id, "because": "revoked by its client (RFC 7009)"}),
                    )
                })
                .collect();
            self.store.append_audit(entries).await?;
        }
        Ok(())
    }
}
