//! Gateways: agentgate's tokens and its one scope table in front of agent servers that have none
//! of their own (opencode's one shared password, OpenAI-compatible servers). Each `[[gateway]]`
//! names a preset route table (`table`), refined by its own routes.
//!
//! Today a gateway answers forward-auth (`/api/v1/forward-auth/{gateway}`) for a reverse proxy
//! the person already runs (nginx `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`);
//! agentgate's own proxy listener is the next step.

pub mod table;

use std::sync::Arc;

use agentgate_policy::Scope;
use serde::Deserialize;

pub use table::{Preset, Refused, RouteSpec, Table};

/// `[[gateway]]` as written in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// A unique name: `/api/v1/forward-auth/{name}`.
    pub name: String,
    /// `generic` (default), `opencode` or `openai`.
    pub preset: Option<String>,
    /// The upstream the proxy in front forwards to (shown by `gateway routes`).
    pub upstream: Option<String>,
    /// `[[gateway.routes]]`: rows that refine the preset, first match first.
    pub routes: Option<Vec<RouteConfig>>,
}

/// `[[gateway.routes]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `GET`, `POST`, … or `*`.
    pub method: String,
    /// `/session/*/share`: `*` one segment, a final `**` any rest.
    pub path: String,
    /// `read`, `write`, `execute`, `approve`, `request` or `admin`.
    pub scope: String,
}

/// A checked gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Its name.
    pub name: String,
    /// Its preset.
    pub preset: Preset,
    /// Its table.
    pub table: Table,
    /// The upstream, as configured.
    pub upstream: Option<String>,
}

impl GatewayConfig {
    /// Checks the entry; errors are sentences naming the gateway.
    pub fn gateway(&self) -> Result<Gateway, String> {
        let name = &self.name;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !valid {
            return Err(format!(
                "[[gateway]] name = `{name}`: use 1 to 64 letters, digits, '_' or '-'"
            ));
        }
        let preset_name = self.preset.as_deref().unwrap_or("generic");
        let preset = Preset::parse(preset_name).ok_or_else(|| {
            format!(
                "[[gateway]] `{name}`: preset = `{preset_name}` is not known (generic, opencode or openai)"
            )
        })?;
        if let Some(upstream) = &self.upstream {
            url::Url::parse(upstream)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    format!("[[gateway]] `{name}`: upstream = `{upstream}` is not an http(s) URL")
                })?;
        }
        let mut routes = Vec::new();
        for r in self.routes.iter().flatten() {
            let scope = r.scope.parse::<Scope>().map_err(|_| {
                format!(
                    "[[gateway]] `{name}`: route {} {}: scope `{}` is not known",
                    r.method, r.path, r.scope
                )
            })?;
            routes.push(RouteSpec {
                method: r.method.clone(),
                path: r.path.clone(),
                scope,
            });
        }
        let table =
            Table::new(preset, &routes).map_err(|e| format!("[[gateway]] `{name}`: {e}"))?;
        Ok(Gateway {
            name: name.clone(),
            preset,
            table,
            upstream: self.upstream.clone(),
        })
    }
}

/// Every configured gateway.
#[derive(Debug, Clone, Default)]
pub struct Gateways(Arc<Vec<Gateway>>);

impl Gateways {
    /// The gateways, checked for unique names.
    pub fn new(list: Vec<Gateway>) -> Result<Gateways, String> {
        for (i, g) in list.iter().enumerate() {
            if list[..i].iter().any(|o| o.name == g.name) {
                return Err(format!("[[gateway]] name = `{}` is used twice", g.name));
            }
        }
        Ok(Gateways(Arc::new(list)))
    }

    /// The gateway named `name`.
    pub fn get(&self, name: &str) -> Option<&Gateway> {
        self.0.iter().find(|g| g.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Gateway, String> {
        toml::from_str::<GatewayConfig>(text)
            .map_err(|e| e.to_string())?
            .gateway()
    }

    #[test]
    fn bad_entries_are_refused_with_a_sentence() {
        for (text, words) in [
            ("name = \"a b\"", "letters, digits"),
            ("name = \"g\"\npreset = \"vscode\"", "not known"),
            ("name = \"g\"\nupstream = \"ftp://x\"", "not an http(s) URL"),
            (
                "name = \"g\"\n[[routes]]\nmethod = \"GET\"\npath = \"/a/**/b\"\nscope = \"read\"",
                "segments are names",
            ),
            (
                "name = \"g\"\n[[routes]]\nmethod = \"GET\"\npath = \"/a\"\nscope = \"root\"",
                "scope `root` is not known",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(words), "{text}: {err}");
        }
        assert!(parse("name = \"g\"\nlisten = \"127.0.0.1:1\"").is_err());
        let ok = parse("name = \"oc\"\npreset = \"opencode\"").unwrap();
        assert_eq!(ok.preset, Preset::Opencode);
        let twice = Gateways::new(vec![ok.clone(), ok]);
        assert!(twice.unwrap_err().contains("used twice"));
    }
}
