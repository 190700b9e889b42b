//! Bridges: the daemon follows an agent server's own permission prompts and answers them through
//! the broker. Today one kind, opencode (`opencode`): `[[bridge]]` entries in config.toml, one
//! task each, started with the daemon and stopped with it.
//!
//! The mapping of prompts to requests is pure and lives in `crate::agents::opencode`; this module
//! owns connections, credentials, retries and the state `agentgate bridge list` shows.

mod opencode;
mod sse;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::api::{BridgeInfo, BridgeList};
use crate::auth::Principal;
use crate::broker::Broker;
use crate::clock::Clock;
use crate::config::SecretSource;
use crate::store::Store;

/// `[[bridge]]` as written in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// `opencode`.
    pub kind: String,
    /// A unique name: the agent name of its requests, and its service token's.
    pub name: String,
    /// The agent server, e.g. `http://127.0.0.1:4096`.
    pub url: String,
    /// HTTP Basic user (default `opencode`).
    pub username: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (re-read on every connection, so it can rotate).
    pub password_file: Option<PathBuf>,
    /// Refused with a clear message: a password never goes in the config file.
    pub password: Option<toml::Value>,
    /// Follow one directory's instance (`/event?directory=`) instead of all (`/global/event`).
    pub directory: Option<PathBuf>,
}

/// A checked `[[bridge]]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Its name.
    pub name: String,
    /// The server's base URL, without credentials or a trailing slash.
    pub url: url::Url,
    /// HTTP Basic user.
    pub username: String,
    /// HTTP Basic password, read on every connection; `None`: an opencode without one.
    pub password: Option<SecretSource>,
    /// One directory, or every one.
    pub directory: Option<String>,
}

impl BridgeConfig {
    /// Checks the entry; errors are sentences naming the bridge.
    pub fn settings(&self) -> Result<Settings, String> {
        let name = &self.name;
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(format!(
                "[[bridge]] name = `{name}`: use 1 to 64 letters, digits, '.', '_' or '-'"
            ));
        }
        if self.kind != "opencode" {
            return Err(format!(
                "[[bridge]] `{name}`: kind = `{}` is not known (known: opencode)",
                self.kind
            ));
        }
        if self.password.is_some() {
            return Err(format!(
                "[[bridge]] `{name}`: a password never goes in the config file; use \
                 password_env = \"OPENCODE_SERVER_PASSWORD\" or password_file = \"/path\""
            ));
        }
        let url = url::Url::parse(&self.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                format!(
                    "[[bridge]] `{name}`: url = `{}` is not an http(s) URL",
                    self.url
                )
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "[[bridge]] `{name}`: put no credentials in the url; use username and \
                 password_env or password_file"
            ));
        }
        let password = SecretSource::of(
            self.password_env.as_ref(),
            self.password_file.as_ref(),
            "password",
        )
        .map_err(|e| format!("[[bridge]] `{name}`: {e}"))?;
        let directory = match &self.directory {
            Some(dir) if !dir.is_absolute() => {
                return Err(format!(
                    "[[bridge]] `{name}`: directory = `{}` must be an absolute path",
                    dir.display()
                ));
            }
            Some(dir) => Some(dir.display().to_string()),
            None => None,
        };
        Ok(Settings {
            name: name.clone(),
            url,
            username: self.username.clone().unwrap_or_else(|| "opencode".into()),
            password,
            directory,
        })
    }
}

/// One bridge's shared state: what `bridge list` shows.
pub struct Bridge {
    settings: Settings,
    info: Mutex<BridgeInfo>,
}

impl Bridge {
    fn update(&self, f: impl FnOnce(&mut BridgeInfo)) {
        f(&mut self.info.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Every configured bridge.
#[derive(Clone, Default)]
pub struct Bridges(Arc<Vec<Arc<Bridge>>>);

impl Bridges {
    /// The bridges for these settings, not yet started.
    pub fn new(settings: Vec<Settings>) -> Bridges {
        Bridges(Arc::new(
            settings
                .into_iter()
                .map(|s| {
                    let mut url = s.url.clone();
                    url.set_query(None);
                    Arc::new(Bridge {
                        info: Mutex::new(BridgeInfo {
                            name: s.name.clone(),
                            kind: "opencode".into(),
                            url: url.to_string(),
                            ..BridgeInfo::default()
                        }),
                        settings: s,
                    })
                })
                .collect(),
        ))
    }

    /// The names of the service credentials the bridges ask with.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|b| b.settings.name.as_str())
    }

    /// Starts every bridge, each asking as its own `request` credential; they stop when the
    /// broker does.
    pub fn start(
        &self,
        broker: Arc<Broker>,
        store: Store,
        clock: Clock,
        principals: Vec<Arc<Principal>>,
    ) {
        for (bridge, who) in self.0.iter().zip(principals) {
            opencode::spawn(
                bridge.clone(),
                broker.clone(),
                store.clone(),
                clock.clone(),
                who,
            );
        }
    }

    /// How each bridge stands.
    pub fn list(&self) -> BridgeList {
        BridgeList {
            bridges: self
                .0
                .iter()
                .map(|b| b.info.lock().unwrap_or_else(|p| p.into_inner()).clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, String> {
        toml::from_str::<BridgeConfig>(text)
            .map_err(|e| e.to_string())?
            .settings()
    }

    #[test]
    fn bad_entries_are_refused_with_a_sentence() {
        let base = "kind = \"opencode\"\nname = \"oc\"\n";
        for (extra, words) in [
            ("url = \"ftp://x\"", "not an http(s) URL"),
            (
                "url = \"http://u:p@127.0.0.1:1\"",
                "no credentials in the url",
            ),
            (
                "url = \"http://127.0.0.1:1\"\npassword = \"hunter2\"",
                "never goes in the config file",
            ),
            (
                "url = \"http://127.0.0.1:1\"\npassword_env = \"A\"\npassword_file = \"/b\"",
                "not both",
            ),
            (
                "url = \"http://127.0.0.1:1\"\ndirectory = \"rel\"",
                "absolute path",
            ),
        ] {
            let err = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(err.contains(words), "{extra}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = parse("kind = \"vscode\"\nname = \"x\"\nurl = \"http://a\"").unwrap_err();
        assert!(err.contains("not known"), "{err}");
        let err = parse("kind = \"opencode\"\nname = \"a b\"\nurl = \"http://a\"").unwrap_err();
        assert!(err.contains("letters, digits"), "{err}");
        let ok = parse(&format!("{base}url = \"http://127.0.0.1:4096/\"")).unwrap();
        assert_eq!(ok.username, "opencode");
    }
}
