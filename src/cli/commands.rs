//! The client verbs: `token create|list|revoke`, `whoami`, `passphrase set`.

use super::terminal::{esay, say};
use std::io::{BufRead, IsTerminal};

use agentgate_policy::Scope;
use anyhow::Context;
use reqwest::Method;
use serde::Serialize;

use super::client::Client;
use super::{Command, Global, PassphraseCommand, TokenCommand};
use crate::api::{
    CreateToken, CreatedToken, Expiry, PassphraseSet, RevokedToken, SetPassphrase, TokenInfo,
    TokenList, WhoAmI,
};

pub(super) async fn run(global: &Global, command: Command) -> anyhow::Result<u8> {
    if let Some(broker_command) = super::requests::BrokerCommand::from(&command) {
        let broker_command = broker_command?;
        let client = Client::from_global(global)?;
        return super::requests::run(&client, global.json, broker_command).await;
    }
    // Validate what can be validated before touching the network.
    let command = Validated::from(command)?;
    let client = Client::from_global(global)?;
    let json = global.json;
    match command {
        Validated::Create(request) => {
            let created: CreatedToken = client
                .send(Method::POST, "/api/v1/tokens", Some(&request))
                .await?;
            if json {
                print_json(&created)?;
            } else {
                println!("{}", created.token);
                esay!(
                    "created token {} ({}) with scopes {}, expires {}. The secret above is shown only once.",
                    created.info.name,
                    created.info.id,
                    scopes(&created.info.scopes),
                    created
                        .info
                        .expires_at
                        .map_or("never".to_owned(), |t| t.to_string())
                );
            }
        }
        Validated::List => {
            let list: TokenList = client.get("/api/v1/tokens").await?;
            if json {
                print_json(&list)?;
            } else {
                print_table(&list.tokens);
            }
        }
        Validated::Revoke(which) => {
            let id = resolve_token(&client, &which).await?;
            let revoked: RevokedToken = client
                .send::<(), _>(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
                .await?;
            if json {
                print_json(&revoked)?;
            } else {
                say!("revoked {} ({})", revoked.name, revoked.id);
            }
        }
        Validated::Whoami => {
            let me: WhoAmI = client.get("/api/v1/whoami").await?;
            if json {
                print_json(&me)?;
            } else {
                say!("id:      {}", me.id);
                say!("name:    {}", me.name);
                say!("scopes:  {}", scopes(&me.scopes));
                say!(
                    "expires: {}",
                    me.expires_at.map_or("never".to_owned(), |t| t.to_string())
                );
            }
        }
        Validated::SetPassphrase { stdin } => {
            let passphrase = read_passphrase(stdin)?;
            let set: PassphraseSet = client
                .send(
                    Method::PUT,
                    "/api/v1/passphrase",
                    Some(&SetPassphrase { passphrase }),
                )
                .await?;
            if json {
                print_json(&set)?;
            } else {
                say!("owner passphrase set at {}", set.updated_at);
            }
        }
    }
    Ok(0)
}

enum Validated {
    Create(CreateToken),
    List,
    Revoke(String),
    Whoami,
    SetPassphrase { stdin: bool },
}

impl Validated {
    fn from(command: Command) -> anyhow::Result<Validated> {
        Ok(match command {
            Command::Token(TokenCommand::Create {
                name,
                scopes,
                expires,
                person,
            }) => {
                let scopes = scopes
                    .iter()
                    .map(|s| s.trim().parse::<Scope>())
                    .collect::<Result<Vec<_>, _>>()?;
                let expires_in = Expiry::parse(&expires).map_err(anyhow::Error::msg)?;
                Validated::Create(CreateToken {
                    name,
                    scopes,
                    expires_in: Some(expires_in),
                    person,
                })
            }
            Command::Token(TokenCommand::List) => Validated::List,
            Command::Token(TokenCommand::Revoke { which }) => Validated::Revoke(which),
            Command::Whoami => Validated::Whoami,
            Command::Passphrase(PassphraseCommand::Set { stdin }) => {
                Validated::SetPassphrase { stdin }
            }
            _ => anyhow::bail!("not a client command"),
        })
    }
}

/// An id (`tok_…`) is used as given; a name is looked up among live tokens.
async fn resolve_token(client: &Client, which: &str) -> anyhow::Result<String> {
    if which.starts_with("tok_") {
        return Ok(which.to_owned());
    }
    let list: TokenList = client.get("/api/v1/tokens").await?;
    list.tokens
        .into_iter()
        .find(|t| t.name == which)
        .map(|t| t.id)
        .with_context(|| format!("no live token is named `{which}` (see `agentgate token list`)"))
}

fn read_passphrase(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the passphrase from standard input")?;
        let passphrase = line.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(!passphrase.is_empty(), "no passphrase on standard input");
        return Ok(passphrase);
    }
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "no terminal to read the passphrase from; pipe it in with --stdin"
    );
    let first = rpassword::prompt_password("New owner passphrase: ")
        .context("reading the passphrase from the terminal")?;
    let second = rpassword::prompt_password("Repeat it: ")
        .context("reading the passphrase from the terminal")?;
    anyhow::ensure!(
        first == second,
        "the two passphrases differ; nothing was changed"
    );
    Ok(first)
}

pub(super) fn scopes(list: &[Scope]) -> String {
    list.iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_table(tokens: &[TokenInfo]) {
    let rows: Vec<[String; 5]> = tokens
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                t.name.clone(),
                scopes(&t.scopes),
                match (t.expires_at, t.expired) {
                    (None, _) => "never".to_owned(),
                    (Some(at), true) => format!("{at} (expired)"),
                    (Some(at), false) => at.to_string(),
                },
                t.last_used_at.map_or("never".to_owned(), |t| t.to_string()),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "SCOPES", "EXPIRES", "LAST USED"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        say!("{}", parts.join("  ").trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
}
