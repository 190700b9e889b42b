//! `agentgate oauth`: the MCP clients registered with the authorization server and the consent
//! the owner asked to remember.

use super::terminal::say;
use reqwest::Method;

use super::client::Client;
use super::commands::print_json;
use super::{Global, OauthClientsCommand, OauthCommand, OauthGrantsCommand};
use crate::api::{ClientList, DeletedClient, GrantList, RevokedGrant};

pub(super) async fn run(global: &Global, command: OauthCommand) -> anyhow::Result<()> {
    let client = Client::from_global(global)?;
    match command {
        OauthCommand::Clients { command: None } => {
            let list: ClientList = client.get("/api/v1/oauth/clients").await?;
            if global.json {
                return print_json(&list);
            }
            if list.clients.is_empty() {
                say!("no registered clients");
            }
            for c in &list.clients {
                say!(
                    "{}  {}  auth={}  registered {}  redirect {}",
                    c.client_id,
                    c.client_name.as_deref().unwrap_or("(no name)"),
                    c.token_endpoint_auth_method,
                    c.created_at,
                    c.redirect_uris.join(" ")
                );
            }
        }
        OauthCommand::Clients {
            command: Some(OauthClientsCommand::Rm { id }),
        } => {
            let done: DeletedClient = client
                .send::<(), _>(Method::DELETE, &format!("/api/v1/oauth/clients/{id}"), None)
                .await?;
            if global.json {
                return print_json(&done);
            }
            say!(
                "deleted {} ({} access token(s) revoked)",
                done.deleted,
                done.access_tokens_revoked
            );
        }
        OauthCommand::Grants { command: None } => {
            let list: GrantList = client.get("/api/v1/oauth/grants").await?;
            if global.json {
                return print_json(&list);
            }
            if list.grants.is_empty() {
                say!("no remembered consent");
            }
            for g in &list.grants {
                say!(
                    "{}  {} ({})  scope: {}  since {}",
                    g.id,
                    g.client_name.as_deref().unwrap_or("(no name)"),
                    g.client_id,
                    g.scope,
                    g.created_at
                );
            }
        }
        OauthCommand::Grants {
            command: Some(OauthGrantsCommand::Revoke { id }),
        } => {
            let done: RevokedGrant = client
                .send::<(), _>(Method::DELETE, &format!("/api/v1/oauth/grants/{id}"), None)
                .await?;
            if global.json {
                return print_json(&done);
            }
            say!(
                "revoked {}: the client will see the consent page again",
                done.revoked
            );
        }
    }
    Ok(())
}
