//! What a network rule matches: where a client will really connect.
//!
//! URLs are parsed the WHATWG way (the `url` crate), which is how browsers and most clients read
//! them. Anything two clients could read differently (a backslash, userinfo, a host written as
//! something other than its canonical form, encoded separators, whitespace) is kept visible but
//! made opaque: no allow rule covers it, a person decides. The scheme is part of the target:
//! `https` targets are `host[:port]/path` (what existing rules are written against), any other
//! scheme is spelled out (`http://host/path`, `file:///etc/passwd`), so an `https` rule never
//! covers plain HTTP, FTP, `file:` or `gopher:` to the same host.

use agentgate_policy::Target;

/// The policy's target for `raw`, or why it is not a URL at all.
pub fn target(raw: &str) -> Result<Target, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not an absolute URL: {e}"))?;
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let text = match (url.scheme(), host.as_str()) {
        ("https", "") => return Err("needs a host".into()),
        ("https", h) => format!("{h}{port}{}", url.path()),
        (scheme, "") => format!("{scheme}:{}", url.path()),
        (scheme, h) => format!("{scheme}://{h}{port}{}", url.path()),
    };
    Ok(match ambiguity(raw, &url, &host) {
        Some(why) => Target::opaque(text, why),
        None => Target::new(text),
    })
}

/// Why clients could disagree about where `raw` goes.
fn ambiguity(raw: &str, url: &url::Url, host: &str) -> Option<String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("whitespace or control characters in the URL".into());
    }
    if raw.contains('\\') {
        return Some("a backslash: clients disagree on where the host ends".into());
    }
    if !url.username().is_empty() || url.password().is_some() || authority(raw).contains('@') {
        return Some("userinfo (`user@`) before the host: clients disagree on the host".into());
    }
    let written = written_host(raw).to_ascii_lowercase();
    if url.has_host() && written != host {
        return Some(format!(
            "the host is written `{written}` but means `{host}` (IP forms, IDNA or encoding)"
        ));
    }
    if host.ends_with('.') {
        return Some("a trailing dot in the host".into());
    }
    let path = url.path().to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| path.contains(e))
    {
        return Some(
            "an encoded separator or dot in the path: servers decode it differently".into(),
        );
    }
    None
}

/// The authority as written: after `scheme://`, up to the first `/`, `?` or `#`.
fn authority(raw: &str) -> &str {
    let after = raw.split_once("://").map_or("", |(_, rest)| rest);
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    &after[..end]
}

