//! `/authorize` and the consent it leads to: the request checked (client, redirect, PKCE,
//! scopes, resource), the consent held until the owner answers, and the code issued.

use super::*;

/// Builds redirects back to the client: always with `state` (if the request had one) and `iss`
/// (RFC 9207).
pub(super) struct Answer<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl Answer<'_> {
    fn with(&self, pairs: &[(&str, &str)]) -> String {
        let Ok(mut url) = Url::parse(self.redirect_uri) else {
            return self.redirect_uri.to_owned();
        };
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in pairs {
                query.append_pair(k, v);
            }
            if let Some(state) = self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", self.issuer);
        }
        url.into()
    }

    fn error(&self, code: &str, description: &str) -> Authorize {
        Authorize::Redirect(self.with(&[("error", code), ("error_description", description)]))
    }
}

impl OAuth {
    /// `GET /authorize`. `issuer` is our origin as the request reached us; the resource is our
    /// MCP endpoint under it unless the request names another (then `invalid_target`).
    pub async fn authorize(
        &self,
        issuer: &str,
        params: AuthorizeParams,
        owner_signed_in: bool,
    ) -> Result<Authorize, Error> {
        let Some(client_id) = params.client_id.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(Authorize::ErrorPage(
                "The request names no client (client_id is missing).".into(),
            ));
        };
        let Some(client) = self.store.client(client_id).await? else {
            return Ok(Authorize::ErrorPage(format!(
                "No application is registered as `{client_id}`. It may have been deleted; \
                 the application has to register again."
            )));
        };
        let redirect_uri = match params.redirect_uri.as_deref() {
            Some(uri) if redirect::matches(&client.redirect_uris, uri) => uri.to_owned(),
            Some(uri) => {
                return Ok(Authorize::ErrorPage(format!(
                    "The redirect URI `{uri}` is not registered for this application."
                )));
            }
            None => match client.redirect_uris.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Ok(Authorize::ErrorPage(
                        "The request names no redirect URI, and the application registered \
                         several."
                            .into(),
                    ));
                }
            },
        };
        let answer = Answer {
            redirect_uri: &redirect_uri,
            state: params.state.as_deref(),
            issuer,
        };
        if params.response_type.as_deref() != Some("code") {
            return Ok(answer.error("unsupported_response_type", "response_type must be `code`"));
        }
        let challenge = match (
            params.code_challenge.as_deref(),
            params.code_challenge_method.as_deref(),
        ) {
            (None | Some(""), _) => {
                return Ok(answer.error(
                    "invalid_request",
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                ));
            }
            (Some(c), Some("S256")) if pkce::valid_challenge(c) => c.to_owned(),
            (Some(_), Some("S256")) => {
                return Ok(answer.error(
                    "invalid_request",
                    "code_challenge must be 43 base64url characters (SHA-256)",
                ));
            }
            (Some(_), _) => {
                return Ok(answer.error(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted)",
                ));
            }
        };
        let scopes = match parse_scopes(params.scope.as_deref()) {
            Ok(s) => s,
            Err(e) => return Ok(answer.error(e.code(), &e.to_string())),
        };
        let resource = match params.resource.as_deref() {
            None => resource::mcp_resource(issuer),
            Some(r) => match resource::canonical(issuer, r, &self.settings.mcp_servers) {
                Some(canonical) => canonical,
                None => {
                    return Ok(answer.error(
                        "invalid_target",
                        &format!("this server does not protect the resource `{r}`"),
                    ));
                }
            },
        };
        let prompts: Vec<&str> = params
            .prompt
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
            .collect();
        if prompts.contains(&"none") && prompts.len() > 1 {
            return Ok(answer.error(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
        let must_ask = prompts.iter().any(|p| matches!(*p, "consent" | "login"));
        let pending = Pending {
            id: id("authz_")?,
            csrf: random("csrf_")?,
            client_id: client.id.clone(),
            client_name: client.name.clone(),
            redirect_uri: redirect_uri.clone(),
            state: params.state.clone(),
            code_challenge: challenge,
            scopes,
            resource,
            issuer: issuer.to_owned(),
            one_click: false,
            expires_at: self.clock.now().plus(self.settings.consent_ttl),
        };
        let mut pending = pending;
        if !must_ask {
            // Anyone who knows a public client's id can start an authorization, so remembered
            // consent never issues a code by itself: it only spares the signed-in owner the
            // passphrase.
            let remembered = self
                .store
                .live_grants(Some(&client.id))
                .await?
                .iter()
                .any(|g| g.scopes.covers(pending.scopes));
            if prompts.contains(&"none") {
                return Ok(answer.error(
                    "consent_required",
                    if remembered {
                        "the owner confirms each sign-in in the browser; prompt=none cannot be answered"
                    } else {
                        "the owner has not allowed this application yet"
                    },
                ));
            }
            pending.one_click = remembered && owner_signed_in;
        }
        self.hold(&pending).await?;
        Ok(Authorize::Consent(Box::new(pending)))
    }

    /// Keeps the consent form in the store, so the answer may come through any instance.
    pub(super) async fn hold(&self, pending: &Pending) -> Result<(), Error> {
        let row = ConsentFormRow {
            id: pending.id.clone(),
            csrf_hash: TokenHash::of(&pending.csrf).0.to_vec(),
            // Strings and a flag: serialising cannot fail.
            request: serde_json::to_string(&Held::of(pending)).unwrap_or_default(),
            expires_at: pending.expires_at,
        };
        let max = i64::try_from(MAX_PENDING).unwrap_or(i64::MAX);
        self.store
            .hold_consent_form(&row, self.clock.now(), max)
            .await?;
        Ok(())
    }

    /// The pending authorization a consent form answers, if `csrf` is its current token. The
    /// token is used up: the pending authorization gets a new one (for the form shown again
    /// after a wrong passphrase), so a replayed form fails.
    pub async fn take_form(&self, pending_id: &str, csrf: &str) -> Result<Pending, Error> {
        let stale = || Error::InvalidRequest(ConsentError::Stale.to_string());
        if pending_id.is_empty() || csrf.is_empty() {
            return Err(stale());
        }
        let next = random("csrf_")?;
        let row = self
            .store
            .take_consent_form(
                pending_id,
                &TokenHash::of(csrf).0,
                &TokenHash::of(&next).0,
                self.clock.now(),
            )
            .await?
            .ok_or_else(stale)?;
        let held: Held = serde_json::from_str(&row.request).map_err(|_| stale())?;
        held.pending(row.id, next, row.expires_at).ok_or_else(stale)
    }

    /// The owner answered (the passphrase already checked for an approval): the redirect to send.
    pub async fn answer(
        &self,
        pending: &Pending,
        approve: bool,
        remember: bool,
    ) -> Result<String, Error> {
        if !self.store.end_consent_form(&pending.id).await? {
            return Err(Error::InvalidRequest(ConsentError::Stale.to_string()));
        }
        let answer = Answer {
            redirect_uri: &pending.redirect_uri,
            state: pending.state.as_deref(),
            issuer: &pending.issuer,
        };
        if !approve {
            return Ok(
                match answer.error("access_denied", "the owner denied access") {
                    Authorize::Redirect(url) => url,
                    _ => pending.redirect_uri.clone(),
                },
            );
        }
        if remember {
            let grant = GrantRow {
                id: id("grt_")?,
                client_id: pending.client_id.clone(),
                scopes: pending.scopes,
                created_at: self.clock.now(),
                revoked_at: None,
            };
            let audit = vec![NewAudit::of(
                grant.created_at,
                events::OAUTH_CONSENT_REMEMBERED,
                Some(&grant.id),
                json!({"client_id": grant.client_id, "scope": scope_string(&grant.scopes)}),
            )];
            self.store.insert_grant(&grant, audit).await?;
        }
        self.issue_code(pending).await
    }

    pub(super) async fn issue_code(&self, pending: &Pending) -> Result<String, Error> {
        let code = random(CODE_PREFIX)?;
        let now = self.clock.now();
        let audit = vec![NewAudit::of(
            now,
            events::OAUTH_CONSENT_GRANTED,
            Some(&pending.client_id),
            json!({
                "client_name": pending.client_name, "scope": scope_string(&pending.scopes),
                "resource": pending.resource, "redirect_uri": pending.redirect_uri,
                "one_click": pending.one_click,
            }),
        )];
        self.store
            .insert_code(
                &CodeRow {
                    code_hash: TokenHash::of(&code).0,
                    client_id: pending.client_id.clone(),
                    redirect_uri: pending.redirect_uri.clone(),
                    code_challenge: pending.code_challenge.clone(),
                    resource: pending.resource.clone(),
                    scopes: pending.scopes,
                    family_id: id("fam_")?,
                    created_at: now,
                    expires_at: now.plus(self.settings.code_ttl),
                },
                audit,
            )
            .await?;
        Ok(Answer {
            redirect_uri: &pending.redirect_uri,
            state: pending.state.as_deref(),
            issuer: &pending.issuer,
        }
        .with(&[("code", &code)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_state_and_issuer_and_keep_the_redirect_query() {
        let a = Answer {
            redirect_uri: "http://127.0.0.1:9/cb?x=1",
            state: Some("s t"),
            issuer: "http://127.0.0.1:7700",
        };
        assert_eq!(
            a.with(&[("code", "c")]),
            "http://127.0.0.1:9/cb?x=1&code=c&state=s+t&iss=http%3A%2F%2F127.0.0.1%3A7700"
        );
    }
}
