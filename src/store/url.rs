//! The one parser of database URLs: `sqlite://PATH` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`
//! (`postgresql://` too, with libpq's query parameters, parsed by the driver). The password is
//! never shown: the URL is displayed with it redacted.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// A database the store can open.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<PgConnectOptions>, String),
}

/// Why a database URL was refused (the URL in it is redacted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported database URL `{url}`: {why}; use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
)]
pub struct BadUrl {
    /// The URL, password redacted.
    pub url: String,
    /// What is wrong with it.
    pub why: String,
}

impl DatabaseUrl {
    /// Parses a URL, refusing any other scheme, an empty path or a malformed PostgreSQL URL.
    pub fn parse(url: &str) -> Result<DatabaseUrl, BadUrl> {
        let bad = |why: &str| BadUrl {
            url: redact(url),
            why: why.to_owned(),
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(bad("it names no file"));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            if host.is_empty() || host.starts_with('/') || host.starts_with('?') {
                return Err(bad("it names no host"));
            }
            let options = PgConnectOptions::from_str(url).map_err(|e| bad(&e.to_string()))?;
            return Ok(DatabaseUrl::Postgres(Box::new(options), redact(url)));
        }
        Err(bad("the scheme is neither sqlite nor postgres"))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(_, shown) => f.write_str(shown),
        }
    }
}

/// Never prints a password.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The URL with any `user:password@` part's password replaced.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:[redacted]")
            } else {
                user.to_owned()
            };
            format!("{}://{shown}@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_why_without_the_password() {
        assert!(matches!(
            DatabaseUrl::parse("sqlite:///tmp/a.db"),
            Ok(DatabaseUrl::Sqlite(p)) if p == std::path::Path::new("/tmp/a.db")
        ));
        let pg = DatabaseUrl::parse("postgres://me:hunter2@127.0.0.1:5432/ag").unwrap();
        assert_eq!(pg.to_string(), "postgres://me:[redacted]@127.0.0.1:5432/ag");
        assert!(!format!("{pg:?}").contains("hunter2"));
        for (url, why) in [
            ("sqlite://", "names no file"),
            ("mysql://u:hunter2@h/db", "neither sqlite nor postgres"),
            ("postgres://u:hunter2@/db", "names no host"),
            ("postgres://u:hunter2@h:notaport/db", "port"),
            ("", "neither"),
        ] {
            let err = DatabaseUrl::parse(url).unwrap_err();
            assert!(err.why.contains(why), "{url}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}
