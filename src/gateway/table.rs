//! A gateway's route table: which scope each method and path of the upstream needs. Pure: built
//! once from the preset and the configured routes, then asked per request (by the proxy and by
//! forward-auth alike). The configured routes refine the preset: the first that matches wins,
//! then the preset's own rows, then the generic rule by method.

use std::borrow::Cow;

use agentgate_policy::Scope;

/// A preset: a route → scope table for a kind of upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// GET/HEAD → `read`; POST/PUT/PATCH/DELETE → `write`; other methods refused.
    Generic,
    /// As generic, plus `execute` on opencode's interactive routes (prompting, shell, `/pty`,
    /// commands, answering permissions and questions).
    Opencode,
    /// An OpenAI-compatible server: `GET /v1/models` → `read`; the generation endpoints →
    /// `write`.
    Openai,
}

impl Preset {
    /// Its name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Generic => "generic",
            Preset::Opencode => "opencode",
            Preset::Openai => "openai",
        }
    }

    /// Parses a preset name.
    pub fn parse(name: &str) -> Option<Preset> {
        match name {
            "generic" => Some(Preset::Generic),
            "opencode" => Some(Preset::Opencode),
            "openai" => Some(Preset::Openai),
            _ => None,
        }
    }

    /// Whether a `GET` of `path` is one of the preset's event streams, held open for hours:
    /// opencode's `/event`, `/global/event`, `/api/event` and `/api/session/{sessionID}/event`.
    /// For clients that do not ask for `text/event-stream` (opencode's own SDK does not).
    pub fn is_event_stream(self, path: &str) -> bool {
        match self {
            Preset::Opencode => {
                matches!(path, "/event" | "/global/event" | "/api/event")
                    || path
                        .strip_prefix("/api/session/")
                        .and_then(|rest| rest.strip_suffix("/event"))
                        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
            }
            Preset::Generic | Preset::Openai => false,
        }
    }

    /// The preset's own rows (before the generic rule by method).
    fn rows(self) -> Vec<(String, String, Scope)> {
        let fixed: &[(&str, &str, Scope)] = match self {
            Preset::Generic => &[],
            Preset::Opencode => return opencode_rows(),
            Preset::Openai => &[
                ("GET", "/v1/models", Scope::Read),
                ("GET", "/v1/models/**", Scope::Read),
                ("POST", "/v1/responses", Scope::Write),
                ("POST", "/v1/responses/**", Scope::Write),
                ("POST", "/v1/chat/completions", Scope::Write),
                ("POST", "/v1/completions", Scope::Write),
                ("POST", "/v1/embeddings", Scope::Write),
            ],
        };
        fixed
            .iter()
            .map(|(m, p, scope)| ((*m).to_owned(), (*p).to_owned(), *scope))
            .collect()
    }
}

/// Every route of the pinned opencode, as its own OpenAPI document lists them
/// (`opencode-routes.txt`, written by `scripts/opencode-routes`; tests/agents fails when the
/// pinned opencode has a route that is not in it).
pub const OPENCODE_ROUTES: &str = include_str!("opencode-routes.txt");

/// The opencode rows that differ from the generic rule (`execute` and `admin`), with OpenAPI's
/// `{param}` as one segment and a final `*` as any rest.
fn opencode_rows() -> Vec<(String, String, Scope)> {
    OPENCODE_ROUTES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (method, path, scope) = (words.next()?, words.next()?, words.next()?);
            let scope: Scope = scope.parse().ok()?;
            let generic = if matches!(method, "GET" | "HEAD") {
                Scope::Read
            } else {
                Scope::Write
            };
            (scope != generic).then(|| {
                let segments: Vec<&str> = path
                    .split('/')
                    .map(|s| if s.starts_with('{') { "*" } else { s })
                    .collect();
                let mut pattern = segments.join("/");
                if path.ends_with("/*") {
                    pattern.push('*');
                }
                (method.to_owned(), pattern, scope)
            })
        })
        .collect()
}

/// One configured route: `method` (or `*`), a path pattern, the scope it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `GET`, `POST`, … or `*`.
    pub method: String,
    /// `/session/*/share`: `*` is one segment, a final `**` any rest.
    pub path: String,
    /// What the credential must hold.
    pub scope: Scope,
}

