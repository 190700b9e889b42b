"""The official Python MCP SDK, unmodified, against a running agentgate: dynamic client
registration, the browser consent step done headlessly (the redirect handler fetches the authorize
URL, fills in the consent form with the owner passphrase and reads the 303), the token exchange,
initialize, tools/list, tools/call, and a refresh. Prints one JSON object per step; exits non-zero
on any failure.

usage: client.py MCP_URL PASSPHRASE
"""

import asyncio
import json
import re
import sys
import time
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

REDIRECT = "http://127.0.0.1:53682/callback"


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None
        self.history = []

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info: OAuthClientInformationFull):
        self.client = info


class Browser:
    """Does what a person does in the browser: open the consent page, type the passphrase,
    press Approve, and hand the redirect's query to the SDK."""

    def __init__(self, passphrase):
        self.passphrase = passphrase
        self.result = None
        self.consent_pages = 0

    async def redirect(self, authorize_url: str):
        async with httpx2.AsyncClient(follow_redirects=False) as http:
            page = await http.get(authorize_url)
            if page.status_code == 303:  # remembered consent
                location = page.headers["location"]
            else:
                assert page.status_code == 200, (page.status_code, page.text[:500])
                self.consent_pages += 1
                form = dict(re.findall(r'name="(authz|csrf)" value="([^"]+)"', page.text))
                origin = "{0.scheme}://{0.netloc}".format(urlparse(authorize_url))
                answer = await http.post(
                    urljoin(authorize_url, "/authorize"),
                    data={**form, "passphrase": self.passphrase, "decision": "approve"},
                    headers={"Origin": origin},
                )
                assert answer.status_code == 303, (answer.status_code, answer.text[:500])
                location = answer.headers["location"]
        assert location.startswith(REDIRECT), location
        query = parse_qs(urlparse(location).query)
        self.result = AuthorizationCodeResult(
            code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
        )

    async def callback(self):
        return self.result


async def session(url, provider):
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as s:
                init = await s.initialize()
                say("initialize", server=init.server_info.name, protocol=str(init.protocol_version))
                tools = await s.list_tools()
                names = sorted(t.name for t in tools.tools)
                say("tools/list", tools=names)
                result = await s.call_tool(
                    "request_permission",
                    {"kind": "shell", "command": "echo interop", "agent": "python-sdk"},
                )
                text = result.content[0].text
                say("tools/call", is_error=bool(result.is_error), result=json.loads(text))


async def main(url, passphrase):
    storage = Memory()
    browser = Browser(passphrase)
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="python-sdk interop",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )
    started = time.monotonic()
    await session(url, provider)
    say(
        "authorized",
        client_id=storage.client.client_id,
        consent_pages=browser.consent_pages,
        scope=storage.tokens.scope,
        expires_in=storage.tokens.expires_in,
        seconds=round(time.monotonic() - started, 3),
    )
    first = storage.tokens
    # Make the SDK's own clock say the access token has expired: its next request refreshes.
    provider.context.token_expiry_time = time.time() - 1
    await session(url, provider)
    second = storage.tokens
    say(
        "refreshed",
        new_access=second.access_token != first.access_token,
        new_refresh=second.refresh_token != first.refresh_token,
        consent_pages=browser.consent_pages,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
