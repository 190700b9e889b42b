//! The owner's side: registered clients and remembered consents, listed and revoked.

use super::*;

impl OAuth {
    /// Registered clients.
    pub async fn clients(&self) -> Result<Vec<ClientInfo>, Error> {
        Ok(self
            .store
            .live_clients()
            .await?
            .into_iter()
            .map(|c| ClientInfo {
                client_id: c.id,
                client_name: c.name,
                redirect_uris: c.redirect_uris,
                token_endpoint_auth_method: c.auth_method,
                created_at: c.created_at,
            })
            .collect())
    }

    /// Deletes a client: its grants, refresh tokens and access tokens stop working at once, and
    /// it gets `invalid_client` from then on.
    pub async fn delete_client(&self, client_id: &str) -> Result<usize, Error> {
        let now = self.clock.now();
        let audit = vec![NewAudit::of(
            now,
            events::OAUTH_CLIENT_DELETED,
            Some(client_id),
            json!({}),
        )];
        let revoked = match self.store.delete_client(client_id, now, audit).await {
            Err(store::Error::NotFound) => {
                return Err(Error::NotFound(Missing::Client, client_id.to_owned()));
            }
            other => other?,
        };
        self.forget(&revoked);
        Ok(revoked.len())
    }

    /// Remembered consents.
    pub async fn grants(&self) -> Result<Vec<GrantInfo>, Error> {
        let names: HashMap<String, Option<String>> = self
            .store
            .live_clients()
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        Ok(self
            .store
            .live_grants(None)
            .await?
            .into_iter()
            .map(|g| GrantInfo {
                client_name: names.get(&g.client_id).cloned().flatten(),
                id: g.id,
                client_id: g.client_id,
                scope: scope_string(&g.scopes),
                created_at: g.created_at,
            })
            .collect())
    }

    /// Revokes a remembered consent: the client sees the consent page again next time. Tokens
    /// already issued keep working until they expire or are revoked.
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<(), Error> {
        let now = self.clock.now();
        let audit = move |g: &GrantRow| {
            vec![NewAudit::of(
                now,
                events::OAUTH_CONSENT_REVOKED,
                Some(&g.id),
                json!({"client_id": g.client_id, "scope": scope_string(&g.scopes)}),
            )]
        };
        match self.store.revoke_grant(grant_id, now, audit).await {
            Err(store::Error::NotFound) => {
                Err(Error::NotFound(Missing::Grant, grant_id.to_owned()))
            }
            other => other.map(|_| ()).map_err(Error::from),
        }
    }

    pub(super) fn forget(&self, token_ids: &[String]) {
        for id in token_ids {
            self.auth.forget(id);
        }
    }
}
