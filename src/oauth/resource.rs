//! The one resource agentgate protects: its MCP endpoint under the origin a request came
//! through (RFC 8707). Codes and tokens are bound to it; a `resource` parameter must name it.

use crate::mcp::MCP_PATH;

/// The MCP endpoint's resource identifier under `origin` (`http://host:port`).
pub fn mcp_resource(origin: &str) -> String {
    format!("{origin}{MCP_PATH}")
}

/// A requested `resource` in canonical form, if it is our MCP endpoint under this request's host
/// (case-insensitive host, an optional trailing slash).
pub fn canonical(origin: &str, requested: &str) -> Option<String> {
    let ours = url::Url::parse(&mcp_resource(origin)).ok()?;
    let asked = url::Url::parse(requested).ok()?;
    let same = asked.scheme() == ours.scheme()
        && asked.host() == ours.host()
        && asked.port_or_known_default() == ours.port_or_known_default()
        && asked.path().strip_suffix('/').unwrap_or(asked.path()) == MCP_PATH
        && asked.query().is_none()
        && asked.fragment().is_none();
    same.then(|| mcp_resource(origin))
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
                canonical(o, ok).as_deref(),
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
            assert_eq!(canonical(o, bad), None, "{bad}");
        }
    }
}