/// The host as written, without userinfo and port.
fn written_host(raw: &str) -> &str {
    let auth = authority(raw);
    let host = auth.rsplit('@').next().unwrap_or(auth);
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raw: &str) -> Target {
        target(raw).unwrap()
    }

    #[test]
    fn https_is_host_and_path_and_other_schemes_are_spelled_out() {
        assert_eq!(
            t("https://API.GitHub.com:8443/repos/x?q=1").text,
            "api.github.com:8443/repos/x"
        );
        assert_eq!(t("https://api.github.com:443/x").text, "api.github.com/x");
        assert_eq!(t("http://api.github.com/x").text, "http://api.github.com/x");
        assert_eq!(t("ftp://api.github.com/x").text, "ftp://api.github.com/x");
        assert_eq!(
            t("gopher://api.github.com/x").text,
            "gopher://api.github.com/x"
        );
        assert_eq!(t("file:///etc/passwd").text, "file:/etc/passwd");
        assert!(t("https://api.github.com/repos/x").opaque.is_none());
        assert!(target("not a url").is_err());
        assert!(target("https:///x").is_err() || t("https:///x").opaque.is_some());
    }

    #[test]
    fn ambiguous_urls_are_opaque() {
        for raw in [
            "https://api.github.com\\@evil.com/x",
            "https://api.github.com@evil.com/x",
            "https://user:pw@api.github.com/x",
            "https://0x7f.1/x",
            "https://2130706433/x",
            "https://127.1/x",
            "https://api.github.com./x",
            "https://xn--fsqu00a.com/x"
                .replace("xn--fsqu00a", "例子")
                .as_str(),
            "https://api%2egithub.com/x",
            "https://api.github.com/a/..%2f..%2fx",
            "https://api.github.com/a%2Fb",
            "https://api.github.com/\tx",
        ] {
            let target = t(raw);
            assert!(target.opaque.is_some(), "{raw} → {target:?}");
        }
        // Where the backslash form really goes: WHATWG reads `\` as `/`, so the host is
        // api.github.com here, while curl connects to evil.com; either way, not allowed.
        assert!(t("https://api.github.com\\@evil.com/x").opaque.is_some());
    }

    /// URLs whose host a lax or different parser may read differently.
    const CORPUS: &[&str] = &[
        "https://api.github.com/repos/x",
        "https://API.GitHub.com:8443/x",
        "http://api.github.com/x",
        "https://api.github.com\\@evil.com/x",
        "https://api.github.com@evil.com/x",
        "https://user:pw@api.github.com/x",
        "https://api.github.com:443@evil.com/x",
        "https://evil.com#@api.github.com/x",
        "https://evil.com?@api.github.com/x",
        "https://api.github.com%2f@evil.com/x",
        "https://api.github.com%40evil.com/x",
        "https://0x7f.1/x",
        "https://0177.0.0.1/x",
        "https://2130706433/x",
        "https://127.1/x",
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://api.github.com./x",
        "https://xn--e1afmkfd.xn--p1ai/x",
        "https://\u{0440}\u{0443}.com/x",
        "https://api.github.com/a/../../etc",
        "https://api.github.com/a/%2e%2e/b",
        "https://api.github.com\\x",
        "https:/api.github.com/x",
        "https:api.github.com/x",
        "https:///api.github.com/x",
        "HTTPS://API.GITHUB.COM/X",
        "https://api.github.com:/x",
        "https://api.github.com:0443/x",
        "https://api.github.com /x",
        "https://api.github.com\t/x",
        "https://a.b\u{3002}com/x",
        "https://exa%6dple.com/x",
    ];

    /// What Python's `urllib.parse` reads as the host of each URL (`None`: no host / error).
    fn python_hosts(urls: &[&str]) -> Option<Vec<Option<String>>> {
        let script = "import json,sys,urllib.parse as u\n\
            out=[]\n\
            for x in json.load(sys.stdin):\n\
            \ttry: out.append(u.urlsplit(x).hostname)\n\
            \texcept Exception: out.append(None)\n\
            print(json.dumps(out))";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        use std::io::Write;
        child
            .stdin
            .take()?
            .write_all(serde_json::to_string(urls).ok()?.as_bytes())
            .ok()?;
        let out = child.wait_with_output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Where curl tries to connect for `url` (the name it resolves, or the address it dials).
    fn curl_host(url: &str) -> Option<Option<String>> {
        let out = std::process::Command::new("curl")
            .args([
                "-sv",
                "--connect-timeout",
                "1",
                "--max-time",
                "2",
                "-o",
                "/dev/null",
                url,
            ])
            .output()
            .ok()?;
        let err = String::from_utf8_lossy(&out.stderr);
        for line in err.lines() {
            if let Some(h) = line.strip_prefix("* Could not resolve host: ") {
                return Some(Some(h.trim().to_ascii_lowercase()));
            }
            if let Some(rest) = line.trim_start_matches(['*', ' ']).strip_prefix("Trying ") {
                let addr = rest.trim_end_matches("...");
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                return Some(Some(host.trim_matches(['[', ']']).to_owned()));
            }
        }
        Some(None)
    }

    /// Our host, as the policy target has it.
    fn our_host(raw: &str) -> Option<String> {
        let url = url::Url::parse(raw).ok()?;
        url.host_str()
            .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
    }

    #[test]
    fn where_python_or_curl_would_connect_elsewhere_the_target_is_opaque() {
        let python = python_hosts(CORPUS);
        if python.is_none() {
            eprintln!("python3 not found: the Python side of the URL differential is skipped");
        }
        let curl_found = std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_ok();
        if !curl_found {
            eprintln!("curl not found: the curl side of the URL differential is skipped");
        }
        let mut understood = 0;
        for (i, raw) in CORPUS.iter().enumerate() {
            let Ok(t) = target(raw) else {
                continue; // not a URL to us: refused with a 400, nothing to allow
            };
            if t.opaque.is_some() {
                continue;
            }
            understood += 1;
            let ours = our_host(raw);
            if let Some(py) = python.as_ref().and_then(|p| p.get(i)) {
                assert_eq!(
                    py.as_deref().map(str::to_ascii_lowercase),
                    ours,
                    "{raw}: Python connects to {py:?}, the policy saw {ours:?} and did not call it opaque"
                );
            }
            if curl_found && let Some(Some(curl)) = curl_host(raw) {
                let ours_v = ours.clone().unwrap_or_default();
                assert!(
                    curl == ours_v
                        || ours_v.parse::<std::net::IpAddr>().map(|ip| ip.to_string())
                            == Ok(curl.clone()),
                    "{raw}: curl connects to {curl}, the policy saw {ours_v} and did not call it opaque"
                );
            }
        }
        assert!(understood >= 5, "only {understood} plain URLs understood");
    }
}
