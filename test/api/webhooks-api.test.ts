import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createApiKey } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// The management API's webhooks (README "API and admin page"): every route, its 400/401/404
// answers, and tenant isolation through row-level security, against the daemon's real server.

const h = useHarness({ receiver: true, daemon: true, twoOrganizations: true });

let base = "";
let keyA = "";
let keyB = "";

h.before(async () => {
  base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  keyA = await createApiKey(h.db.pool, h.orgA, "A");
  keyB = await createApiKey(h.db.pool, h.orgB, "B");
});

interface Answer {
  status: number;
  body: Record<string, unknown> & { data?: Record<string, unknown>[] };
}

async function call(method: string, path: string, key: string | null, body?: unknown): Promise<Answer> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Answer["body"]) : {} };
}

const hookUrl = () => `${h.receiver.url.replace(/\/$/, "")}/api-hook`;

test("the README's curl creates a webhook and answers with it and its secret; name comes from description", async () => {
  const created = await call("POST", "/api/v1/webhooks", keyA, {
    url: hookUrl(),
    description: "Production webhook endpoint",
    events: ["contact.created", "deal.stage.changed"],
    max_retries: 5,
    timeout: 30,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.match(String(created.body.id), /^[0-9a-f-]{36}$/);
  assert.match(String(created.body.secret), /^whsec_/);
  assert.equal(created.body.name, "Production webhook endpoint");
  assert.deepEqual(created.body.events, ["contact.created", "deal.stage.changed"]);
  assert.equal(created.body.is_active, true);
  assert.equal(created.body.max_retries, 5);
  assert.equal(created.body.timeout, 30);
  const { rows } = await h.db.pool.query("select organization_id, timeout_seconds from webhooks.webhook_configurations where id = $1", [created.body.id]);
  assert.deepEqual(rows, [{ organization_id: h.orgA, timeout_seconds: 30 }], "stored for the key's organization");

  const read = await call("GET", `/api/v1/webhooks/${String(created.body.id)}`, keyA);
  assert.equal(read.status, 200);
  assert.equal(read.body.secret, undefined, "the secret is shown on create and rotate only");
});

test("get, patch, test, rotate and delete one webhook; the test event reaches the endpoint", async () => {
  const { body: hook } = await call("POST", "/api/v1/webhooks", keyA, { url: hookUrl(), events: ["*"], headers: { authorization: "Bearer s3cret" } });
  const id = String(hook.id);
  assert.equal(hook.name, new URL(hookUrl()).host, "no name or description: the URL's host");
  assert.deepEqual(hook.headers, { authorization: "[redacted]" }, "static header values are never shown");

  const patched = await call("PATCH", `/api/v1/webhooks/${id}`, keyA, { max_retries: 7, paused: true, name: "renamed" });
  assert.equal(patched.status, 200);
  assert.equal(patched.body.max_retries, 7);
  assert.equal(patched.body.paused, true);
  assert.equal(patched.body.name, "renamed");
  assert.equal(patched.body.ordering, "none");
  assert.equal((await call("PATCH", `/api/v1/webhooks/${id}`, keyA, { ordering: "fifo" })).body.ordering, "fifo");
  await call("PATCH", `/api/v1/webhooks/${id}`, keyA, { paused: false });

  const tested = await call("POST", `/api/v1/webhooks/${id}/test`, keyA);
  assert.equal(tested.status, 202);
  assert.match(String(tested.body.event_id), /^evt_[0-9a-f]{32}$/);
  const request = await waitFor("the test event", () =>
    h.receiver.requests.find((r) => r.headers["x-webhook-event"] === "webhook.test" && JSON.parse(r.body).id === tested.body.event_id));
  assert.equal(request.headers.authorization, "Bearer s3cret");

  const rotated = await call("POST", `/api/v1/webhooks/${id}/rotate-secret`, keyA);
  assert.equal(rotated.status, 200);
  assert.match(String(rotated.body.secret), /^whsec_/);
  assert.notEqual(rotated.body.secret, hook.secret);

  assert.equal((await call("DELETE", `/api/v1/webhooks/${id}`, keyA)).status, 204);
  assert.equal((await call("GET", `/api/v1/webhooks/${id}`, keyA)).status, 404);
  assert.equal((await call("DELETE", `/api/v1/webhooks/${id}`, keyA)).status, 404);
});

test("a filter is set as a JSON object and cleared with null", async () => {
  const { body: hook } = await call("POST", "/api/v1/webhooks", keyA, { url: hookUrl(), events: ["*"], filter: { data: { status: "won" } } });
  assert.deepEqual(hook.filter, { data: { status: "won" } });
  const cleared = await call("PATCH", `/api/v1/webhooks/${String(hook.id)}`, keyA, { filter: null });
  assert.equal(cleared.status, 200, JSON.stringify(cleared.body));
  assert.equal(cleared.body.filter, null);
  const { rows } = await h.db.pool.query("select filter from webhooks.webhook_configurations where id = $1", [hook.id]);
  assert.deepEqual(rows, [{ filter: null }], "no filter: SQL null, not a JSON null");
  await call("DELETE", `/api/v1/webhooks/${String(hook.id)}`, keyA);
});

test("a bad value is a 400 naming the field, from the schema or from the database's checks, and changes nothing", async () => {
  const { body: hook } = await call("POST", "/api/v1/webhooks", keyA, { url: hookUrl(), events: ["*"] });
  const cases: [unknown, string][] = [
    [{ max_retries: 99 }, "max_retries"],
    [{ timeout: 0 }, "timeout"],
    [{ events: [] }, "events"],
    [{ events: ["no.such.event"] }, "events"],
    [{ url: "ftp://example.com/hook" }, "url"],
    [{ signature_scheme: "md5" }, "signature_scheme"],
    [{ ordering: "lifo" }, "ordering"],
    [{ colour: "blue" }, ""],
  ];
  for (const [change, field] of cases) {
    const answer = await call("PATCH", `/api/v1/webhooks/${String(hook.id)}`, keyA, change);
    assert.equal(answer.status, 400, `${JSON.stringify(change)}: ${JSON.stringify(answer.body)}`);
    assert.equal(typeof answer.body.error, "string");
    if (field) assert.equal(answer.body.field, field, `${JSON.stringify(change)}: ${JSON.stringify(answer.body)}`);
  }
  const after = await call("GET", `/api/v1/webhooks/${String(hook.id)}`, keyA);
  const shown: Record<string, unknown> = { ...hook, updated_at: null };
  delete shown.secret;
  assert.deepEqual({ ...after.body, updated_at: null }, shown, "nothing changed");
  assert.equal((await call("POST", "/api/v1/webhooks", keyA, { events: ["*"] })).body.field, "url", "a required field missing");
  assert.equal((await call("GET", "/api/v1/webhooks/not-a-uuid", keyA)).status, 400);
});

test("no key, an unknown key or a revoked key is a 401; another organization's webhook is a 404 to every route", async () => {
  assert.equal((await call("GET", "/api/v1/webhooks", null)).status, 401);
  assert.match(String((await call("GET", "/api/v1/webhooks", null)).body.error), /Authorization: Bearer/);
  assert.equal((await call("GET", "/api/v1/webhooks", `pgwh_${"0".repeat(64)}`)).status, 401);
  const revoked = await createApiKey(h.db.pool, h.orgA, "soon revoked");
  assert.equal((await call("GET", "/api/v1/webhooks", revoked)).status, 200);
  await h.db.pool.query("select webhooks.revoke_api_key(id) from webhooks.api_keys where name = 'soon revoked'");
  assert.equal((await call("GET", "/api/v1/webhooks", revoked)).status, 401);

  const { body: theirs } = await call("POST", "/api/v1/webhooks", keyB, { url: hookUrl(), events: ["*"] });
  const id = String(theirs.id);
  for (const [method, path, body] of [
    ["GET", `/api/v1/webhooks/${id}`],
    ["PATCH", `/api/v1/webhooks/${id}`, { max_retries: 1 }],
    ["DELETE", `/api/v1/webhooks/${id}`],
    ["POST", `/api/v1/webhooks/${id}/test`],
    ["POST", `/api/v1/webhooks/${id}/rotate-secret`],
  ] as [string, string, unknown?][]) {
    const answer = await call(method, path, keyA, body);
    assert.equal(answer.status, 404, `${method} ${path}: ${JSON.stringify(answer.body)}`);
  }
  const listed = await call("GET", "/api/v1/webhooks?limit=100", keyA);
  assert.ok(!listed.body.data!.some((hook) => hook.id === id), "not listed either");
  const { rows } = await h.db.pool.query("select max_retries from webhooks.webhook_configurations where id = $1", [id]);
  assert.deepEqual(rows, [{ max_retries: 5 }], "B's webhook is untouched");
});

test("the list pages by cursor, oldest first, and a webhook created meanwhile neither repeats nor skips a row", async () => {
  const { rows: [org] } = await h.db.pool.query<{ id: string }>("insert into organizations (name) values ('paging') returning id");
  const key = await createApiKey(h.db.pool, org!.id, "paging");
  const made: string[] = [];
  for (let i = 0; i < 5; i++) made.push(String((await call("POST", "/api/v1/webhooks", key, { url: hookUrl(), events: ["*"], name: `p${i}` })).body.id));
  const seen: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 10; page++) {
    const answer: Answer = await call("GET", `/api/v1/webhooks?limit=2${cursor ? `&cursor=${cursor}` : ""}`, key);
    assert.equal(answer.status, 200);
    seen.push(...answer.body.data!.map((hook) => String(hook.id)));
    if (page === 0) made.push(String((await call("POST", "/api/v1/webhooks", key, { url: hookUrl(), events: ["*"], name: "late" })).body.id));
    cursor = answer.body.next_cursor as string | null;
    if (!cursor) break;
  }
  assert.deepEqual(seen, made, "every webhook once, in order, the late one last");
  assert.equal((await call("GET", "/api/v1/webhooks?cursor=bm9wZQ", key)).status, 400);
});

test("event types are listed; the OpenAPI document, generated from the schemas, names every route, and /docs is served from the daemon", async () => {
  const types = await call("GET", "/api/v1/event-types", keyA);
  assert.ok(types.body.data!.some((type) => type.name === "contact.created"));
  const document = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
  assert.match(document.openapi, /^3\./);
  assert.deepEqual(
    Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`)).sort(),
    [
      "DELETE /api/v1/webhooks/{id}", "GET /api/v1/deliveries/{id}", "GET /api/v1/event-types", "GET /api/v1/webhooks",
      "GET /api/v1/webhooks/deliveries", "GET /api/v1/webhooks/{id}", "GET /api/v1/webhooks/{id}/deliveries",
      "PATCH /api/v1/webhooks/{id}", "POST /api/v1/deliveries/{id}/replay", "POST /api/v1/webhooks",
      "POST /api/v1/webhooks/{id}/recover", "POST /api/v1/webhooks/{id}/rotate-secret", "POST /api/v1/webhooks/{id}/test",
    ],
  );
  const docs = await fetch(`${base}/docs/`);
  assert.equal(docs.status, 200);
  const html = await docs.text();
  assert.match(html, /swagger/i);
  assert.doesNotMatch(html, /https?:\/\/(?!127\.0\.0\.1)[a-z0-9.-]+\/[^"']*\.(js|css)/i, "no asset from another host");
});
