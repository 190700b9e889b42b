//! Configuration: defaults < config file < `AGENTGATE_*` environment < command-line flags.
//!
//! [`FileConfig`] only parses (serde, unknown keys refused). [`Config::resolve`] does the IO and
//! the checks: absolute data dir, the database URL, refusing a non-loopback listen address unless
//! remote access was asked for. Nothing here is relative to the working directory except a path
//! the user typed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::api::Expiry;
use crate::auth::session::SessionSettings;
use crate::store::DatabaseUrl;
use agentgate_policy::{Origin, Rule, RuleSpec};
use serde::Deserialize;
use toml::Spanned;

/// The default listen address.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7700);

/// Pending requests one credential may hold when the config does not say.
pub const DEFAULT_MAX_PENDING: u32 = 100;

/// A secret the config file names by where it lives, never by its value: an environment
/// variable (a `…_env` key) or a file (a `…_file` key, read again each time it is asked for, so
/// it can rotate). Used by bridges, gateways and notification targets alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The daemon's environment.
    Env(String),
    /// A file; surrounding whitespace is not part of the secret.
    File(PathBuf),
}

impl SecretSource {
    /// The source a `{what}_env` / `{what}_file` pair names; `None` when neither is set.
    pub fn of(
        env: Option<&String>,
        file: Option<&PathBuf>,
        what: &str,
    ) -> Result<Option<SecretSource>, String> {
        match (env, file) {
            (Some(_), Some(_)) => Err(format!("set {what}_env or {what}_file, not both")),
            (Some(var), None) => Ok(Some(SecretSource::Env(var.clone()))),
            (None, Some(path)) => Ok(Some(SecretSource::File(path.clone()))),
            (None, None) => Ok(None),
        }
    }

    /// The secret now, or why it cannot be had (never the secret itself).
    pub fn read(&self, what: &str) -> Result<String, String> {
        match self {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                _ => Err(format!(
                    "the environment variable {var} ({what}) is not set"
                )),
            },
            SecretSource::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
                Ok(_) => Err(format!("{} ({what}) is empty", path.display())),
                Err(e) => Err(format!("cannot read {} ({what}): {e}", path.display())),
            },
        }
    }
}

/// The config file as written (`config.toml`). Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// Permit a non-loopback listen address.
    pub allow_remote: Option<bool>,
    /// Where the database and the admin token live.
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`.
    pub database_url: Option<String>,
    /// Extra `Host` values to accept, such as `agentgate.example.com` behind a TLS proxy.
    pub allowed_hosts: Option<Vec<String>>,
    /// Seconds a pending permission request waits for a person when neither it nor a rule says
    /// otherwise (default 300; 0 waits indefinitely).
    pub default_timeout: Option<u64>,
    /// Most requests one credential may have pending at once (default 100): an agent cannot
    /// bury the owner's inbox.
    pub max_pending_per_requester: Option<u32>,
    /// Keyed audit mode: the file holding the key that signs the audit chain's head (created,
    /// mode 0600, if missing). Keep it where an agent that can write the database cannot read.
    pub audit_key_file: Option<PathBuf>,
    /// `[[rules]]`: the configured policy.
    pub rules: Option<Vec<Spanned<RuleSpec>>>,
    /// `[compat.*]`: listeners for other tools' protocols.
    pub compat: Option<CompatConfig>,
    /// `[web]`: the web inbox.
    pub web: Option<WebConfig>,
    /// `[oauth]`: the authorization server for MCP clients.
    pub oauth: Option<OAuthConfig>,
    /// `[[bridge]]`: agent servers whose own permission prompts the daemon answers.
    pub bridge: Option<Vec<crate::bridge::BridgeConfig>>,
    /// `[[notify]]`: where new pending requests are announced.
    pub notify: Option<Vec<crate::notify::NotifyConfig>>,
    /// `[[gateway]]`: route tables for agent servers behind a proxy (forward-auth).
    pub gateway: Option<Vec<crate::gateway::GatewayConfig>>,
    /// `[[mcp_server]]`: upstream MCP servers behind `/mcp/{name}`.
    pub mcp_server: Option<Vec<crate::mcp_gateway::McpServerConfig>>,
    /// The inbox's address as people reach it, for links in notifications (default
    /// `http://<listen>`).
    pub public_url: Option<String>,
}

