/**
 * The bench's webhook receiver, in its own process (so it does not share the daemon's event loop):
 * answers 200 to every POST at once, or argv[3] ms after reading it, or never when argv[3] is
 * "never" (the request is read and the connection stays open, nothing sent back, until the client
 * gives up). On SIGUSR2 it writes "<data.id> <received at ms>" lines to the file named by argv[2].
 * Prints its port on stdout when listening. Every path is served alike, so one process can stand
 * for many endpoints (/hook/1, /hook/2, …).
 * data.id is found in the body as webhooks._event_body writes it (jsonb text: `"id": "…"`).
 */
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";

const out = process.argv[2]!;
const delayArg = process.argv[3] ?? "0";
const never = delayArg === "never";
const delayMs = never ? 0 : Number(delayArg);
if (!never && !(Number.isFinite(delayMs) && delayMs >= 0)) throw new Error(`delay must be a number of ms or "never", got ${delayArg}`);

const received: string[] = [];
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const at = performance.timeOrigin + performance.now();
    if (delayMs > 0) setTimeout(() => res.writeHead(200).end("ok"), delayMs);
    else if (!never) res.writeHead(200).end("ok");
    const body = Buffer.concat(chunks).toString();
    const id = /"data":\s*\{[^]*?"id":\s*"([0-9a-f-]{36})"/.exec(body)?.[1] ?? "?";
    received.push(`${id} ${at.toFixed(3)}`);
  });
});
server.keepAliveTimeout = 60_000;
// Node's own limit would answer 408 to a request left unanswered; here the client gives up first.
server.requestTimeout = 0;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.on("SIGUSR2", () => {
  writeFileSync(out, received.join("\n"));
  received.length = 0;
  process.stdout.write("flushed\n");
});
process.on("SIGTERM", () => process.exit(0));
