//! Gateways: agentgate's tokens and its one scope table in front of agent servers that have none
//! of their own (opencode's one shared password, OpenAI-compatible servers). Each `[[gateway]]`
//! names a preset route table (`table`), refined by its own routes.
//!
//! A gateway with `listen` is its own listener that checks every request against the table and
//! forwards it to `upstream` with the upstream's own credentials (`http::gateway`); every gateway
//! also answers forward-auth (`/api/v1/forward-auth/{gateway}`) for a reverse proxy the person
//! already runs (nginx `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`).

pub mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentgate_policy::Scope;
use serde::Deserialize;

use crate::config::SecretSource;

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
    /// `host:port` of agentgate's own proxy listener for this upstream (loopback unless
    /// `allow_remote`).
    pub listen: Option<String>,
    /// The upstream's own credentials, added to every forwarded request.
    pub upstream_auth: Option<UpstreamAuthConfig>,
    /// Largest request body forwarded, in bytes (default 32 MiB: prompts are large).
    pub body_limit: Option<u64>,
    /// Seconds the upstream has to start its answer (default 300).
    pub timeout: Option<u64>,
    /// Longest answer head (status line and headers) taken from the upstream, in bytes, and how
    /// much of an answer is read at a time (default 4096, nginx's `proxy_buffer_size`).
    pub head_limit: Option<u64>,
    /// More request headers that claim scopes or identity, removed before forwarding (beside
    /// `X-Agentgate-*` and `X-OpenClaw-Scopes`, always removed).
    pub strip_headers: Option<Vec<String>>,
}

/// `upstream_auth = { basic = {…} }`, `{ bearer_env = "…" }`, `{ bearer_file = "…" }` or
/// `{ header = { name = "…", value_env = "…" } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuthConfig {
    /// HTTP Basic.
    pub basic: Option<BasicConfig>,
    /// A bearer token from the environment.
    pub bearer_env: Option<String>,
    /// A bearer token from a file.
    pub bearer_file: Option<PathBuf>,
    /// Any fixed header.
    pub header: Option<HeaderConfig>,
}

/// `basic = { username = "opencode", password_env = "…" }` (or `password_file`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicConfig {
    /// Default `opencode`.
    pub username: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password.
    pub password_file: Option<PathBuf>,
}

/// `header = { name = "x-api-key", value_env = "…" }` (or `value_file`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderConfig {
    /// The header's name.
    pub name: String,
    /// The environment variable holding its value.
    pub value_env: Option<String>,
    /// A file holding its value.
    pub value_file: Option<PathBuf>,
}

/// A secret read from the environment or a file at start-up; `Debug` never shows it.
#[derive(Clone)]
pub struct Credential {
    /// The header to set on every forwarded request.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}: [redacted])", self.name)
    }
}

/// What a gateway with `listen` proxies to.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// The listen address.
    pub listen: SocketAddr,
    /// The upstream's base URL.
    pub upstream: url::Url,
    /// The upstream's credentials.
    pub credential: Option<Credential>,
    /// Largest request body.
    pub body_limit: u64,
    /// How long the upstream has to start answering.
    pub timeout: Duration,
    /// Longest answer head taken from the upstream (and the read size), in bytes.
    pub head_limit: usize,
    /// Request headers removed before forwarding (lowercase).
    pub strip: Vec<String>,
}

/// Default largest request body: 32 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 32 * 1024 * 1024;
/// Default longest answer head, and read size: one page, as nginx's `proxy_buffer_size`. An idle
/// proxied stream holds about this much for it; a larger limit costs more per request (buffers
/// over 4 KiB are returned to the system each time they are freed: `src/main.rs`).
pub const DEFAULT_HEAD_LIMIT: usize = 4096;
/// The range `head_limit` may take.
const HEAD_LIMITS: std::ops::RangeInclusive<u64> = 1024..=1024 * 1024;

/// The secret a `{what}_env` / `{what}_file` pair names, read now (at start-up).
fn secret(
    name: &str,
    env: Option<&String>,
    file: Option<&PathBuf>,
    what: &str,
) -> Result<String, String> {
    let source = SecretSource::of(env, file, what)
        .and_then(|s| s.ok_or_else(|| format!("set {what}_env or {what}_file")))
        .map_err(|e| format!("[[gateway]] `{name}`: {e}"))?;
    source
        .read(what)
        .map_err(|e| format!("[[gateway]] `{name}`: {e}"))
}