/// `[oauth]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// Most registered clients at once (default 100).
    pub max_clients: Option<u32>,
    /// Access-token lifetime (default `1h`).
    pub access_token_ttl: Option<String>,
}

impl OAuthConfig {
    /// The settings this section sets.
    pub fn settings(&self) -> Result<crate::oauth::Settings, Error> {
        let mut settings = crate::oauth::Settings::default();
        if let Some(max) = self.max_clients {
            if max == 0 {
                return Err(Error::Invalid(
                    "[oauth] max_clients must be at least 1".into(),
                ));
            }
            settings.max_clients = max;
        }
        if let Some(text) = &self.access_token_ttl {
            settings.access_ttl = match Expiry::parse(text) {
                Ok(Expiry::After(d)) if d.as_secs() >= 60 && d.as_secs() <= 86_400 => d,
                _ => {
                    return Err(Error::Invalid(format!(
                        "[oauth] access_token_ttl = `{text}`: expected a duration from 1m to 24h"
                    )));
                }
            };
        }
        Ok(settings)
    }
}

/// `[web]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// A signed-in browser unused this long is signed out (default `12h`).
    pub session_idle: Option<String>,
    /// A signed-in browser is signed out this long after sign-in, however active (default `7d`).
    pub session_max: Option<String>,
}

impl WebConfig {
    /// The session lifetimes this section sets.
    pub fn sessions(&self) -> Result<SessionSettings, Error> {
        let mut settings = SessionSettings::default();
        let parse = |key: &str, text: &str| match Expiry::parse(text) {
            Ok(Expiry::After(d)) if d.as_secs() >= 1 => Ok(d),
            _ => Err(Error::Invalid(format!(
                "[web] {key} = `{text}`: expected a duration such as `30m`, `12h` or `7d`"
            ))),
        };
        if let Some(text) = &self.session_idle {
            settings.idle = parse("session_idle", text)?;
        }
        if let Some(text) = &self.session_max {
            settings.absolute = parse("session_max", text)?;
        }
        Ok(settings)
    }
}

/// `[compat]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatConfig {
    /// `[compat.openwork] listen = "127.0.0.1:9226"`: an unauthenticated loopback listener for
    /// unmodified OpenWork clients.
    pub openwork: Option<OpenWorkCompat>,
}

/// `[compat.openwork]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenWorkCompat {
    /// Loopback address to listen on.
    pub listen: String,
}

/// A config file that could not be used: which file, where, and why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// The file is not valid for us.
    #[error("config file {path}, line {line}, column {column}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// A value is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl FileConfig {
    /// Parses config text and compiles its rules; errors name the file, line and reason.
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, Error> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_col(text, span.start))
                .unwrap_or((1, 1));
            Error::Parse {
                path: path.to_owned(),
                line,
                column,
                reason: e.message().trim().to_owned(),
            }
        })?;
        file.compile_rules(path, text)?;
        Ok(file)
    }

    /// The configured rules, compiled, with ids `config-N` unless they name their own.
    pub fn compile_rules(&self, path: &Path, text: &str) -> Result<Vec<Rule>, Error> {
        let mut rules = Vec::new();
        for (i, spanned) in self.rules.iter().flatten().enumerate() {
            let (line, column) = line_col(text, spanned.span().start);
            let rule = Rule::new(
                spanned.get_ref().clone(),
                format!("config-{}", i + 1),
                Origin::Config { index: i + 1 },
            )
            .map_err(|e| Error::Parse {
                path: path.to_owned(),
                line,
                column,
                reason: format!("rule {}: {e}", i + 1),
            })?;
            rules.push(rule);
        }
        agentgate_policy::RuleSet::new(rules.clone()).map_err(|e| Error::Parse {
            path: path.to_owned(),
            line: 1,
            column: 1,
            reason: e.to_string(),
        })?;
        Ok(rules)
    }

    /// Reads the config file: `explicit` if given (it must exist), else the XDG default if it
    /// exists, else an empty config.
    pub fn load(explicit: Option<&Path>) -> Result<(FileConfig, Option<(PathBuf, String)>), Error> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => match default_config_path() {
                Some(p) if p.exists() => p,
                _ => return Ok((FileConfig::default(), None)),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Read(path.clone(), e))?;
        Ok((FileConfig::parse(&path, &text)?, Some((path, text))))
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `$XDG_CONFIG_HOME/agentgate/config.toml`, or `~/.config/agentgate/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("agentgate").join("config.toml"))
}

/// `$XDG_DATA_HOME/agentgate`, or `~/.local/share/agentgate`.
pub fn default_data_dir() -> Option<PathBuf> {
    xdg_dir("XDG_DATA_HOME", ".local/share").map(|d| d.join("agentgate"))
}

fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if Path::new(&v).is_absolute() => Some(PathBuf::from(v)),
        _ => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(fallback)),
    }
}

/// Parses a listen address: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, Error> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(Ok(port)) = text.strip_prefix("localhost:").map(str::parse::<u16>) {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(Error::Invalid(format!(
        "invalid listen address `{text}`: expected IP:PORT such as 127.0.0.1:7700"
    )))
}

/// What the command line and environment said (clap merges the two; a flag beats its variable).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen` / `AGENTGATE_LISTEN`.
    pub listen: Option<String>,
    /// `--allow-remote`.
    pub allow_remote: bool,
    /// `--data-dir` / `AGENTGATE_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database` / `AGENTGATE_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--allowed-host`, repeatable.
    pub allowed_hosts: Vec<String>,
}

