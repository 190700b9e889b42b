//! `[[mcp_server]]`: an upstream MCP server agentgate runs (stdio) and puts behind `/mcp/{name}`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Default longest wait for an upstream's answer (initialize included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default most concurrent client sessions per upstream (each its own child process).
pub const DEFAULT_MAX_SESSIONS: usize = 64;
/// Default idle time after which a client session and its child are stopped.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `[[mcp_server]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Its name: the path `/mcp/{name}` and the prefix of its tools in rules (`{name}__{tool}`).
    pub name: String,
    /// A stdio server: the program to run.
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables for it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its working directory.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// A streamable-HTTP server's URL (`http://`; each client session opens its own upstream
    /// session there).
    #[serde(default)]
    pub url: Option<String>,
    /// The HTTP upstream's bearer token, from an environment variable…
    #[serde(default)]
    pub bearer_env: Option<String>,
    /// …or from a file (read again for every new session, so it can rotate).
    #[serde(default)]
    pub bearer_file: Option<PathBuf>,
    /// Seconds the upstream has to answer one request.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Most concurrent client sessions.
    #[serde(default)]
    pub max_sessions: Option<usize>,
    /// Seconds of client inactivity after which its session (and child) is stopped.
    #[serde(default)]
    pub idle_timeout: Option<u64>,
}

/// Where an upstream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A child process speaking MCP on its stdin and stdout.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Extra environment.
        env: BTreeMap<String, String>,
        /// Working directory.
        cwd: Option<PathBuf>,
    },
    /// A streamable-HTTP server.
    Http {
        /// Its MCP endpoint.
        url: String,
        /// Its bearer token, if it wants one.
        bearer: Option<crate::config::SecretSource>,
    },
}

/// A checked `[[mcp_server]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub upstream: Upstream,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Session cap.
    pub max_sessions: usize,
    /// Idle timeout.
    pub idle_timeout: Duration,
}

/// Whether `name` can be a path segment and a tool-name prefix as it is.
fn url_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !name.contains("__")
}

impl McpServerConfig {
    /// Checks one entry.
    pub fn server(&self) -> Result<McpServer, String> {
        let name = &self.name;
        if !url_safe(name) {
            return Err(format!(
                "[[mcp_server]] name = `{}`: use 1–64 lowercase letters, digits, `-` and `_` \
                 (no `__`, which separates server and tool in rules)",
                crate::display::visible(name, 64)
            ));
        }
        let upstream = match (&self.command, &self.url) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "[[mcp_server]] `{name}`: give either `command` (a stdio server) or `url`, not both"
                ));
            }
            (None, None) => {
                return Err(format!(
                    "[[mcp_server]] `{name}`: give `command` (a stdio server agentgate runs) or `url` \
                     (a streamable-HTTP server)"
                ));
            }
            (Some(c), None) if c.trim().is_empty() => {
                return Err(format!("[[mcp_server]] `{name}`: `command` is empty"));
            }
            (Some(c), None) => {
                if self.bearer_env.is_some() || self.bearer_file.is_some() {
                    return Err(format!(
                        "[[mcp_server]] `{name}`: bearer_env and bearer_file are for `url` servers; \
                         give a stdio server its secrets in `env`"
                    ));
                }
                Upstream::Stdio {
                    command: c.clone(),
                    args: self.args.clone(),
                    env: self.env.clone(),
                    cwd: self.cwd.clone(),
                }
            }
            (None, Some(url)) => {
                match url::Url::parse(url) {
                    Ok(u) if u.scheme() == "http" && u.host().is_some() => {}
                    Ok(u) if u.scheme() == "https" => {
                        return Err(format!(
                            "[[mcp_server]] `{name}`: url = `{url}`: https upstreams are not \
                             supported yet (this build has no TLS client); use an http URL, \
                             such as a local TLS-terminating proxy"
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "[[mcp_server]] `{name}`: url = `{}` is not an http URL",
                            crate::display::visible(url, 200)
                        ));
                    }
                }
                if !self.args.is_empty() || !self.env.is_empty() || self.cwd.is_some() {
                    return Err(format!(
                        "[[mcp_server]] `{name}`: args, env and cwd are for `command` servers"
                    ));
                }
                Upstream::Http {
                    url: url.clone(),
                    bearer: crate::config::SecretSource::of(
                        self.bearer_env.as_ref(),
                        self.bearer_file.as_ref(),
                        "bearer",
                    )
                    .map_err(|e| format!("[[mcp_server]] `{name}`: {e}"))?,
                }
            }
        };
        let positive = |what: &str, v: Option<u64>, default: Duration| match v {
            Some(0) => Err(format!(
                "[[mcp_server]] `{name}`: {what} must be at least 1"
            )),
            Some(s) => Ok(Duration::from_secs(s)),
            None => Ok(default),
        };
        let max_sessions = match self.max_sessions {
            Some(0) => {
                return Err(format!(
                    "[[mcp_server]] `{name}`: max_sessions must be at least 1"
                ));
            }
            Some(n) => n,
            None => DEFAULT_MAX_SESSIONS,
        };
        Ok(McpServer {
            name: name.clone(),
            upstream,
            timeout: positive("timeout", self.timeout, DEFAULT_TIMEOUT)?,
            max_sessions,
            idle_timeout: positive("idle_timeout", self.idle_timeout, DEFAULT_IDLE_TIMEOUT)?,
        })
    }
}