/// Why a request has no row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A method no row and no generic rule admits (`TRACE`, `CONNECT`, …).
    Method(String),
    /// A path the upstream might read differently from the table: a `.` or `..` segment, or an
    /// encoded `/`, `\` or `%`.
    Path(String),
}

#[derive(Debug, Clone)]
struct Row {
    method: String,
    segments: Vec<String>,
    pattern: String,
    scope: Scope,
    origin: &'static str,
}

/// The table of one gateway.
#[derive(Debug, Clone)]
pub struct Table {
    rows: Vec<Row>,
}

fn compile(method: &str, path: &str, scope: Scope, origin: &'static str) -> Result<Row, String> {
    let method = method.trim().to_ascii_uppercase();
    if method != "*" && (method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(format!(
            "route method `{method}`: expected GET, POST, … or *"
        ));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("route path `{path}` must start with /"));
    };
    let segments: Vec<String> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').map(str::to_owned).collect()
    };
    for (i, s) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let valid = match s.as_str() {
            "" => false,
            "**" => last,
            "*" => true,
            other => !other.contains('*') && !other.contains(['?', '#']),
        };
        if !valid {
            return Err(format!(
                "route path `{path}`: segments are names, `*` (one segment) or a final `**`"
            ));
        }
    }
    Ok(Row {
        method,
        segments,
        pattern: path.to_owned(),
        scope,
        origin,
    })
}

impl Table {
    /// The table for `preset` refined by `routes`. Errors name the route.
    pub fn new(preset: Preset, routes: &[RouteSpec]) -> Result<Table, String> {
        let mut rows = Vec::new();
        for r in routes {
            rows.push(compile(&r.method, &r.path, r.scope, "configured")?);
        }
        for (method, path, scope) in preset.rows() {
            rows.push(compile(&method, &path, scope, "preset")?);
        }
        Ok(Table { rows })
    }

    /// The scope `method` on `path` needs. The path is matched as sent, without its query.
    pub fn scope_for(&self, method: &str, path: &str) -> Result<Scope, Refused> {
        let end = path
            .bytes()
            .position(|b| b == b'?' || b == b'#')
            .unwrap_or(path.len());
        let path = &path[..end];
        let mut segments = Vec::new();
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            let segment = percent_decode(raw)
                .filter(|s| {
                    let hidden = match s {
                        // Split on `/` and without `%`: only a `\` can hide here.
                        Cow::Borrowed(s) => s.contains('\\'),
                        Cow::Owned(s) => s.contains(['/', '\\', '%']),
                    };
                    !hidden && s != "." && s != ".."
                })
                .ok_or_else(|| Refused::Path(path.to_owned()))?;
            segments.push(segment);
        }
        for row in &self.rows {
            if (row.method == "*" || row.method == method) && matches(&row.segments, &segments) {
                return Ok(row.scope);
            }
        }
        match method {
            "GET" | "HEAD" => Ok(Scope::Read),
            "POST" | "PUT" | "PATCH" | "DELETE" => Ok(Scope::Write),
            other => Err(Refused::Method(other.to_owned())),
        }
    }

    /// Every row, for `agentgate gateway routes`: method, path, scope, where it comes from.
    pub fn rows(&self) -> Vec<(String, String, Scope, &'static str)> {
        let mut rows: Vec<_> = self
            .rows
            .iter()
            .map(|r| (r.method.clone(), r.pattern.clone(), r.scope, r.origin))
            .collect();
        rows.push((
            "GET, HEAD".into(),
            "(any other)".into(),
            Scope::Read,
            "generic",
        ));
        rows.push((
            "POST, PUT, PATCH, DELETE".into(),
            "(any other)".into(),
            Scope::Write,
            "generic",
        ));
        rows
    }
}

