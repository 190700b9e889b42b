//! `agentgate oauth`: the MCP clients registered with the authorization server and the consent
//! the owner asked to remember.

use super::terminal::say;
use reqwest::Method;
use serde_json::Value;

use super::client::Client;
use super::commands::print_json;
use super::{Global, OauthClientsCommand, OauthCommand, OauthGrantsCommand};

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

pub(super) async fn run(global: &Global, command: OauthCommand) -> anyhow::Result<()> {
    let client = Client::from_global(global)?;
    match command {
        OauthCommand::Clients { command: None } => {
            let list: Value = client.get("/api/v1/oauth/clients").await?;
            if global.json {
                return print_json(&list);
            }
            let clients = list["clients"].as_array().cloned().unwrap_or_default();
            if clients.is_empty() {
                say!("no registered clients");
            }
            for c in &clients {
                let redirects: Vec<&str> = c["redirect_uris"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                say!(
                    "{}  {}  auth={}  registered {}  redirect {}",
                    text(c, "client_id"),
                    c["client_name"].as_str().unwrap_or("(no name)"),
                    text(c, "token_endpoint_auth_method"),
                    text(c, "created_at"),
                    redirects.join(" ")
                );
            }
        }
        OauthCommand::Clients {
            command: Some(OauthClientsCommand::Rm { id }),
        } => {
            let done: Value = client
                .send::<(), _>(Method::DELETE, &format!("/api/v1/oauth/clients/{id}"), None)
                .await?;
            if global.json {
                return print_json(&done);
            }
            say!(
                "deleted {id} ({} access token(s) revoked)",
                done["access_tokens_revoked"]
            );
        }
        OauthCommand::Grants { command: None } => {
            let list: Value = client.get("/api/v1/oauth/grants").await?;
            if global.json {
                return print_json(&list);
            }
            let grants = list["grants"].as_array().cloned().unwrap_or_default();
            if grants.is_empty() {
                say!("no remembered consent");
            }
            for g in &grants {
                say!(
                    "{}  {} ({})  scope: {}  since {}",
                    text(g, "id"),
                    g["client_name"].as_str().unwrap_or("(no name)"),
                    text(g, "client_id"),
                    text(g, "scope"),
                    text(g, "created_at")
                );
            }
        }
        OauthCommand::Grants {
            command: Some(OauthGrantsCommand::Revoke { id }),
        } => {
            let done: Value = client
                .send::<(), _>(Method::DELETE, &format!("/api/v1/oauth/grants/{id}"), None)
                .await?;
            if global.json {
                return print_json(&done);
            }
            say!("revoked {id}: the client will see the consent page again");
        }
    }
    Ok(())
}