/// Checks every entry, and that no name is used twice.
pub fn servers(entries: &[McpServerConfig]) -> Result<Vec<McpServer>, String> {
    let mut out: Vec<McpServer> = Vec::new();
    for entry in entries {
        let server = entry.server()?;
        if out.iter().any(|s| s.name == server.name) {
            return Err(format!(
                "[[mcp_server]] name = `{}` is used twice",
                server.name
            ));
        }
        out.push(server);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml_text: &str) -> Result<McpServer, String> {
        let parsed: McpServerConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        parsed.server()
    }

    #[test]
    fn bad_entries_are_refused_with_a_sentence() {
        let err = |t: &str| entry(t).unwrap_err();
        assert!(err(r#"name = "fs""#).contains("give `command`"));
        assert!(
            err(r#"name = "fs"
command = "x"
url = "http://127.0.0.1:1/mcp""#)
            .contains("not both")
        );
        for (text, words) in [
            (
                "name = \"fs\"\nurl = \"https://example.com/mcp\"",
                "https upstreams are not supported yet",
            ),
            ("name = \"fs\"\nurl = \"not a url\"", "not an http URL"),
            (
                "name = \"fs\"\nurl = \"http://127.0.0.1:1/mcp\"\nargs = [\"x\"]",
                "args, env and cwd",
            ),
            (
                "name = \"fs\"\ncommand = \"x\"\nbearer_env = \"T\"",
                "for `url` servers",
            ),
            (
                "name = \"fs\"\nurl = \"http://127.0.0.1:1/mcp\"\nbearer_env = \"T\"\nbearer_file = \"/t\"",
                "not both",
            ),
        ] {
            assert!(err(text).contains(words), "{text}: {}", err(text));
        }
        assert!(matches!(
            entry("name = \"h\"\nurl = \"http://127.0.0.1:1/mcp\"\nbearer_env = \"T\"")
                .unwrap()
                .upstream,
            Upstream::Http {
                bearer: Some(_),
                ..
            }
        ));
        for bad in ["has space", "Caps", "a/b", "", "a__b", "ü"] {
            assert!(
                err(&format!("name = {bad:?}\ncommand = \"x\"")).contains("lowercase"),
                "{bad}"
            );
        }
        assert!(err("name = \"fs\"\ncommand = \"x\"\nmax_sessions = 0").contains("max_sessions"));
        assert!(err("name = \"fs\"\ncommand = \"x\"\ntimeout = 0").contains("timeout"));
        assert!(err("name = \"fs\"\ncommand = \"x\"\nbogus = 1").contains("bogus"));
        let ok = entry("name = \"fs-1\"\ncommand = \"npx\"\nargs = [\"-y\"]").unwrap();
        assert_eq!(ok.max_sessions, DEFAULT_MAX_SESSIONS);
        let two: Vec<McpServerConfig> = vec![
            toml::from_str("name = \"a\"\ncommand = \"x\"").unwrap(),
            toml::from_str("name = \"a\"\ncommand = \"y\"").unwrap(),
        ];
        assert!(servers(&two).unwrap_err().contains("used twice"));
    }
}
