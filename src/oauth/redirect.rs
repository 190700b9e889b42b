//! Redirect URIs: which ones a client may register (loopback `http` or `https`, RFC 8252 §7.3 and
//! §8.3) and whether an authorization request's URI matches a registered one (exact string match,
//! except that a loopback IP literal may use any port, RFC 8252 §7.3). Pure.

use url::{Host, Url};

/// Why a redirect URI cannot be registered.
pub fn check_registrable(uri: &str) -> Result<(), String> {
    if uri.len() > 2000 {
        return Err("a redirect URI has at most 2000 characters".into());
    }
    let url = Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URI: {e}"))?;
    if url.fragment().is_some() {
        return Err(format!("`{uri}` has a fragment; redirect URIs may not"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{uri}` carries credentials"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "`{uri}` is plain http to a host that is not loopback; use https, or \
             http://127.0.0.1, http://[::1] or http://localhost"
        )),
        other => Err(format!(
            "`{uri}` uses the scheme `{other}`; only https and loopback http are accepted"
        )),
    }
}

/// Whether the URI's host is a loopback name or address.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn is_loopback_ip_literal(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        }
}

/// The registered URI `requested` matches: the same string, or for a loopback IP literal over
/// http, the same URI on another port.
pub fn matches(registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Ok(mut wanted) = Url::parse(requested) else {
        return false;
    };
    if !is_loopback_ip_literal(&wanted) || wanted.set_port(None).is_err() {
        return false;
    }
    registered.iter().any(|r| {
        Url::parse(r).is_ok_and(|mut reg| {
            is_loopback_ip_literal(&reg) && reg.set_port(None).is_ok() && reg == wanted
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_http_and_https_only() {
        for ok in [
            "http://127.0.0.1:3000/callback",
            "http://[::1]:9/cb",
            "http://localhost:8080/cb",
            "https://app.example.com/cb",
            "http://127.0.0.2/cb",
        ] {
            check_registrable(ok).unwrap();
        }
        for bad in [
            "http://example.com/cb",
            "http://127.0.0.1.nip.io/cb",
            "javascript:alert(1)",
            "com.example.app:/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "/relative",
            "",
        ] {
            assert!(check_registrable(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_match_with_any_port_for_loopback_ip_literals() {
        let reg = vec![
            "http://127.0.0.1:3000/callback".to_owned(),
            "http://localhost:4000/cb".to_owned(),
            "https://app.example.com/cb".to_owned(),
        ];
        assert!(matches(&reg, "http://127.0.0.1:3000/callback"));
        assert!(matches(&reg, "http://127.0.0.1:51234/callback"));
        assert!(matches(&reg, "https://app.example.com/cb"));
        assert!(matches(&reg, "http://localhost:4000/cb"));
        for bad in [
            "http://127.0.0.1:3000/callback2",
            "http://127.0.0.1:3000/callback?x=1",
            "http://localhost:4001/cb",
            "https://app.example.com:444/cb",
            "https://app.example.com/cb/",
            "http://[::1]:3000/callback",
            "not a uri",
        ] {
            assert!(!matches(&reg, bad), "{bad}");
        }
    }
}