/// The resolved configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Whether a non-loopback address was explicitly permitted.
    pub allow_remote: bool,
    /// Absolute data directory (database, admin token).
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: DatabaseUrl,
    /// Extra accepted `Host` values (lowercase).
    pub allowed_hosts: Vec<String>,
    /// Timeout of a pending request when neither it nor a rule sets one.
    pub default_timeout: std::time::Duration,
    /// Most pending requests per requesting credential.
    pub max_pending_per_requester: u32,
    /// Keyed audit mode's key file, when on.
    pub audit_key_file: Option<PathBuf>,
    /// The configured rules.
    pub rules: Vec<Rule>,
    /// The opt-in OpenWork Permission API listener (unauthenticated, loopback only).
    pub openwork_listen: Option<SocketAddr>,
    /// Web session lifetimes.
    pub sessions: SessionSettings,
    /// The OAuth authorization server's limits and lifetimes.
    pub oauth: crate::oauth::Settings,
    /// Agent servers whose own permission prompts the daemon answers.
    pub bridges: Vec<crate::bridge::Settings>,
    /// Where new pending requests are announced.
    pub notify: Vec<crate::notify::Target>,
    /// The gateways' route tables.
    pub gateways: crate::gateway::Gateways,
    /// Upstream MCP servers behind `/mcp/{name}`.
    pub mcp_servers: Vec<crate::mcp_gateway::McpServer>,
    /// The inbox's base URL for links (`public_url`, else `http://<listen>`).
    pub public_url: String,
}

