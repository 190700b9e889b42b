"""The official Python MCP SDK, unmodified, against upstream MCP servers behind agentgate's MCP
gateway (`/mcp/{name}`): signs in through OAuth for each upstream (its own resource), then
- fs (@modelcontextprotocol/server-filesystem): reads a file (allowed by a rule on `path`), lists
  tools (a denied one is missing), calls a denied tool anyway, and writes a file (asked: this
  call waits until a person approves it in the inbox);
- everything (@modelcontextprotocol/server-everything): triggers an elicitation, a sampling
  request and a roots request, which reach this client and whose answers reach the server; sets
  the logging level and turns the server's logging on, whose messages reach this client; follows
  a long call's progress.
Prints one JSON object per step; exits non-zero on any failure.

usage: gateway_client.py BASE_URL PASSPHRASE DIRECTORY
"""

import asyncio
import os
import sys

import httpx2
from mcp import types
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from client import REDIRECT, Browser, Memory, say


def provider_for(url, browser):
    return OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="python-sdk gateway",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=Memory(),
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "text", None))


async def filesystem(base, passphrase, directory):
    provider = provider_for(f"{base}/mcp/fs", Browser(passphrase))
    async with httpx2.AsyncClient(auth=provider, timeout=120) as http:
        async with streamable_http_client(f"{base}/mcp/fs", http_client=http) as (read, write):
            async with ClientSession(read, write) as s:
                init = await s.initialize()
                say("fs/initialize", server=init.server_info.name)
                read_result = await s.call_tool(
                    "read_text_file", {"path": os.path.join(directory, "hello.txt")}
                )
                say("fs/read", is_error=bool(read_result.is_error), text=text_of(read_result))
                tools = await s.list_tools()
                say("fs/tools", tools=sorted(t.name for t in tools.tools))
                moved = await s.call_tool(
                    "move_file",
                    {
                        "source": os.path.join(directory, "hello.txt"),
                        "destination": os.path.join(directory, "moved.txt"),
                    },
                )
                say("fs/move", is_error=bool(moved.is_error), text=text_of(moved))
                say("fs/writing")
                written = await s.call_tool(
                    "write_file",
                    {"path": os.path.join(directory, "approved.txt"), "content": "approved in the inbox"},
                )
                say("fs/write", is_error=bool(written.is_error), text=text_of(written))


async def everything(base, passphrase):
    provider = provider_for(f"{base}/mcp/everything", Browser(passphrase))
    asked = []

    async def elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True})

    sampled = []

    async def sample(context, params):
        sampled.append(params.messages[0].content.text)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="sampled by the client: 42"),
            model="scripted-model",
            stop_reason="endTurn",
        )

    async def roots(context):
        return types.ListRootsResult(
            roots=[types.Root(uri="file:///work/agentgate-root", name="the client's root")]
        )

    logged = []

    async def log(params):
        logged.append({"level": params.level, "data": params.data})

    async with httpx2.AsyncClient(auth=provider, timeout=120) as http:
        url = f"{base}/mcp/everything"
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(
                read,
                write,
                elicitation_callback=elicit,
                sampling_callback=sample,
                list_roots_callback=roots,
                logging_callback=log,
            ) as s:
                init = await s.initialize()
                say("everything/initialize", server=init.server_info.name)
                tools = await s.list_tools()
                names = sorted(t.name for t in tools.tools)
                say("everything/tools", tools=names)
                result = await s.call_tool("trigger-elicitation-request", {})
                say(
                    "everything/elicitation",
                    asked=asked,
                    is_error=bool(result.is_error),
                    text=text_of(result),
                )
                progress = []

                async def on_progress(value, total, message):
                    progress.append(value)

                long = await s.call_tool(
                    "trigger-long-running-operation",
                    {"duration": 1, "steps": 3},
                    progress_callback=on_progress,
                )
                # The last notification may trail the result a little (the SDKs hand
                # notifications and responses to different tasks).
                for _ in range(20):
                    if len(progress) >= 3:
                        break
                    await asyncio.sleep(0.1)
                say("everything/progress", progress=progress, is_error=bool(long.is_error))
                result = await s.call_tool(
                    "trigger-sampling-request", {"prompt": "what is six times seven?", "maxTokens": 20}
                )
                say(
                    "everything/sampling",
                    sampled=sampled,
                    is_error=bool(result.is_error),
                    text=text_of(result),
                )
                result = await s.call_tool("get-roots-list", {})
                say("everything/roots", is_error=bool(result.is_error), text=text_of(result))
                await s.set_logging_level("debug")
                started = await s.call_tool("toggle-simulated-logging", {})
                # The server logs one message at once, then one every 5 s.
                def simulated():
                    return [m for m in logged if "level message" in str(m["data"]).replace("-", " ")]

                for _ in range(100):
                    if simulated():
                        break
                    await asyncio.sleep(0.1)
                await s.call_tool("toggle-simulated-logging", {})
                say(
                    "everything/logging",
                    logged=logged,
                    is_error=bool(started.is_error),
                    text=text_of(started),
                )


async def main(base, passphrase, directory):
    await filesystem(base, passphrase, directory)
    await everything(base, passphrase)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
