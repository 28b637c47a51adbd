// A local webhook receiver for `npm run dev`: verifies each delivery with the Standard Webhooks
// library (as any receiver should), prints it, and answers 204. Register it with
//   {"url": "http://127.0.0.1:8789/hooks", ...}   (http://127.0.0.1 is allowed only in development)
// and start it with the secret the create call returned:
//   WEBHOOK_SECRET=whsec_… npm run dev:webhooks [-- --port 8789 --fail 2]
// `--fail N` answers 500 to the first N attempts, to watch the retries.
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const port = Number(arg("port", "8789"));
let failures = Number(arg("fail", "0"));
const secret = process.env.WEBHOOK_SECRET;
if (!secret?.startsWith("whsec_")) {
  console.error("Set WEBHOOK_SECRET to the endpoint's secret (whsec_…), as returned once by POST …/webhooks.");
  process.exit(2);
}
const wh = new Webhook(secret);
const seen = new Set();

createServer(async (req, res) => {
  let body = "";
  for await (const chunk of req) body += chunk;
  if (failures > 0) {
    failures -= 1;
    console.log(`${req.headers["webhook-id"]}: answering 500 on purpose (${failures} more)`);
    return res.writeHead(500).end();
  }
  let event;
  try {
    event = wh.verify(body, req.headers); // throws on a bad signature or a timestamp more than 5 minutes off
  } catch (err) {
    console.log(`refused: ${err.message}`);
    return res.writeHead(400).end();
  }
  const id = req.headers["webhook-id"];
  // Delivery is at least once: the webhook-id is the same on every attempt of one event.
  console.log(`${seen.has(id) ? "again" : "new"} ${id} ${event.type} ${JSON.stringify(event.data)}`);
  seen.add(id);
  res.writeHead(204).end();
}).listen(port, "127.0.0.1", () => console.log(`Receiving webhooks on http://127.0.0.1:${port}/hooks`));
