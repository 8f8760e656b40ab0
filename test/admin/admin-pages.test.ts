import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createApiKey } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// The admin page over plain HTTP (README "API and admin page"): sessions, CSRF, tenant isolation,
// escaping, and every action a form takes — what a browser sends, without one (the browser test
// is admin-browser.test.ts).

const h = useHarness({ receiver: true, daemon: true, twoOrganizations: true });

let base = "";
let keyA = "";
let keyB = "";

h.before(async () => {
  base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  keyA = await createApiKey(h.db.pool, h.orgA, "A");
  keyB = await createApiKey(h.db.pool, h.orgB, "B");
});

interface Page {
  status: number;
  location: string | null;
  text: string;
  headers: Headers;
}

/** A signed-in browser's requests: its cookies (by name; every path), and its pages' CSRF token. */
class Visitor {
  cookies = new Map<string, string>();
  csrf = "";

  get cookie(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
  }

  private keep(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";");
      const name = pair!.slice(0, pair!.indexOf("="));
      const value = pair!.slice(pair!.indexOf("=") + 1);
      const expired = attributes.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a)) || value === "";
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async get(path: string): Promise<Page> {
    const response = await fetch(`${base}${path}`, { headers: { cookie: this.cookie }, redirect: "manual" });
    this.keep(response);
    const page = { status: response.status, location: response.headers.get("location"), text: await response.text(), headers: response.headers };
    this.csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? this.csrf;
    return page;
  }

  async post(path: string, fields: Record<string, string | string[]>, options: { csrf?: string | null; origin?: string } = {}): Promise<Page> {
    const body = new URLSearchParams();
    const csrf = options.csrf === undefined ? this.csrf : options.csrf;
    if (csrf !== null) body.append("_csrf", csrf);
    for (const [name, value] of Object.entries(fields)) for (const one of [value].flat()) body.append(name, one);
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { cookie: this.cookie, "content-type": "application/x-www-form-urlencoded", ...(options.origin ? { origin: options.origin } : {}) },
      body,
      redirect: "manual",
    });
    this.keep(response);
    return { status: response.status, location: response.headers.get("location"), text: await response.text(), headers: response.headers };
  }

  async signIn(key: string): Promise<Page> {
    const answer = await this.post("/admin/sign-in", { api_key: key }, { csrf: null });
    await this.get("/admin");
    return answer;
  }
}

async function signedIn(key: string): Promise<Visitor> {
  const visitor = new Visitor();
  const answer = await visitor.signIn(key);
  assert.equal(answer.status, 303, answer.text);
  return visitor;
}

const hookUrl = (path = "admin-hook") => `${h.receiver.url.replace(/\/hook$/, "")}/${path}`;

async function webhookOf(organizationId: string, name: string) {
  const { rows } = await h.db.pool.query<{ id: string; is_active: boolean; paused: boolean; secret: string; events: string[]; max_retries: number; headers: Record<string, string> }>(
    "select id, is_active, paused, secret, events, max_retries, headers from webhooks.webhook_configurations where organization_id = $1 and name = $2", [organizationId, name]);
  return rows[0];
}

test("signing in: a wrong key is a 401 with no cookie; a key opens a session whose cookie is HttpOnly, SameSite=Strict, holds no key; sign-out ends it", async () => {
  assert.equal((await new Visitor().get("/admin")).location, "/admin/sign-in", "no session: the sign-in page");
  const wrong = await new Visitor().post("/admin/sign-in", { api_key: `pgwh_${"0".repeat(64)}` }, { csrf: null });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get("set-cookie"), null);
  assert.match(wrong.text, /not an API key in use/);
  assert.equal((await new Visitor().post("/admin/sign-in", { api_key: "<script>" }, { csrf: null })).status, 401);

  const visitor = new Visitor();
  const answer = await visitor.post("/admin/sign-in", { api_key: keyA }, { csrf: null });
  assert.equal(answer.status, 303);
  const cookie = answer.headers.get("set-cookie")!;
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.match(cookie, /Path=\/admin/);
  assert.ok(!cookie.includes(keyA), "the key is not the cookie");
  const { rows } = await h.db.pool.query("select count(*)::int as n from webhooks.admin_sessions");
  assert.ok(rows[0].n >= 1);
  assert.equal((await visitor.get("/admin")).status, 200);

  assert.equal((await visitor.post("/admin/sign-out", {})).location, "/admin/sign-in");
  assert.equal((await visitor.get("/admin")).status, 303, "the old cookie no longer opens a page");
});

