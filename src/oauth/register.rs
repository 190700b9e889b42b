//! Dynamic client registration (RFC 7591): the metadata a client may send, checked field by
//! field; clients never authorized have a cap of their own and expire.

use super::*;

impl OAuth {
    /// RFC 7591 registration. `body` is the parsed JSON; unknown members are ignored. Returns the
    /// registration response (with the client secret, shown this once, for confidential clients).
    pub async fn register(&self, body: &Value) -> Result<Value, Error> {
        let meta = |m: String| Error::InvalidClientMetadata(m);
        let obj = body
            .as_object()
            .ok_or_else(|| meta("the registration body must be a JSON object".into()))?;
        let strings = |key: &str| -> Result<Option<Vec<String>>, Error> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| meta(format!("`{key}` must be an array of strings")))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(meta(format!("`{key}` must be an array of strings"))),
            }
        };
        let text = |key: &str, max: usize| -> Result<Option<String>, Error> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
                Some(Value::String(_)) => Err(meta(format!("`{key}` has at most {max} bytes"))),
                Some(_) => Err(meta(format!("`{key}` must be a string"))),
            }
        };
        let redirect_uris = strings("redirect_uris")?.unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(Error::InvalidRedirectUri(
                "`redirect_uris` must list at least one URI".into(),
            ));
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(Error::InvalidRedirectUri(format!(
                "at most {MAX_REDIRECT_URIS} redirect URIs"
            )));
        }
        for uri in &redirect_uris {
            redirect::check_registrable(uri).map_err(Error::InvalidRedirectUri)?;
        }
        let auth_method =
            text("token_endpoint_auth_method", 64)?.unwrap_or_else(|| "client_secret_basic".into());
        if !["none", "client_secret_basic", "client_secret_post"].contains(&auth_method.as_str()) {
            return Err(meta(format!(
                "token_endpoint_auth_method `{auth_method}` is not supported; use none, \
                 client_secret_basic or client_secret_post"
            )));
        }
        let grant_types =
            strings("grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
        if let Some(bad) = grant_types
            .iter()
            .find(|g| !["authorization_code", "refresh_token"].contains(&g.as_str()))
        {
            return Err(meta(format!(
                "grant type `{bad}` is not supported; use authorization_code and refresh_token"
            )));
        }
        let response_types = strings("response_types")?.unwrap_or_else(|| vec!["code".into()]);
        if response_types.iter().any(|r| r != "code") {
            return Err(meta("the only response type is `code`".into()));
        }
        let application_type = text("application_type", 16)?.unwrap_or_else(|| "native".into());
        if !["native", "web"].contains(&application_type.as_str()) {
            return Err(meta("application_type is `native` or `web`".into()));
        }
        let client_name = text("client_name", 200)?;
        let scope = text("scope", 1000)?;
        let now = self.clock.now();
        let client_id = id("cli_")?;
        let secret = match auth_method.as_str() {
            "none" => None,
            _ => Some(random(CLIENT_SECRET_PREFIX)?),
        };
        let mut response = json!({
            "client_id": client_id,
            "client_id_issued_at": now.as_millis() / 1000,
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": auth_method,
            "grant_types": grant_types,
            "response_types": response_types,
            "application_type": application_type,
        });
        if let Some(name) = &client_name {
            response["client_name"] = json!(name);
        }
        if let Some(scope) = &scope {
            response["scope"] = json!(scope);
        }
        let row = ClientRow {
            id: client_id,
            secret_hash: secret.as_deref().map(|s| TokenHash::of(s).0),
            name: client_name,
            redirect_uris,
            auth_method,
            application_type,
            grant_types,
            scope,
            metadata: response.to_string(),
            created_at: now,
            deleted_at: None,
        };
        let cap = store::oauth::ClientCap {
            max: self.settings.max_clients,
            unauthorized: self
                .settings
                .max_unauthorized_clients
                .min(self.settings.max_clients),
            stale_before: Timestamp::from_millis(
                now.as_millis()
                    - i64::try_from(self.settings.unauthorized_client_ttl.as_millis())
                        .unwrap_or(i64::MAX / 2),
            ),
            now,
        };
        let audit = vec![NewAudit::of(
            now,
            events::OAUTH_CLIENT_REGISTERED,
            Some(&row.id),
            json!({
                "name": row.name, "redirect_uris": row.redirect_uris,
                "auth_method": row.auth_method,
            }),
        )];
        match self.store.insert_client(&row, cap, audit).await {
            Err(store::Error::Conflict(store::Conflict::ClientCap)) => {
                return Err(Error::TooManyClients(self.settings.max_clients));
            }
            other => other?,
        }
        if let Some(secret) = secret {
            response["client_secret"] = json!(secret);
            response["client_secret_expires_at"] = json!(0);
        }
        Ok(response)
    }
}