/// A path segment with its `%XX` decoded (as the upstream's router would), borrowed when it has
/// no `%` (most have none); `None` for a malformed escape or non-UTF-8.
fn percent_decode(segment: &str) -> Option<Cow<'_, str>> {
    if !segment.contains('%') {
        return Some(Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn matches(pattern: &[String], path: &[Cow<'_, str>]) -> bool {
    match (pattern.first().map(String::as_str), path.first()) {
        (Some("**"), _) => true,
        (None, None) => true,
        (Some(p), Some(s)) if p == "*" || p == s => matches(&pattern[1..], &path[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opencodes_event_streams_are_routes_of_the_pinned_opencode() {
        for (path, pattern) in [
            ("/event", "/event"),
            ("/global/event", "/global/event"),
            ("/api/event", "/api/event"),
            ("/api/session/ses_1/event", "/api/session/{sessionID}/event"),
        ] {
            assert!(Preset::Opencode.is_event_stream(path), "{path}");
            assert!(
                OPENCODE_ROUTES
                    .lines()
                    .any(|l| l.starts_with(&format!("GET {pattern} "))),
                "{pattern} is not a GET route of the pinned opencode"
            );
        }
        for path in [
            "/events",
            "/api/session//event",
            "/api/session/a/b/event",
            "/event/",
        ] {
            assert!(!Preset::Opencode.is_event_stream(path), "{path}");
        }
        assert!(!Preset::Generic.is_event_stream("/event"));
        assert!(!Preset::Openai.is_event_stream("/global/event"));
    }

    #[test]
    fn openclaw_57331_a_write_token_is_enough_for_every_generation_endpoint() {
        let t = Table::new(Preset::Openai, &[]).unwrap();
        for path in [
            "/v1/responses",
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings",
            "/v1/responses/resp_1/cancel",
        ] {
            assert_eq!(t.scope_for("POST", path), Ok(Scope::Write), "{path}");
        }
        assert_eq!(t.scope_for("GET", "/v1/models"), Ok(Scope::Read));
        assert_eq!(t.scope_for("GET", "/v1/models/gpt-x?x=1"), Ok(Scope::Read));
    }

    #[test]
    fn opencode_interactive_routes_need_execute_and_configured_routes_come_first() {
        let t = Table::new(
            Preset::Opencode,
            &[RouteSpec {
                method: "post".into(),
                path: "/session/*/share".into(),
                scope: Scope::Admin,
            }],
        )
        .unwrap();
        assert_eq!(
            t.scope_for("POST", "/session/ses_1/prompt_async"),
            Ok(Scope::Execute)
        );
        assert_eq!(
            t.scope_for("POST", "/permission/per_1/reply"),
            Ok(Scope::Execute)
        );
        assert_eq!(t.scope_for("GET", "/pty/abc/connect"), Ok(Scope::Execute));
        assert_eq!(t.scope_for("POST", "/pty"), Ok(Scope::Execute));
        assert_eq!(
            t.scope_for("POST", "/session/ses_1/shell"),
            Ok(Scope::Execute)
        );
        assert_eq!(
            t.scope_for("GET", "/session/ses_1/message"),
            Ok(Scope::Read)
        );
        assert_eq!(t.scope_for("PATCH", "/config"), Ok(Scope::Admin));
        assert_eq!(t.scope_for("PUT", "/auth/anthropic"), Ok(Scope::Admin));
        assert_eq!(t.scope_for("POST", "/session"), Ok(Scope::Write));
        assert_eq!(t.scope_for("GET", "/session"), Ok(Scope::Read));
        assert_eq!(t.scope_for("GET", "/event"), Ok(Scope::Read));
        assert_eq!(
            t.scope_for("POST", "/session/ses_1/share"),
            Ok(Scope::Admin)
        );
        // Doubled slashes do not step around a row.
        assert_eq!(
            t.scope_for("POST", "//session//ses_1/prompt_async"),
            Ok(Scope::Execute)
        );
        assert_eq!(
            t.scope_for("TRACE", "/"),
            Err(Refused::Method("TRACE".into()))
        );
        // Encodings the upstream would decode are decoded here too; ambiguous ones are refused.
        assert_eq!(
            t.scope_for("POST", "/permission/per_1/%72eply"),
            Ok(Scope::Execute)
        );
        for path in [
            "/permission/per_1%2Freply",
            "/x/../permission/per_1/reply",
            "/session/./ses_1/prompt_async",
            "/a/%2e%2e/b",
            "/a/%zz",
            "/a/%255c",
        ] {
            assert!(
                matches!(t.scope_for("POST", path), Err(Refused::Path(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn bad_route_patterns_are_refused_with_a_sentence() {
        for (method, path) in [
            ("GET", "session"),
            ("GET", "/a/**/b"),
            ("GET", "/a*b"),
            ("GET", "/a//b"),
            ("G E T", "/a"),
        ] {
            let spec = RouteSpec {
                method: method.into(),
                path: path.into(),
                scope: Scope::Read,
            };
            assert!(
                Table::new(Preset::Generic, &[spec]).is_err(),
                "{method} {path}"
            );
        }
    }
}
