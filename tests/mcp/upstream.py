"""An MCP server built with the Python `mcp` SDK, for the MCP gateway's tests and benchmark: an
echo tool (read-only), a tool that writes a file, a tool that is denied by the tests' policy, and
one that exits the process mid-call. Over stdio by default; `--http PORT` serves streamable HTTP
at http://127.0.0.1:PORT/mcp instead."""
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

mcp = MCPServer("test-upstream")


@mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
def echo(text: str) -> str:
    """Answers with its input."""
    return text


@mcp.tool(annotations=ToolAnnotations(destructiveHint=True))
def write_file(path: str, content: str) -> str:
    """Writes `content` to `path`."""
    with open(path, "w") as f:
        f.write(content)
    return f"wrote {len(content)} bytes to {path}"


@mcp.tool()
def delete_everything() -> str:
    """A tool the policy hides."""
    return "should never run"


@mcp.tool()
def reply(text: str) -> str:
    """Named like one of agentgate's own /mcp tools (which needs `approve` there)."""
    return f"replied {text}"


@mcp.resource("test://greeting")
def greeting() -> str:
    """A fixed text resource."""
    return "hello from a resource"


@mcp.prompt()
def review(code: str) -> str:
    """A prompt with one argument."""
    return f"Please review: {code}"


@mcp.tool()
def crash() -> str:
    """Exits the server in the middle of a call."""
    sys.stderr.write("crashing on purpose\n")
    sys.stderr.flush()
    os._exit(3)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--http":
        mcp.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        mcp.run()