test("a key keeps at most 20 sessions (signing in in a loop cannot grow the table); an expired session is refused", async () => {
  const key = await createApiKey(h.db.pool, h.orgA, "loop");
  const visitors: Visitor[] = [];
  for (let i = 0; i < 25; i++) visitors.push(await signedIn(key));
  const { rows } = await h.db.pool.query(
    "select count(*)::int as n from webhooks.admin_sessions s join webhooks.api_keys k on k.id = s.api_key_id where k.name = 'loop'");
  assert.equal(rows[0].n, 20);
  assert.equal((await visitors[0]!.get("/admin")).status, 303, "the oldest session was closed");
  assert.equal((await visitors[24]!.get("/admin")).status, 200);
  await h.db.pool.query(
    "update webhooks.admin_sessions set expires_at = now() - interval '1 second' where api_key_id = (select id from webhooks.api_keys where name = 'loop')");
  assert.equal((await visitors[24]!.get("/admin")).status, 303, "expired");
});

test("revoking the key ends its sessions at once", async () => {
  const key = await createApiKey(h.db.pool, h.orgA, "revoked soon");
  const visitor = await signedIn(key);
  assert.equal((await visitor.get("/admin/webhooks")).status, 200);
  await h.db.pool.query("select webhooks.revoke_api_key(id) from webhooks.api_keys where name = 'revoked soon'");
  assert.equal((await visitor.get("/admin/webhooks")).location, "/admin/sign-in");
});

test("a form without the session's CSRF token, or sent from another site, is refused with 403 and changes nothing", async () => {
  const visitor = await signedIn(keyA);
  await visitor.get("/admin/webhooks/new");
  const fields = { url: hookUrl(), name: "csrf-target", events: "contact.created" };
  assert.equal((await visitor.post("/admin/webhooks", fields, { csrf: null })).status, 403);
  assert.equal((await visitor.post("/admin/webhooks", fields, { csrf: "forged" })).status, 403);
  const other = await signedIn(keyB);
  assert.equal((await visitor.post("/admin/webhooks", fields, { csrf: other.csrf })).status, 403, "another session's token");
  assert.equal((await visitor.post("/admin/webhooks", fields, { origin: "https://evil.example" })).status, 403);
  assert.equal((await new Visitor().post("/admin/sign-in", { api_key: keyA }, { csrf: null, origin: "https://evil.example" })).status, 403);
  assert.equal(await webhookOf(h.orgA, "csrf-target"), undefined);
  assert.match((await visitor.post("/admin/webhooks", fields)).location ?? "", /\/secret\?created=1$/, "with the token it is created");
});

