// The official TypeScript MCP SDK (@modelcontextprotocol/sdk, pinned in package-lock.json),
// unmodified, against a running agentgate: dynamic client registration, the consent step done
// headlessly (redirectToAuthorization fetches the consent page, fills in the owner passphrase and
// reads the 303), finishAuth, then initialize, tools/list and tools/call; then the access token is
// revoked (RFC 7009) and the SDK recovers by refreshing on the 401. Prints one JSON object per step.
//
// usage: node client.mjs MCP_URL PASSPHRASE
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { HeadlessProvider } from "./oauth-provider.mjs";

const [url, passphrase] = process.argv.slice(2);
const say = (step, fields = {}) => console.log(JSON.stringify({ step, ...fields }));

async function session(provider) {
  const client = new Client({ name: "typescript-sdk-interop", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
  say("initialize", { server: client.getServerVersion()?.name });
  const tools = await client.listTools();
  say("tools/list", { tools: tools.tools.map((t) => t.name).sort() });
  const result = await client.callTool({
    name: "request_permission",
    arguments: { kind: "shell", command: "echo interop", agent: "typescript-sdk" },
  });
  say("tools/call", { is_error: Boolean(result.isError), result: JSON.parse(result.content[0].text) });
  await client.close();
}

const provider = new HeadlessProvider(passphrase);
const started = performance.now();
const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
const first = new Client({ name: "typescript-sdk-interop", version: "1.0.0" });
try {
  await first.connect(transport);
  throw new Error("connected without signing in");
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}
await transport.finishAuth(provider.code);
await session(provider);
say("authorized", {
  client_id: provider.info.client_id,
  consent_pages: provider.consentPages,
  scope: provider.saved.scope,
  expires_in: provider.saved.expires_in,
  seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
});
// Revoke the access token as the client (RFC 7009): the next request gets 401 and the SDK
// refreshes with its refresh token, without a consent page.
const before = provider.saved;
const revoked = await fetch(new URL("/revoke", url), {
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams({ token: before.access_token, client_id: provider.info.client_id }),
});
say("revoked", { status: revoked.status });
await session(provider);
say("refreshed", {
  refreshes: provider.refreshes,
  new_access: provider.saved.access_token !== before.access_token,
  new_refresh: provider.saved.refresh_token !== before.refresh_token,
  consent_pages: provider.consentPages,
});