impl Config {
    /// Combines the file and the overrides, and checks the result. `source` is the file's path
    /// and text, for locating errors in its rules.
    pub fn resolve(
        file: FileConfig,
        source: Option<(PathBuf, String)>,
        over: Overrides,
    ) -> Result<Config, Error> {
        let rules = match &source {
            Some((path, text)) => file.compile_rules(path, text)?,
            None => Vec::new(),
        };
        let default_timeout = std::time::Duration::from_secs(file.default_timeout.unwrap_or(300));
        let max_pending_per_requester = match file.max_pending_per_requester {
            Some(0) => {
                return Err(Error::Invalid(
                    "max_pending_per_requester must be at least 1".into(),
                ));
            }
            Some(n) => n,
            None => DEFAULT_MAX_PENDING,
        };
        let listen = match over.listen.or(file.listen) {
            Some(text) => parse_listen(&text)?,
            None => DEFAULT_LISTEN,
        };
        let allow_remote = over.allow_remote || file.allow_remote.unwrap_or(false);
        if !listen.ip().is_loopback() && !allow_remote {
            return Err(Error::Invalid(format!(
                "refusing to listen on {listen}: it is not a loopback address. Pass --allow-remote \
                 (and terminate TLS in front of agentgate) to serve other machines"
            )));
        }
        let data_dir = resolve_data_dir(over.data_dir.or(file.data_dir))?;
        let database_url = match over.database_url.or(file.database_url) {
            Some(url) => DatabaseUrl::parse(&url).map_err(|e| Error::Invalid(e.to_string()))?,
            None => DatabaseUrl::Sqlite(data_dir.join("agentgate.db")),
        };
        let openwork_listen = match file.compat.as_ref().and_then(|c| c.openwork.as_ref()) {
            None => None,
            Some(ow) => {
                let addr = parse_listen(&ow.listen)?;
                if !addr.ip().is_loopback() {
                    return Err(Error::Invalid(format!(
                        "[compat.openwork] listen = `{}`: this listener takes no credential, so it \
                         only ever listens on loopback",
                        ow.listen
                    )));
                }
                Some(addr)
            }
        };
        let mut allowed_hosts = file.allowed_hosts.unwrap_or_default();
        allowed_hosts.extend(over.allowed_hosts);
        for host in &mut allowed_hosts {
            *host = host.trim().to_ascii_lowercase();
            if host.is_empty() || host.contains(['/', ' ', '@']) {
                return Err(Error::Invalid(format!(
                    "invalid allowed host `{host}`: expected a host name, optionally with :PORT"
                )));
            }
        }
        let sessions = match &file.web {
            Some(web) => web.sessions()?,
            None => SessionSettings::default(),
        };
        let oauth = match &file.oauth {
            Some(o) => o.settings()?,
            None => crate::oauth::Settings::default(),
        };
        let mut bridges: Vec<crate::bridge::Settings> = Vec::new();
        for entry in file.bridge.iter().flatten() {
            let settings = entry.settings().map_err(Error::Invalid)?;
            if bridges.iter().any(|b| b.name == settings.name) {
                return Err(Error::Invalid(format!(
                    "[[bridge]] name = `{}` is used twice",
                    settings.name
                )));
            }
            bridges.push(settings);
        }
        let notify = file
            .notify
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, n)| n.target(i + 1).map_err(Error::Invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let public_url = match &file.public_url {
            Some(u) => match url::Url::parse(u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                    u.trim_end_matches('/').to_owned()
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "public_url = `{u}`: expected an http(s) URL"
                    )));
                }
            },
            None => format!("http://{listen}"),
        };
        let gateways = crate::gateway::Gateways::new(
            file.gateway
                .iter()
                .flatten()
                .map(|g| g.gateway().map_err(Error::Invalid))
                .collect::<Result<Vec<_>, _>>()?,
        )
        .map_err(Error::Invalid)?;
        if let Some(g) = gateways.iter().find(|g| {
            g.proxy
                .as_ref()
                .is_some_and(|p| !p.listen.ip().is_loopback())
        }) && !allow_remote
        {
            return Err(Error::Invalid(format!(
                "[[gateway]] `{}`: refusing to listen on a non-loopback address without \
                 --allow-remote (and TLS in front)",
                g.name
            )));
        }
        let mcp_servers =
            crate::mcp_gateway::config::servers(file.mcp_server.as_deref().unwrap_or_default())
                .map_err(Error::Invalid)?;
        let mut oauth = oauth;
        oauth.mcp_servers = mcp_servers.iter().map(|s| s.name.clone()).collect();
        Ok(Config {
            mcp_servers,
            gateways,
            bridges,
            notify,
            public_url,
            sessions,
            oauth,
            listen,
            allow_remote,
            data_dir,
            database_url,
            allowed_hosts,
            default_timeout,
            max_pending_per_requester,
            audit_key_file: file.audit_key_file.clone(),
            rules,
            openwork_listen,
        })
    }
}

/// The data directory as an absolute path: the given one, or the XDG default.
pub fn resolve_data_dir(given: Option<PathBuf>) -> Result<PathBuf, Error> {
    let dir = match given {
        Some(d) if d.as_os_str().is_empty() => {
            return Err(Error::Invalid("the data directory cannot be empty".into()));
        }
        Some(d) => d,
        None => default_data_dir().ok_or_else(|| {
            Error::Invalid(
                "cannot find a data directory: set HOME, XDG_DATA_HOME or --data-dir".into(),
            )
        })?,
    };
    std::path::absolute(&dir)
        .map_err(|e| Error::Invalid(format!("invalid data directory {}: {e}", dir.display())))
}