test("create, edit, deactivate, pause, rotate and delete through the forms", async () => {
  const visitor = await signedIn(keyA);
  await visitor.get("/admin/webhooks/new");
  const created = await visitor.post("/admin/webhooks", {
    url: hookUrl(), name: "forms", events: ["contact.created", "deal.created"], is_active: ["false", "true"], paused: "false",
    timeout: "12", max_retries: "", headers: "Authorization: Bearer s3cret\nX-Team: crm", filter: "",
  });
  const hook = (await webhookOf(h.orgA, "forms"))!;
  assert.equal(created.location, `/admin/webhooks/${hook.id}/secret?created=1`, created.text);
  const shown = await visitor.get(created.location!);
  assert.ok(shown.text.includes(hook.secret), "the secret is shown on creation");
  const again = await visitor.get(created.location!);
  assert.ok(!again.text.includes(hook.secret), "once: a reload does not show it again");
  assert.match(again.text, /shown once/);
  assert.equal((await h.db.pool.query("select 1 from webhooks.webhook_configurations where name = 'forms'")).rowCount, 1, "nor make another");
  assert.deepEqual(hook.events, ["contact.created", "deal.created"]);
  assert.deepEqual(hook.headers, { Authorization: "Bearer s3cret", "X-Team": "crm" });

  const edit = await visitor.get(`/admin/webhooks/${hook.id}`);
  assert.ok(!edit.text.includes("s3cret"), "a static header's value is never shown");
  assert.ok(!edit.text.includes(hook.secret), "nor the secret");
  const saved = await visitor.post(`/admin/webhooks/${hook.id}`, {
    url: hookUrl(), name: "forms", events: "*", all_events: ["false", "true"], is_active: "false", paused: "false",
    timeout: "12", max_retries: "3", headers: "", filter: "{\"data\": {\"status\": \"won\"}}",
  });
  assert.equal(saved.location, "/admin/webhooks?notice=saved", saved.text);
  const after = (await webhookOf(h.orgA, "forms"))!;
  assert.deepEqual([after.events, after.max_retries, after.headers], [["*"], 3, { Authorization: "Bearer s3cret", "X-Team": "crm" }], "blank headers keep them");

  assert.equal((await visitor.post(`/admin/webhooks/${hook.id}/active`, { is_active: "false" })).status, 303);
  assert.equal((await webhookOf(h.orgA, "forms"))!.is_active, false);
  await visitor.post(`/admin/webhooks/${hook.id}/active`, { is_active: "true" });
  await visitor.post(`/admin/webhooks/${hook.id}/paused`, { paused: "true" });
  assert.deepEqual([(await webhookOf(h.orgA, "forms"))!.is_active, (await webhookOf(h.orgA, "forms"))!.paused], [true, true]);

  const rotated = await visitor.post(`/admin/webhooks/${hook.id}/rotate-secret`, {});
  const secret = (await webhookOf(h.orgA, "forms"))!.secret;
  assert.notEqual(secret, hook.secret);
  assert.ok((await visitor.get(rotated.location!)).text.includes(secret), "the new secret is shown once");
  assert.ok(!(await visitor.get(rotated.location!)).text.includes(secret), "a reload neither shows it nor rotates again");
  assert.equal((await webhookOf(h.orgA, "forms"))!.secret, secret);

  assert.equal((await visitor.post(`/admin/webhooks/${hook.id}/delete`, {})).location, "/admin/webhooks?notice=deleted");
  assert.equal(await webhookOf(h.orgA, "forms"), undefined);
});

test("a value the rules refuse comes back as the form, 400, naming the field, and nothing is written", async () => {
  const visitor = await signedIn(keyA);
  await visitor.get("/admin/webhooks/new");
  const cases: [Record<string, string>, RegExp][] = [
    [{ url: "ftp://example.com/x", events: "contact.created" }, /url/],
    [{ url: hookUrl(), events: "contact.created", timeout: "600" }, /timeout/],
    [{ url: hookUrl(), events: "contact.created", max_retries: "many" }, /max_retries/],
    [{ url: hookUrl() }, /events/],
    [{ url: hookUrl(), events: "contact.created", filter: "[1, 2]" }, /filter/],
    [{ url: hookUrl(), events: "contact.created", headers: "no colon here" }, /headers/],
  ];
  for (const [fields, field] of cases) {
    const answer = await visitor.post("/admin/webhooks", { name: "refused", ...fields });
    assert.equal(answer.status, 400, `${JSON.stringify(fields)}: ${answer.status}`);
    assert.match(/id="form-error">([^<]*)</.exec(answer.text)?.[1] ?? "", field, JSON.stringify(fields));
    assert.match(answer.text, /aria-invalid="true"/, "the field is marked");
  }
  assert.equal(await webhookOf(h.orgA, "refused"), undefined);
});

test("another organization's webhook or delivery is a 404 page to every page and action, and stays as it was", async () => {
  const { rows } = await h.db.pool.query<{ id: string }>(
    "insert into webhooks.webhook_configurations (organization_id, name, url, events) values ($1, 'theirs', $2, '{*}') returning id", [h.orgB, hookUrl()]);
  const theirs = rows[0]!.id;
  const eventId = (await h.db.pool.query<{ id: string }>("select webhooks.send_test($1) as id", [theirs])).rows[0]!.id;
  const delivery = await waitFor("B's delivery", async () =>
    (await h.db.pool.query<{ id: string }>("select id from webhooks.deliveries where webhook_id = $1", [theirs])).rows[0]?.id);
  assert.ok(eventId);

  const visitor = await signedIn(keyA);
  for (const path of [`/admin/webhooks/${theirs}`, `/admin/deliveries/${delivery}`]) {
    assert.equal((await visitor.get(path)).status, 404, path);
  }
  for (const path of ["", "/active", "/paused", "/test", "/rotate-secret", "/delete", "/recover"]) {
    const answer = await visitor.post(`/admin/webhooks/${theirs}${path}`, { url: hookUrl(), events: "*", is_active: "false", paused: "true", since: "2026-01-01T00:00" });
    assert.equal(answer.status, 404, `POST /admin/webhooks/:id${path}: ${answer.status}`);
  }
  assert.equal((await visitor.post(`/admin/deliveries/${delivery}/replay`, {})).status, 404);
  const list = await visitor.get("/admin/deliveries");
  assert.ok(!list.text.includes(delivery), "not in A's log");
  assert.ok(!(await visitor.get("/admin/webhooks")).text.includes("theirs"));
  const { rows: still } = await h.db.pool.query("select is_active, paused from webhooks.webhook_configurations where id = $1", [theirs]);
  assert.deepEqual(still, [{ is_active: true, paused: false }]);
});

