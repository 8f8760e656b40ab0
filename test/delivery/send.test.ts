import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { HttpSender, RESPONSE_BODY_CAP_BYTES } from "../../src/delivery/send.js";
import { waitFor } from "../support/wait.js";

// The HTTP client on its own, against real servers on 127.0.0.1: what comes back for responses
// that do not end, end early, or never start. A failure is a result, never a thrown error.

const sender = new HttpSender({ allowPrivateTargets: true, allowHttp: true });
const servers: http.Server[] = [];
let endlessClosed = false;

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

let endlessUrl: string;
let cutUrl: string;
let echoUrl: string;

before(async () => {
  // 200, then 1 KiB every 5 ms for as long as the client reads.
  endlessUrl = await serve((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain" });
    const timer = setInterval(() => res.write("x".repeat(1024)), 5);
    res.on("close", () => {
      clearInterval(timer);
      endlessClosed = true;
    });
  });
  // Headers promise 100 bytes; 10 arrive; the connection is dropped.
  cutUrl = await serve((req, res) => {
    req.resume();
    res.writeHead(200, { "content-length": "100" });
    res.write("0123456789", () => res.destroy());
  });
  echoUrl = await serve((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      res.writeHead(201, { "x-seen-signature": String(req.headers["webhook-signature"]), "set-cookie": ["a=1", "b=2"] });
      res.end(Buffer.concat(chunks));
    });
  });
});
after(async () => {
  await sender.close();
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test("an endless response body: reading stops at 16 KiB, the attempt succeeds without waiting for the timeout, and the connection is dropped", async () => {
  const result = await sender.send({ url: endlessUrl, headers: { "content-type": "application/json" }, body: "{}", timeoutMs: 30_000 });

  assert.equal(result.error, null, "not a timeout: the result came back at the cap");
  assert.equal(result.status, 200);
  assert.equal(result.body, "x".repeat(RESPONSE_BODY_CAP_BYTES));
  await waitFor("the server to see the connection closed", () => endlessClosed || undefined);
});

test("a response cut short by the server is a failed result naming the cause, not a thrown error", async () => {
  const result = await sender.send({ url: cutUrl, headers: {}, body: "{}", timeoutMs: 5_000 });

  assert.equal(result.status, null);
  assert.ok(result.error, "the failure is described");
  assert.doesNotMatch(result.error!, /timed out/);
});

test("status, headers (repeated ones joined) and body come back as the server sent them", async () => {
  const body = JSON.stringify({ id: "evt_1", data: { name: "Zoë" } });
  const result = await sender.send({ url: echoUrl, headers: { "content-type": "application/json", "webhook-signature": "v1,abc" }, body, timeoutMs: 5_000 });

  assert.equal(result.status, 201);
  assert.equal(result.body, body);
  assert.equal(result.headers?.["x-seen-signature"], "v1,abc");
  assert.equal(result.headers?.["set-cookie"], "a=1, b=2");
  assert.equal(result.error, null);
});

test("a port with nothing listening is a failed result with the connection error", async () => {
  const closed = await serve(() => undefined);
  const server = servers.pop()!;
  await new Promise((resolve) => server.close(resolve));

  const result = await sender.send({ url: closed, headers: {}, body: "{}", timeoutMs: 5_000 });

  assert.equal(result.status, null);
  assert.match(result.error!, /ECONNREFUSED/);
});

test("a request undici refuses to build (a header value with a line break) is a failed result, not a thrown error", async () => {
  const result = await sender.send({ url: echoUrl, headers: { "x-bad": "a\nb" }, body: "{}", timeoutMs: 5_000 });

  assert.equal(result.status, null);
  assert.match(result.error!, /x-bad/);
});
