/**
 * A webhook receiver in its own process (so it does not share the daemon's event loop):
 * answers 200 to every POST and, on SIGUSR2, writes "<data.id> <received at ms>" lines to the
 * file named by argv[2]. Prints its port on stdout when listening.
 */
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";

const out = process.argv[2]!;
const received: string[] = [];
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const at = performance.timeOrigin + performance.now();
    res.writeHead(200).end("ok");
    const body = Buffer.concat(chunks).toString();
    const id = /"data":\{[^]*?"id":"([0-9a-f-]{36})"/.exec(body)?.[1] ?? "?";
    received.push(`${id} ${at.toFixed(3)}`);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.on("SIGUSR2", () => {
  writeFileSync(out, received.join("\n"));
  received.length = 0;
  process.stdout.write("flushed\n");
});
process.on("SIGTERM", () => process.exit(0));
