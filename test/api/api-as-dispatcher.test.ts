import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createApiKey } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";

// A daemon logged in as a member of webhooks_dispatcher (no superuser) serves the API as
// webhooks_app of each key's organization (sql/000018 lets it take that role, without its
// privileges).

const h = useHarness({ dispatcher: true, daemon: { as: "dispatcher" }, twoOrganizations: true });

test("the API works for a daemon that is not a superuser, and still keeps organizations apart", async () => {
  const base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  const key = async (org: string) => await createApiKey(h.db.pool, org, "k");
  const [keyA, keyB] = [await key(h.orgA), await key(h.orgB)];
  const post = (k: string) =>
    fetch(`${base}/api/v1/webhooks`, {
      method: "POST",
      headers: { authorization: `Bearer ${k}`, "content-type": "application/json" },
      body: JSON.stringify({ url: "https://example.com/hook", events: ["contact.created"] }),
    });
  const created = await post(keyB);
  assert.equal(created.status, 201, await created.clone().text());
  const { id } = (await created.json()) as { id: string };
  const theirs = await fetch(`${base}/api/v1/webhooks/${id}`, { headers: { authorization: `Bearer ${keyA}` } });
  assert.equal(theirs.status, 404);
  const { rows } = await h.db.pool.query<{ inherits: boolean }>(
    "select pg_has_role('webhooks_dispatcher', 'webhooks_app', 'usage') as inherits",
  );
  assert.equal(rows[0]!.inherits, false, "the dispatcher does not inherit the application's privileges");
});

test("the admin page's sessions work for a daemon that is not a superuser", async () => {
  const base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  const key = await createApiKey(h.db.pool, h.orgA, "admin");
  const signIn = await fetch(`${base}/admin/sign-in`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ api_key: key }),
    redirect: "manual",
  });
  assert.equal(signIn.status, 303, await signIn.text());
  const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
  const dashboard = await fetch(`${base}/admin`, { headers: { cookie }, redirect: "manual" });
  assert.equal(dashboard.status, 200);
  assert.match(await dashboard.text(), /<h1>Dashboard<\/h1>/);
});