test("a tenant's text is shown as text: a webhook named <script> and a response body with markup are escaped", async () => {
  const receiver = await h.startReceiver(() => ({ status: 200, body: "<img src=x onerror=alert(1)>" }));
  const visitor = await signedIn(keyA);
  await visitor.get("/admin/webhooks/new");
  const created = await visitor.post("/admin/webhooks", { url: receiver.url, name: "<script>alert(1)</script>", events: "contact.created" });
  assert.equal(created.status, 303, created.text);
  const list = await visitor.get("/admin/webhooks");
  assert.ok(list.text.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert.ok(!list.text.includes("<script>alert"), "never as markup");
  const hook = (await webhookOf(h.orgA, "<script>alert(1)</script>"))!;
  await visitor.post(`/admin/webhooks/${hook.id}/test`, {});
  const delivery = await waitFor("the attempt", async () =>
    (await h.db.pool.query<{ delivery_id: string }>("select delivery_id from webhooks.webhook_logs where webhook_id = $1", [hook.id])).rows[0]?.delivery_id);
  const page = await visitor.get(`/admin/deliveries/${delivery}`);
  assert.ok(page.text.includes("&lt;img src=x onerror=alert(1)&gt;"), "the response body, escaped");
  assert.ok(!page.text.includes("<img src=x"));
  assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
  assert.equal(page.headers.get("cache-control"), "no-store");
});

test("the log filters by endpoint, status and event type; a delivery's page shows each attempt; replay and recovery queue it again", async () => {
  let fail = true;
  const receiver = await h.startReceiver(() => (fail ? { status: 500, body: "down" } : { status: 200, body: "ok" }));
  const visitor = await signedIn(keyA);
  await visitor.get("/admin/webhooks/new");
  await visitor.post("/admin/webhooks", { url: receiver.url, name: "flaky", events: "contact.created", max_retries: "0" });
  const hook = (await webhookOf(h.orgA, "flaky"))!;
  await visitor.post(`/admin/webhooks/${hook.id}/test`, {});
  const dead = await waitFor("the dead delivery", async () =>
    (await h.db.pool.query<{ id: string }>("select id from webhooks.deliveries where webhook_id = $1 and state = 'dead'", [hook.id])).rows[0]?.id);

  const filtered = await visitor.get(`/admin/deliveries?webhook_id=${hook.id}&status=dead&event_type=webhook.test`);
  assert.ok(filtered.text.includes(dead), "found by its filters");
  for (const query of [`webhook_id=${hook.id}&status=succeeded`, `webhook_id=${hook.id}&event_type=contact.created`]) {
    assert.ok(!(await visitor.get(`/admin/deliveries?${query}`)).text.includes(dead), query);
  }
  assert.equal((await visitor.get("/admin/deliveries?status=lost")).status, 400);
  assert.equal((await visitor.get("/admin/deliveries?webhook_id=nope")).status, 400);

  const detail = await visitor.get(`/admin/deliveries/${dead}`);
  assert.match(detail.text, /Attempt 1/);
  assert.match(detail.text, /webhook\.test/, "the request body");
  assert.match(detail.text, /down/, "the response body");

  fail = false;
  assert.equal((await visitor.post(`/admin/deliveries/${dead}/replay`, {})).location, `/admin/deliveries/${dead}?notice=queued`);
  await waitFor("the replay succeeds", async () =>
    (await h.db.pool.query("select 1 from webhooks.deliveries where id = $1 and state = 'succeeded'", [dead])).rowCount);

  fail = true;
  await visitor.post(`/admin/webhooks/${hook.id}/test`, {});
  await waitFor("a second dead delivery", async () =>
    (await h.db.pool.query("select 1 from webhooks.deliveries where webhook_id = $1 and state = 'dead'", [hook.id])).rowCount);
  fail = false;
  const since = new Date(Date.now() - 3600_000).toISOString().slice(0, 19);
  const recovered = await visitor.post(`/admin/webhooks/${hook.id}/recover`, { since, until: "" });
  assert.equal(recovered.location, `/admin/deliveries?webhook_id=${hook.id}&notice=recovered`);
  assert.match((await visitor.get(recovered.location!)).text, /failed and dead deliveries of the window are queued again/);
  await waitFor("every delivery succeeded", async () =>
    (await h.db.pool.query("select 1 from webhooks.deliveries where webhook_id = $1 and state <> 'succeeded'", [hook.id])).rowCount === 0);
  assert.equal((await visitor.post(`/admin/webhooks/${hook.id}/recover`, { since: "yesterday" })).status, 400);
});

test("the dashboard lists each endpoint's success rate and latency, and recent failures link to their delivery", async () => {
  const receiver = await h.startReceiver(() => ({ status: 503, body: "no" }));
  const visitor = await signedIn(keyB);
  await visitor.get("/admin/webhooks/new");
  await visitor.post("/admin/webhooks", { url: receiver.url, name: "always down", events: "contact.created", max_retries: "0" });
  const hook = (await webhookOf(h.orgB, "always down"))!;
  await visitor.post(`/admin/webhooks/${hook.id}/test`, {});
  const delivery = await waitFor("the failed attempt", async () =>
    (await h.db.pool.query<{ delivery_id: string }>("select delivery_id from webhooks.webhook_logs where webhook_id = $1", [hook.id])).rows[0]?.delivery_id);
  const dashboard = await visitor.get("/admin");
  assert.match(dashboard.text, /always down[\s\S]*?>0\.0 %</, "its success rate");
  assert.match(dashboard.text, new RegExp(`href="/admin/deliveries/${delivery}"`), "the failure links to its delivery");
  assert.match(dashboard.text, /503/);
});

test("assets are served by the daemon; pages load nothing from elsewhere", async () => {
  const visitor = await signedIn(keyA);
  const dashboard = await visitor.get("/admin");
  const references = [...dashboard.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  assert.ok(references.length > 0);
  assert.deepEqual(references.filter((ref) => !ref.startsWith("/")), [], "no URL of another host");
  for (const asset of ["/admin/assets/admin.css", "/admin/assets/admin.js"]) {
    const response = await fetch(`${base}${asset}`);
    assert.equal(response.status, 200, asset);
    assert.ok((await response.text()).length > 100);
  }
  assert.equal((await fetch(`${base}/admin/assets/../../package.json`)).status, 404);
});

test("behind a proxy: a same-origin form passes when the proxy rewrote Host; a browser's cross-site flag is refused", async () => {
  const visitor = await signedIn(keyA);
  await visitor.get("/admin/webhooks/new");
  const fields = { url: hookUrl(), name: "via-proxy", events: "contact.created" };
  const post = (headers: Record<string, string>) =>
    fetch(`${base}/admin/webhooks`, {
      method: "POST", redirect: "manual",
      headers: { cookie: visitor.cookie, "content-type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams({ _csrf: visitor.csrf, ...fields }),
    });
  assert.equal((await post({ origin: "https://admin.example.com", "sec-fetch-site": "cross-site" })).status, 403);
  assert.equal((await post({ origin: "https://evil.example", "x-forwarded-host": "admin.example.com" })).status, 403);
  assert.equal(await webhookOf(h.orgA, "via-proxy"), undefined);
  assert.equal((await post({ origin: "https://admin.example.com", "x-forwarded-host": "admin.example.com" })).status, 303);
  assert.equal((await post({ origin: "https://admin.example.com", "sec-fetch-site": "same-origin" })).status, 303);
});

test("hostile requests get clear 4xx pages and change nothing: a JSON body, a filter nested thousands deep, a notice naming Object's prototype", async () => {
  const visitor = await signedIn(keyA);
  await visitor.get("/admin/webhooks/new");
  const json = await fetch(`${base}/admin/webhooks`, {
    method: "POST", redirect: "manual",
    headers: { cookie: visitor.cookie, "content-type": "application/json" },
    body: JSON.stringify({ _csrf: visitor.csrf, name: 123, url: hookUrl(), events: "contact.created" }),
  });
  assert.equal(json.status, 415);
  const deep = "[".repeat(3000) + "]".repeat(3000);
  for (const filter of [`{"a": ${deep}}`, `{"a": "${"x".repeat(5000)}"}`]) {
    const answer = await visitor.post("/admin/webhooks", { url: hookUrl(), name: "deep", events: "contact.created", filter });
    assert.equal(answer.status, 400, answer.text.slice(0, 200));
    assert.match(/id="form-error">([^<]*)</.exec(answer.text)?.[1] ?? "", /^filter/);
  }
  let nested: unknown = {};
  for (let i = 0; i < 3000; i++) nested = { a: nested };
  const api = await fetch(`${base}/api/v1/webhooks`, {
    method: "POST",
    headers: { authorization: `Bearer ${keyA}`, "content-type": "application/json" },
    body: JSON.stringify({ url: hookUrl(), events: ["*"], name: "deep", filter: nested }),
  });
  assert.equal(api.status, 400);
  assert.equal(((await api.json()) as { field: string }).field, "filter");
  assert.equal(await webhookOf(h.orgA, "deep"), undefined);
  for (const notice of ["constructor", "__proto__", "toString"]) {
    const page = await visitor.get(`/admin/webhooks?notice=${notice}`);
    assert.equal(page.status, 200);
    assert.ok(!page.text.includes("native code") && !page.text.includes("[object") && !page.text.includes(`class="notice"`), notice);
  }
});

test("saving the edit form keeps what it does not show or did not change: a webhook.test subscription, a deactivation made meanwhile", async () => {
  const visitor = await signedIn(keyA);
  const { rows } = await h.db.pool.query<{ id: string }>(
    "insert into webhooks.webhook_configurations (organization_id, name, url, events) values ($1, 'kept', $2, '{webhook.test,contact.created}') returning id",
    [h.orgA, hookUrl()]);
  const id = rows[0]!.id;
  const edit = await visitor.get(`/admin/webhooks/${id}`);
  // The form as the browser would send it unchanged: every named input's value (checked boxes only).
  const fields = new URLSearchParams();
  for (const match of edit.text.matchAll(/<input([^>]*)>/g)) {
    const attributes = match[1]!;
    const name = /name="([^"]+)"/.exec(attributes)?.[1];
    const type = /type="([^"]+)"/.exec(attributes)?.[1];
    if (!name || name === "_csrf" || ((type === "checkbox") && !attributes.includes(" checked"))) continue;
    fields.append(name, /value="([^"]*)"/.exec(attributes)?.[1] ?? "");
  }
  await h.db.pool.query("update webhooks.webhook_configurations set is_active = false where id = $1", [id]);
  const body: Record<string, string[]> = {};
  for (const [name, value] of fields) body[name] = [...(body[name] ?? []), value];
  const saved = await visitor.post(`/admin/webhooks/${id}`, { ...body, name: "kept and renamed" });
  assert.equal(saved.status, 303, saved.text.slice(0, 300));
  const { rows: after } = await h.db.pool.query("select name, events, is_active from webhooks.webhook_configurations where id = $1", [id]);
  assert.deepEqual(after, [{ name: "kept and renamed", events: ["contact.created", "webhook.test"], is_active: false }]);
});

test("another organization's webhook as a filter or behind an invalid form is a 404 too", async () => {
  const { rows } = await h.db.pool.query<{ id: string }>(
    "insert into webhooks.webhook_configurations (organization_id, name, url, events) values ($1, 'theirs too', $2, '{*}') returning id", [h.orgB, hookUrl()]);
  const visitor = await signedIn(keyA);
  await visitor.get("/admin");
  assert.equal((await visitor.get(`/admin/deliveries?webhook_id=${rows[0]!.id}`)).status, 404);
  assert.equal((await visitor.post(`/admin/webhooks/${rows[0]!.id}`, { url: "ftp://x", events: "*" })).status, 404);
});
