// The official TypeScript MCP SDK, unmodified, against upstream MCP servers behind agentgate's MCP
// gateway: signs in through OAuth for /mcp/fs (its own resource), reads a file a rule allows,
// lists tools (a denied one is missing), calls the denied one anyway, and writes a file (asked:
// the call waits until a person approves it); then /mcp/everything, whose elicitation reaches this
// client and whose answer reaches the server. Prints one JSON object per step.
//
// usage: node gateway-client.mjs BASE_URL PASSPHRASE DIRECTORY
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { HeadlessProvider } from "./oauth-provider.mjs";

const [base, passphrase, directory] = process.argv.slice(2);
const say = (step, fields = {}) => console.log(JSON.stringify({ step, ...fields }));
const text = (result) => result.content.filter((c) => c.text).map((c) => c.text).join("\n");

async function signedIn(url, client) {
  const provider = new HeadlessProvider(passphrase, "typescript-sdk gateway");
  const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  try {
    await client.connect(first);
    return;
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  await first.finishAuth(provider.code);
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
}

const fs = new Client({ name: "typescript-sdk-gateway", version: "1.0.0" });
await signedIn(`${base}/mcp/fs`, fs);
say("fs/initialize", { server: fs.getServerVersion()?.name });
const read = await fs.callTool({ name: "read_text_file", arguments: { path: path.join(directory, "hello.txt") } });
say("fs/read", { is_error: Boolean(read.isError), text: text(read) });
const tools = await fs.listTools();
say("fs/tools", { tools: tools.tools.map((t) => t.name).sort() });
const moved = await fs.callTool({
  name: "move_file",
  arguments: { source: path.join(directory, "hello.txt"), destination: path.join(directory, "moved.txt") },
});
say("fs/move", { is_error: Boolean(moved.isError), text: text(moved) });
say("fs/writing");
const written = await fs.callTool(
  { name: "write_file", arguments: { path: path.join(directory, "approved.txt"), content: "approved in the inbox" } },
  undefined,
  { timeout: 120_000 },
);
say("fs/write", { is_error: Boolean(written.isError), text: text(written) });
await fs.close();

const asked = [];
const everything = new Client(
  { name: "typescript-sdk-gateway", version: "1.0.0" },
  { capabilities: { elicitation: {} } },
);
everything.setRequestHandler(ElicitRequestSchema, async (request) => {
  asked.push(request.params.message);
  return { action: "accept", content: { name: "Ada Lovelace", check: true } };
});
await signedIn(`${base}/mcp/everything`, everything);
say("everything/initialize", { server: everything.getServerVersion()?.name });
const listed = await everything.listTools();
say("everything/tools", { tools: listed.tools.map((t) => t.name).sort() });
const elicited = await everything.callTool({ name: "trigger-elicitation-request", arguments: {} });
say("everything/elicitation", { asked, is_error: Boolean(elicited.isError), text: text(elicited) });
await everything.close();