/// Hides a password in a URL before it is shown.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_names_the_line_and_the_reason() {
        let text = "listen = \"127.0.0.1:7701\"\n\nbogus_key = 1\n";
        let err = FileConfig::parse(Path::new("/etc/x.toml"), text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("config file /etc/x.toml, line 3, column 1: unknown field `bogus_key`"),
            "{msg}"
        );

        let err = FileConfig::parse(Path::new("c.toml"), "listen = 7700\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = FileConfig::parse(Path::new("c.toml"), "a = [\n").unwrap_err();
        assert!(
            err.to_string().starts_with("config file c.toml, line"),
            "{err}"
        );
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileConfig::parse(
            Path::new("c.toml"),
            &format!(
                "listen = \"127.0.0.1:7801\"\ndata_dir = \"{}\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let cfg = Config::resolve(file, None, Overrides::default()).unwrap();
        assert_eq!(cfg.listen.port(), 7801);
        assert_eq!(cfg.data_dir, dir.path());
        assert!(cfg.database_url.to_string().ends_with("agentgate.db"));

        let over = Overrides {
            listen: Some("localhost:7900".into()),
            ..Overrides::default()
        };
        let file = FileConfig::parse(
            Path::new("c.toml"),
            "listen = \"127.0.0.1:7801\"\ndata_dir = \"/tmp\"\n",
        )
        .unwrap();
        assert_eq!(
            Config::resolve(file, None, over).unwrap().listen.port(),
            7900
        );
    }

    #[test]
    fn rules_in_the_file_are_compiled_and_bad_ones_named_by_line() {
        let text = "[[rules]]\naction = \"allow\"\nkind = \"shell\"\npattern = \"git *\"\n\n[[rules]]\naction = \"deny\"\nkind = \"shell\"\npattern = \"rm [\"\n";
        let err = FileConfig::parse(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config file c.toml, line 6"), "{err}");
        assert!(
            err.contains("rule 2: pattern: invalid glob `rm [`"),
            "{err}"
        );
        let ok = text.replace("rm [", "rm *");
        let file = FileConfig::parse(Path::new("c.toml"), &ok).unwrap();
        let rules = file.compile_rules(Path::new("c.toml"), &ok).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].id, "config-2");
        let bad_kind = "[[rules]]\naction = \"allow\"\nkind = \"telepathy\"\npattern = \"*\"\n";
        let err = FileConfig::parse(Path::new("c.toml"), bad_kind)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("unknown variant `telepathy`"),
            "{err}"
        );
    }

    #[test]
    fn the_openwork_listener_is_loopback_only() {
        let file = FileConfig::parse(
            Path::new("c.toml"),
            "[compat.openwork]\nlisten = \"0.0.0.0:9226\"\n",
        )
        .unwrap();
        let over = Overrides {
            data_dir: Some("/tmp/x".into()),
            ..Overrides::default()
        };
        let err = Config::resolve(file, None, over.clone()).unwrap_err();
        assert!(
            err.to_string().contains("only ever listens on loopback"),
            "{err}"
        );
        let file = FileConfig::parse(
            Path::new("c.toml"),
            "[compat.openwork]\nlisten = \"127.0.0.1:9226\"\n",
        )
        .unwrap();
        assert_eq!(
            Config::resolve(file, None, over)
                .unwrap()
                .openwork_listen
                .map(|a| a.port()),
            Some(9226)
        );
    }

    #[test]
    fn non_loopback_needs_allow_remote() {
        let over = |remote| Overrides {
            listen: Some("0.0.0.0:7700".into()),
            allow_remote: remote,
            data_dir: Some("/tmp/x".into()),
            ..Overrides::default()
        };
        let err = Config::resolve(FileConfig::default(), None, over(false)).unwrap_err();
        assert!(err.to_string().contains("--allow-remote"), "{err}");
        assert!(Config::resolve(FileConfig::default(), None, over(true)).is_ok());
    }

    #[test]
    fn bad_values_are_refused_clearly() {
        let with = |o: Overrides| {
            Config::resolve(
                FileConfig::default(),
                None,
                Overrides {
                    data_dir: Some("/tmp/x".into()),
                    ..o
                },
            )
        };
        let err = with(Overrides {
            listen: Some("nonsense".into()),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("invalid listen address"), "{err}");
        let err = with(Overrides {
            database_url: Some("mysql://u:pw@h/db".into()),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("[redacted]") && !err.to_string().contains("pw"),
            "{err}"
        );
        let err = with(Overrides {
            allowed_hosts: vec!["http://x/".into()],
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("invalid allowed host"), "{err}");
        let err = Config::resolve(
            FileConfig {
                max_pending_per_requester: Some(0),
                ..FileConfig::default()
            },
            None,
            Overrides {
                data_dir: Some("/tmp/x".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }
}
