// A credential-injecting forwarder for the MCP conformance `server` scenarios, which send no
// credential. It does what an MCP client's transport does, and nothing else: it adds
// `Authorization: Bearer <token>` and forwards to agentgate. The Host and Origin headers keep their
// host name; only a port equal to the proxy's own becomes agentgate's (so `127.0.0.1:<proxy>` is
// `127.0.0.1:<agentgate>`, while `evil.example.com` stays `evil.example.com`). agentgate therefore
// sees the same verdict-relevant headers the suite sent, and answers them itself.
//
// usage: node auth-proxy.mjs <agentgate host:port> <token> <ready file>
import http from "node:http";
import fs from "node:fs";

const [target, token, readyFile] = process.argv.slice(2);
const [targetHost, targetPort] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];

const server = http.createServer((req, res) => {
  const own = String(server.address().port);
  const swapPort = (value) => value.replace(new RegExp(`:${own}$`), `:${targetPort}`);
  const headers = { ...req.headers, authorization: `Bearer ${token}` };
  if (headers.host) headers.host = swapPort(headers.host);
  if (headers.origin) headers.origin = swapPort(headers.origin);
  const upstream = http.request(
    { host: targetHost, port: targetPort, method: req.method, path: req.url, headers },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", (e) => {
    res.writeHead(502, { "content-type": "text/plain" });
    res.end(`proxy: ${e.message}`);
  });
  req.pipe(upstream);
});
server.listen(0, "127.0.0.1", () => {
  fs.writeFileSync(readyFile, String(server.address().port));
});
