// Drives `agentkit proxy` with openai-node (tests/faces/test_proxy_clients.py): argv = base URL, token, model.
// Prints one JSON object with what each call returned; any unexpected failure exits 1 with its message.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const out = {};
const user = [{ role: "user", content: "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total?" }];

out.models = (await client.models.list()).data.map((m) => m.id);
out.retrieved = (await client.models.retrieve(`pdr/${model}`)).id;
const plain = await client.chat.completions.create({ model, messages: user, max_tokens: 40, temperature: 0.2, seed: 1 });
out.plain = { content: plain.choices[0].message.content, usage: plain.usage };
const method = await client.chat.completions.create({
  model: `pdr/${model}`, messages: user, max_tokens: 600,
  agentkit: { params: { rounds: 2, drafts: 2, kappa: 64 } },
});
out.method = { content: method.choices[0].message.content, usage: method.usage, agentkit: method.agentkit };
const stream = await client.chat.completions.create({
  model: `pdr/${model}`, messages: user, stream: true, stream_options: { include_usage: true },
  agentkit: { params: { rounds: 2, drafts: 2, kappa: 64 } },
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
out.stream = { content: text, usage };
try {
  await client.chat.completions.create({ model: `pdr/${model}`, messages: user, top_p: 0.5 });
  out.refused = null;
} catch (err) {
  out.refused = { status: err.status, param: err.param, code: err.code };
}
try {
  await new OpenAI({ baseURL, apiKey: "wrong", maxRetries: 0 }).models.list();
  out.unauthorized = null;
} catch (err) {
  out.unauthorized = { status: err.status, name: err.constructor.name };
}
console.log(JSON.stringify(out));
