//! The resources agentgate protects: its own MCP endpoint `/mcp` and each upstream MCP server's
//! `/mcp/{name}`, under the origin a request came through (RFC 8707). Codes and tokens are bound
//! to one of them; a `resource` parameter must name one.

use crate::mcp::MCP_PATH;

/// The MCP endpoint's resource identifier under `origin` (`http://host:port`).
pub fn mcp_resource(origin: &str) -> String {
    format!("{origin}{MCP_PATH}")
}

/// The resource identifier of the upstream MCP server `name` under `origin`.
pub fn server_resource(origin: &str, name: &str) -> String {
    format!("{}/{name}", mcp_resource(origin))
}

/// A requested `resource` in canonical form, if it is one of our MCP endpoints under this
/// request's host (case-insensitive host, an optional trailing slash): `/mcp`, or `/mcp/{name}`
/// for a configured upstream in `servers`.
pub fn canonical(origin: &str, requested: &str, servers: &[String]) -> Option<String> {
    let ours = url::Url::parse(&mcp_resource(origin)).ok()?;
    let asked = url::Url::parse(requested).ok()?;
    let same_origin = asked.scheme() == ours.scheme()
        && asked.host() == ours.host()
        && asked.port_or_known_default() == ours.port_or_known_default()
        && asked.query().is_none()
        && asked.fragment().is_none();
    if !same_origin {
        return None;
    }
    let path = asked.path().strip_suffix('/').unwrap_or(asked.path());
    if path == MCP_PATH {
        return Some(mcp_resource(origin));
    }
    let name = path.strip_prefix(MCP_PATH)?.strip_prefix('/')?;
    servers
        .iter()
        .any(|s| s == name)
        .then(|| server_resource(origin, name))
}

/// The upstream MCP server a resource names, if it is one (`…/mcp/{name}`).
pub fn server_of(resource: &str) -> Option<&str> {
    let (_, name) = resource.rsplit_once("/mcp/")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_mcp_endpoint_under_this_host_is_a_resource() {
        let o = "http://127.0.0.1:7700";
        for ok in [
            "http://127.0.0.1:7700/mcp",
            "http://127.0.0.1:7700/mcp/",
            "HTTP://127.0.0.1:7700/mcp",
        ] {
            assert_eq!(
                canonical(o, ok, &[]).as_deref(),
                Some("http://127.0.0.1:7700/mcp"),
                "{ok}"
            );
        }
        for bad in [
            "http://127.0.0.1:7700/",
            "http://127.0.0.1:7700/mcpx",
            "http://localhost:7700/mcp",
            "http://127.0.0.1:7701/mcp",
            "https://127.0.0.1:7700/mcp",
            "http://127.0.0.1:7700/mcp?x=1",
            "http://127.0.0.1:7700/mcp#f",
            "mcp",
        ] {
            assert_eq!(canonical(o, bad, &[]), None, "{bad}");
        }
        let servers = ["fs".to_owned()];
        assert_eq!(
            canonical(o, "http://127.0.0.1:7700/mcp/fs/", &servers).as_deref(),
            Some("http://127.0.0.1:7700/mcp/fs")
        );
        for bad in [
            "http://127.0.0.1:7700/mcp/other",
            "http://127.0.0.1:7700/mcp/fs/x",
            "http://127.0.0.1:7700/mcp//fs",
            "http://localhost:7700/mcp/fs",
        ] {
            assert_eq!(canonical(o, bad, &servers), None, "{bad}");
        }
        assert_eq!(server_of("http://127.0.0.1:7700/mcp/fs"), Some("fs"));
        assert_eq!(server_of("http://127.0.0.1:7700/mcp"), None);
    }
}