impl UpstreamAuthConfig {
    fn credential(&self, name: &str) -> Result<Credential, String> {
        use base64::Engine;
        let set = [
            self.basic.is_some(),
            self.bearer_env.is_some(),
            self.bearer_file.is_some(),
            self.header.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(format!(
                "[[gateway]] `{name}`: upstream_auth takes exactly one of basic, bearer_env, bearer_file, header"
            ));
        }
        if let Some(b) = &self.basic {
            let password = secret(
                name,
                b.password_env.as_ref(),
                b.password_file.as_ref(),
                "password",
            )?;
            let user = b.username.clone().unwrap_or_else(|| "opencode".into());
            let value =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            return Ok(Credential {
                name: "authorization".into(),
                value: format!("Basic {value}"),
            });
        }
        if let Some(h) = &self.header {
            let header = h.name.to_ascii_lowercase();
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(format!(
                    "[[gateway]] `{name}`: `{}` is not a header name",
                    h.name
                ));
            }
            let value = secret(name, h.value_env.as_ref(), h.value_file.as_ref(), "value")?;
            return Ok(Credential {
                name: header,
                value,
            });
        }
        let token = secret(
            name,
            self.bearer_env.as_ref(),
            self.bearer_file.as_ref(),
            "bearer",
        )?;
        Ok(Credential {
            name: "authorization".into(),
            value: format!("Bearer {token}"),
        })
    }
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
    /// agentgate's own listener for it, when `listen` is set.
    pub proxy: Option<Proxy>,
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
        let upstream = match &self.upstream {
            Some(upstream) => Some(
                url::Url::parse(upstream)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .filter(|u| u.username().is_empty() && u.password().is_none())
                    .ok_or_else(|| {
                        format!(
                            "[[gateway]] `{name}`: upstream = `{upstream}` is not an http(s) URL without credentials"
                        )
                    })?,
            ),
            None => None,
        };
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
        let proxy = match &self.listen {
            None => None,
            Some(listen) => {
                let listen = crate::config::parse_listen(listen)
                    .map_err(|e| format!("[[gateway]] `{name}`: {e}"))?;
                let Some(upstream) = upstream.clone() else {
                    return Err(format!(
                        "[[gateway]] `{name}`: a gateway with listen needs an upstream"
                    ));
                };
                if upstream.scheme() != "http" {
                    return Err(format!(
                        "[[gateway]] `{name}`: the proxy speaks plain http to its upstream (a loopback agent server)"
                    ));
                }
                let credential = match &self.upstream_auth {
                    Some(auth) => Some(auth.credential(name)?),
                    None => None,
                };
                let mut strip: Vec<String> = vec!["x-openclaw-scopes".into()];
                for h in self.strip_headers.iter().flatten() {
                    strip.push(h.to_ascii_lowercase());
                }
                Some(Proxy {
                    listen,
                    upstream,
                    credential,
                    body_limit: match self.body_limit {
                        Some(0) => {
                            return Err(format!(
                                "[[gateway]] `{name}`: body_limit must be at least 1"
                            ));
                        }
                        Some(n) => n,
                        None => DEFAULT_BODY_LIMIT,
                    },
                    timeout: match self.timeout {
                        Some(0) => {
                            return Err(format!(
                                "[[gateway]] `{name}`: timeout must be at least 1"
                            ));
                        }
                        Some(s) => Duration::from_secs(s),
                        None => Duration::from_secs(300),
                    },
                    head_limit: match self.head_limit {
                        Some(n) if !HEAD_LIMITS.contains(&n) => {
                            return Err(format!(
                                "[[gateway]] `{name}`: head_limit must be from {} to {} bytes",
                                HEAD_LIMITS.start(),
                                HEAD_LIMITS.end()
                            ));
                        }
                        Some(n) => usize::try_from(n).unwrap_or(DEFAULT_HEAD_LIMIT),
                        None => DEFAULT_HEAD_LIMIT,
                    },
                    strip,
                })
            }
        };
        if proxy.is_none() && self.upstream_auth.is_some() {
            return Err(format!(
                "[[gateway]] `{name}`: upstream_auth is used by the listener: set listen"
            ));
        }
        Ok(Gateway {
            name: name.clone(),
            preset,
            table,
            upstream: self.upstream.clone(),
            proxy,
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

    /// Every gateway, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Gateway> {
        self.0.iter()
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
        let proxy = "name = \"g\"\nlisten = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2\"";
        for bad in [
            "head_limit = 0",
            "head_limit = 1023",
            "head_limit = 1048577",
        ] {
            let err = parse(&format!("{proxy}\n{bad}")).unwrap_err();
            assert!(
                err.contains("`g`: head_limit must be from 1024 to 1048576 bytes"),
                "{bad}: {err}"
            );
        }
        let limit = |text: &str| parse(text).unwrap().proxy.unwrap().head_limit;
        assert_eq!(limit(proxy), DEFAULT_HEAD_LIMIT);
        assert_eq!(limit(&format!("{proxy}\nhead_limit = 16384")), 16384);
        let err = parse("name = \"g\"\nlisten = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.contains("needs an upstream"), "{err}");
        let err = parse(
            "name = \"g\"\nlisten = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2\"\n\
             upstream_auth = { basic = { password_env = \"AGENTGATE_TEST_UNSET_VAR\" } }",
        )
        .unwrap_err();
        assert!(
            err.contains("AGENTGATE_TEST_UNSET_VAR (password) is not set"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "hunter2-secret\n").unwrap();
        let ok = parse(&format!(
            "name = \"g\"\nlisten = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2\"\n\
             upstream_auth = {{ basic = {{ password_file = \"{}\" }} }}",
            file.display()
        ))
        .unwrap();
        let credential = ok.proxy.as_ref().unwrap().credential.clone().unwrap();
        assert!(credential.value.starts_with("Basic "));
        assert!(
            !format!("{ok:?}").contains("hunter2"),
            "Debug shows no secret"
        );
        let ok = parse("name = \"oc\"\npreset = \"opencode\"").unwrap();
        assert_eq!(ok.preset, Preset::Opencode);
        let twice = Gateways::new(vec![ok.clone(), ok]);
        assert!(twice.unwrap_err().contains("used twice"));
    }
}
