/**
 * The code in docs/ is proven, not hoped: every verification function of docs/signatures.md
 * accepts a real delivery of the daemon exactly as a real receiver got it and refuses it with one
 * byte changed, and every signing example of docs/intake.md gets a 202 from the real endpoint.
 * The reference's lists of environment variables, metrics and intake refusal reasons are the
 * code's: one added to the code and not to docs/ (or the other way round) fails here.
 * Snippets run as users would run them: Node in a child process, Python with python3 (missing
 * python3 fails these tests), the shell example with bash, curl and openssl.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { describe, test } from "node:test";
import { loadConfig } from "../../src/config.js";
import { sign, type SignatureScheme } from "../../src/delivery/sign.js";
import { REFUSAL_STATUS } from "../../src/intake/refusal-reasons.js";
import { packageRoot } from "../../src/package-info.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { ReceivedRequest } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";
import { readDocument, snippet, type Document } from "./markdown-snippets.js";
import { bytes, SnippetRunner, type Call } from "./snippet-runner.js";

const h = useHarness({ daemon: true });

let runner: SnippetRunner;
let signatures: Document;
let intake: Document;

h.before(async () => {
  runner = await SnippetRunner.create();
  h.defer(() => runner.remove());
  signatures = await readDocument("signatures.md");
  intake = await readDocument("intake.md");
});

/** The text of docs/<file> from the heading `## <section>` to the next `## ` heading. */
async function section(file: string, heading: string): Promise<string> {
  const text = await readFile(path.join(packageRoot, "docs", file), "utf8");
  const start = text.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/${file} has a section "## ${heading}"`);
  const end = text.indexOf("\n## ", start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

/** The first cells of a section's table rows that are code spans: `| \`NAME\` | …`. */
const tableNames = (text: string) => [...text.matchAll(/^\| `([^`]+)` \|/gm)].map((match) => match[1]!);

/** What a receiver has in hand: the headers and the exact bytes of one request. */
interface Received {
  headers: Record<string, string>;
  body: Buffer;
}

/** An endpoint in an organization of its own, with a real receiver; `send()` writes a contact and waits for its request. */
async function endpoint(config: Record<string, unknown>) {
  const receiver = await h.startReceiver();
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"], ...config });
  return {
    id: hook.id,
    secret: hook.secret,
    async send(): Promise<Received> {
      const seen = receiver.requests.length;
      // Non-ASCII text and numbers a double cannot hold: the bytes must be verified as they came.
      await h.db.pool.query(
        `insert into contacts (organization_id, first_name, city, custom_fields)
         values ($1, 'Zoë', 'Kraków ☕', '{"amount": 12345678901234567.89, "big": 9007199254740993}')`,
        [org],
      );
      return received(await waitFor("the delivery", () => receiver.requests[seen]));
    },
  };
}

function received(request: ReceivedRequest): Received {
  const body = Buffer.from(request.body, "utf8");
  assert.equal(request.headers["content-length"], String(body.length), "the receiver's text is the bytes sent");
  assert.match(request.body, /"big": 9007199254740993[,}]/);
  return { headers: stringHeaders(request.headers), body };
}

function stringHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
}

/** The body with one byte changed (in the middle: inside the row's data). */
function oneByteChanged(body: Buffer): Buffer {
  const changed = Buffer.from(body);
  const middle = Math.floor(changed.length / 2);
  changed[middle] = changed[middle]! ^ 0x01;
  return changed;
}

/** The received request signed again by the daemon's signer at another time (a correctly signed, stale request). */
function signedAt(scheme: SignatureScheme, request: Received, secret: string, at: Date, signatureHeader = "X-Webhook-Signature"): Record<string, string> {
  const eventId = (JSON.parse(request.body.toString("utf8")) as { id: string }).id;
  const signature = sign(scheme, {
    body: request.body.toString("utf8"),
    eventId,
    deliveryId: request.headers["x-webhook-delivery-id"]!,
    timestamp: at,
    secrets: [secret],
    signatureHeader,
  });
  return { ...request.headers, ...signature };
}

const TEN_MINUTES_MS = 10 * 60 * 1000;
const verify = (headers: Record<string, string>, body: Buffer, secret: string, ...rest: string[]): Call => ({
  call: "verify",
  args: [headers, bytes(body), secret, ...rest],
});

/**
 * The cases every verification function must get right, with what it must answer: the request as
 * received, one byte changed, another secret and — for schemes with a signed timestamp — the same
 * request signed now (accepted) and ten minutes ago (refused as stale).
 */
function cases(scheme: SignatureScheme, request: Received, secret: string, otherSecret: string, signatureHeader?: string) {
  const rest = signatureHeader ? [signatureHeader] : [];
  const list: [what: string, call: Call, expected: boolean][] = [
    ["the request as received", verify(request.headers, request.body, secret, ...rest), true],
    ["the body with one byte changed", verify(request.headers, oneByteChanged(request.body), secret, ...rest), false],
    ["another secret", verify(request.headers, request.body, otherSecret, ...rest), false],
  ];
  if (scheme !== "hmac-prefixed") {
    const now = signedAt(scheme, request, secret, new Date(), signatureHeader);
    const stale = signedAt(scheme, request, secret, new Date(Date.now() - TEN_MINUTES_MS), signatureHeader);
    list.push(
      ["the request signed again now", verify(now, request.body, secret, ...rest), true],
      ["the request signed ten minutes ago", verify(stale, request.body, secret, ...rest), false],
    );
  }
  return list;
}

async function assertVerifies(name: string, list: ReturnType<typeof cases>): Promise<void> {
  const results = await runner.call(snippet(signatures, "signatures.md", name, name.startsWith("python") ? "python" : "js"), list.map(([, call]) => call));
  assert.deepEqual(
    Object.fromEntries(list.map(([what], index) => [what, results[index]])),
    Object.fromEntries(list.map(([what, , expected]) => [what, expected])),
    `docs/signatures.md, ${name}`,
  );
}

test("docs/signatures.md and docs/intake.md show no Node, Python or shell code that this file does not run", async () => {
  for (const [file, document] of [["signatures.md", signatures], ["intake.md", intake]] as const) {
    const unproven = document.unmarkedLanguages.filter((language) => ["js", "javascript", "ts", "python", "py", "sh", "bash"].includes(language));
    assert.deepEqual(unproven, [], `docs/${file}: every code block in these languages carries a <!-- snippet: … --> marker`);
  }
  assert.deepEqual(
    [...signatures.snippets.keys()].sort(),
    [
      "node hmac-hex", "node hmac-prefixed", "node hmac-timestamped", "node standard", "node standard standardwebhooks",
      "python hmac-hex", "python hmac-prefixed", "python hmac-timestamped", "python standard",
    ],
  );
  assert.deepEqual([...intake.snippets.keys()].sort(), ["node intake", "python intake", "shell intake"]);
});

describe("the reference lists what the code has, no more and no less", () => {
  test("docs/configuration.md: every environment variable the daemon reads", async () => {
    const read = new Set<string>();
    loadConfig(new Proxy({}, { get: (_, name) => (typeof name === "string" && read.add(name), undefined) }));
    const documented = tableNames(await section("configuration.md", "The daemon's environment"));
    assert.deepEqual([...documented].sort(), [...read].sort());
  });

  test("docs/configuration.md: every metric of GET /metrics", async () => {
    const port = (h.daemon.server.address() as AddressInfo).port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const exposed = [...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!);
    const documented = tableNames(await section("configuration.md", "`/healthz` and `/metrics`"))
      .filter((name) => name.startsWith("pg_webhooks_"))
      .map((name) => name.replace(/\{.*$/, ""));
    assert.deepEqual([...documented].sort(), [...exposed].sort());
  });

  test("docs/intake.md: every reason webhooks.intake_refusals counts, with the status it is answered with", async () => {
    const text = await section("intake.md", "Refusals");
    const documented = Object.fromEntries([...text.matchAll(/`([a-z_]+)` \((\d{3})\b/g)].map((match) => [match[1]!, Number(match[2])]));
    assert.deepEqual(documented, { ...REFUSAL_STATUS });
  });
});

describe("docs/signatures.md verifies real deliveries", () => {
  const otherStandardSecret = "whsec_" + Buffer.alloc(32, 7).toString("base64");

  test("standard: by hand in Node, with standardwebhooks, and in Python", async () => {
    const hook = await endpoint({ signature_scheme: "standard" });
    const request = await hook.send();
    assert.match(request.headers["webhook-signature"]!, /^v1,\S+$/, "one signature");
    const list = cases("standard", request, hook.secret, otherStandardSecret);
    for (const name of ["node standard", "node standard standardwebhooks", "python standard"]) await assertVerifies(name, list);
  });

  test("standard during a rotation: two signatures, and each function accepts the old secret and the new one", async () => {
    const hook = await endpoint({ signature_scheme: "standard" });
    const { rows } = await h.db.pool.query<{ secret: string }>("select webhooks.rotate_secret($1) as secret", [hook.id]);
    const rotated = rows[0]!.secret;
    const request = await hook.send();
    assert.match(request.headers["webhook-signature"]!, /^v1,\S+ v1,\S+$/, "one signature per live secret");
    const list: ReturnType<typeof cases> = [
      ["the new secret", verify(request.headers, request.body, rotated), true],
      ["the old secret", verify(request.headers, request.body, hook.secret), true],
      ["a third secret", verify(request.headers, request.body, otherStandardSecret), false],
      ["the body with one byte changed", verify(request.headers, oneByteChanged(request.body), hook.secret), false],
    ];
    for (const name of ["node standard", "node standard standardwebhooks", "python standard"]) await assertVerifies(name, list);
  });

  test("hmac-hex with its own signature_header and a non-ASCII secret (the key is its UTF-8 bytes)", async () => {
    const secret = "shared secret ✓ Zoë";
    const hook = await endpoint({ signature_scheme: "hmac-hex", signature_header: "X-Acme-Signature", secret });
    const request = await hook.send();
    assert.match(request.headers["x-acme-signature"]!, /^[0-9a-f]{64}$/);
    const list = cases("hmac-hex", request, secret, "shared secret ✓ Zoe", "X-Acme-Signature");
    for (const name of ["node hmac-hex", "python hmac-hex"]) await assertVerifies(name, list);
  });

  test("hmac-prefixed with a generated secret (the key is the whole whsec_… string) and the default header", async () => {
    const hook = await endpoint({ signature_scheme: "hmac-prefixed" });
    assert.match(hook.secret, /^whsec_/);
    const request = await hook.send();
    assert.match(request.headers["x-webhook-signature"]!, /^sha256=[0-9a-f]{64}$/);
    const list = cases("hmac-prefixed", request, hook.secret, hook.secret.slice("whsec_".length));
    for (const name of ["node hmac-prefixed", "python hmac-prefixed"]) await assertVerifies(name, list);
  });

  test("hmac-timestamped: timestamp, body and idempotency-key", async () => {
    const secret = "timestamped secret ✓";
    const hook = await endpoint({ signature_scheme: "hmac-timestamped", secret });
    const request = await hook.send();
    assert.equal(request.headers["idempotency-key"], request.headers["x-webhook-delivery-id"]);
    const list = cases("hmac-timestamped", request, secret, "timestamped secret");
    for (const name of ["node hmac-timestamped", "python hmac-timestamped"]) await assertVerifies(name, list);
  });
});

describe("docs/intake.md signs leads the real endpoint accepts", () => {
  let base: string;
  let integration: { id: string; signing_secret: string };

  h.before(async () => {
    base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
    const org = await createOrganization(h.db.pool, "Leads");
    const { rows } = await h.db.pool.query<{ id: string; signing_secret: string }>(
      "insert into webhooks.inbound_integrations (organization_id, name) values ($1, 'Landing page') returning id, signing_secret",
      [org],
    );
    integration = rows[0]!;
  });

  /** The lead's activity row once the worker has processed it, with its contact's phone. */
  const processed = (eventId: string) =>
    waitFor("the lead processed", async () => {
      const { rows } = await h.db.pool.query<{ phone: string }>(
        `select c.phone from webhooks.intake_activity a join contacts c on c.id = a.contact_id
          where a.event_id = $1 and a.outcome = 'processed'`,
        [eventId],
      );
      return rows[0];
    });

  test("Node: sendLead is answered 202, the lead is processed, and a wrong secret is answered 401", async () => {
    const code = snippet(intake, "intake.md", "node intake", "js");
    const lead = { customer_phone: "(555) 010-3040", first_name: "Grace", campaign: "spring" };
    const [accepted, refused] = (await runner.call(code, [
      { call: "sendLead", args: [base, integration.id, integration.signing_secret, lead] },
      { call: "sendLead", args: [base, integration.id, "not the signing secret", lead] },
    ])) as { status: number; body: { status?: string; event_id?: string; error?: string } }[];
    assert.equal(accepted!.status, 202, JSON.stringify(accepted!.body));
    assert.equal(accepted!.body.status, "accepted");
    assert.equal((await processed(accepted!.body.event_id!)).phone, "+15550103040");
    assert.deepEqual([refused!.status, refused!.body.error], [401, "invalid signature"]);
  });

  test("Python: send_lead is answered 202, the lead is processed, and a wrong secret is answered 401", async () => {
    const code = snippet(intake, "intake.md", "python intake", "python");
    const lead = { customer_phone: "+44 20 7946 0958", first_name: "Ada", campaign: "autumn" };
    const [accepted, refused] = (await runner.call(code, [
      { call: "send_lead", args: [base, integration.id, integration.signing_secret, lead] },
      { call: "send_lead", args: [base, integration.id, "not the signing secret", lead] },
    ])) as [number, { status?: string; event_id?: string; error?: string }][];
    assert.equal(accepted![0], 202, JSON.stringify(accepted![1]));
    assert.equal(accepted![1].status, "accepted");
    assert.equal((await processed(accepted![1].event_id!)).phone, "+442079460958");
    assert.deepEqual([refused![0], refused![1].error], [401, "invalid signature"]);
  });

  test("curl and openssl: the example is answered 202 and the lead is processed", async () => {
    const output = await runner.shell(snippet(intake, "intake.md", "shell intake", "sh"), {
      BASE: base,
      ID: integration.id,
      SECRET: integration.signing_secret,
    });
    assert.match(output, /^HTTP\/1\.1 202 Accepted\r?$/m, output);
    const answer = JSON.parse(output.slice(output.lastIndexOf("\n{") + 1)) as { status: string; event_id: string };
    assert.equal(answer.status, "accepted");
    assert.equal((await processed(answer.event_id)).phone, "+15550102030");
  });
});
