// Drives `agentkit mcp` with the MCP TypeScript SDK (tests/faces/test_mcp_clients.py).
// argv: "stdio" PYTHON STORE | "http" URL TOKEN | "locked" PYTHON STORE.
// Prints one JSON object with what the server answered; an unexpected failure exits 1 with its message.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, a, b] = process.argv.slice(2);
const client = new Client({ name: "agentkit-ts-test", version: "1.0.0" });
const transport = mode === "http"
  ? new StreamableHTTPClientTransport(new URL(a), { requestInit: { headers: { Authorization: `Bearer ${b}` } } })
  : new StdioClientTransport({ command: a, args: ["-m", "agentkit", "mcp", "--store", b], stderr: "pipe" });
const out = {};
if (mode === "locked") {
  try {
    await client.connect(transport);
    out.connected = true;
  } catch (err) {
    out.refused = String(err.message ?? err);
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}
await client.connect(transport);
out.server = client.getServerVersion();
const { tools } = await client.listTools();
out.tools = Object.fromEntries(tools.map((t) => [t.name, t.inputSchema]));
const text = (r) => r.content.map((c) => c.text ?? "").join(" ");
const call = async (name, args) => {
  const r = await client.callTool({ name, arguments: args });
  return r.isError ? { error: text(r) } : { ok: r.structuredContent ?? JSON.parse(text(r)) };
};
out.search = await call("search_behaviors", { query: "what units is the answer in?", k: 2 });
out.detailed = await call("search_behaviors", { query: "what units is the answer in?", k: 1, details: true });
out.unknown_argument = await call("search_behaviors", { query: "units", kk: 3 });
out.bad_k = await call("search_behaviors", { query: "units", k: 0 });
out.bad_name = await call("add_behavior", { name: "Not A Name", instruction: "x" });
out.missing = await call("get_behavior", { name: "behavior_nope" });
out.added = await call("add_behavior", { name: "behavior_guess_and_check", instruction: "Guess a value, check it, and adjust." });
await client.close();
console.log(JSON.stringify(out));
