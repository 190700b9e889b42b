//! `agentgate pair`: a one-time link (and a QR code for a phone's camera) that signs another
//! browser into the web inbox with limited scopes; `pair list`, `pair revoke`.

use super::terminal::{esay, say};
use agentgate_policy::Scope;
use anyhow::Context;
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use reqwest::Method;

use super::client::Client;
use super::commands::{print_json, scopes};
use super::{Global, PairArgs, PairCommand};
use crate::api::{CreatePairing, CreatedPairing, Expiry, PairingList, RevokedPairing};

pub(super) async fn run(global: &Global, args: PairArgs) -> anyhow::Result<()> {
    // Validate before touching the network.
    let request = match &args.command {
        Some(_) => None,
        None => {
            let scopes = args
                .scopes
                .iter()
                .map(|s| s.trim().parse::<Scope>())
                .collect::<Result<Vec<_>, _>>()?;
            let expires_in = Expiry::parse(&args.expires).map_err(anyhow::Error::msg)?;
            Some(CreatePairing {
                name: Some(args.name.clone()),
                scopes: Some(scopes),
                expires_in: Some(expires_in),
            })
        }
    };
    let client = Client::from_global(global)?;
    match (args.command, request) {
        (Some(PairCommand::List), _) => {
            let list: PairingList = client.get("/api/v1/pairings").await?;
            if global.json {
                return print_json(&list);
            }
            if list.pairings.is_empty() {
                say!("no pairings");
            }
            for p in &list.pairings {
                let state = match p.redeemed_at {
                    Some(at) => format!("device signed in at {at}"),
                    None => format!("link unused, works until {}", p.expires_at),
                };
                say!("{}  {}  {}  {}", p.id, p.name, scopes(&p.scopes), state);
            }
        }
        (Some(PairCommand::Revoke { id }), _) => {
            let revoked: RevokedPairing = client
                .send::<(), _>(Method::DELETE, &format!("/api/v1/pairings/{id}"), None)
                .await?;
            if global.json {
                return print_json(&revoked);
            }
            say!(
                "revoked {} ({} signed-in device(s) signed out)",
                revoked.id,
                revoked.sessions_ended
            );
        }
        (None, Some(request)) => {
            let created: CreatedPairing = client
                .send(Method::POST, "/api/v1/pairings", Some(&request))
                .await?;
            if global.json {
                return print_json(&created);
            }
            if !args.no_qr {
                let code = QrCode::new(created.url.as_bytes())
                    .context("encoding the link as a QR code")?;
                let art = code
                    .render::<Dense1x2>()
                    .dark_color(Dense1x2::Light)
                    .light_color(Dense1x2::Dark)
                    .build();
                println!("{art}");
            }
            say!("{}", created.url);
            esay!(
                "Open this link once, before {}, to sign a device in as `{} (paired)` with scopes {}. \
                 Revoke with `agentgate pair revoke {}`.",
                created.info.expires_at,
                created.info.name,
                scopes(&created.info.scopes),
                created.info.id
            );
        }
        (None, None) => anyhow::bail!("nothing to do"),
    }
    Ok(())
}
