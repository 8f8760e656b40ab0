import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createOrganization } from "../support/fixtures.js";
import { spawnDaemon } from "../support/daemon.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { REQUEST_ID, signedPost } from "./http-support.js";
import { createIntegration } from "./support.js";

// Signed bodies that JavaScript reads but PostgreSQL's jsonb cannot hold, or that are not UTF-8,
// are the sender's mistake: a 400 saying what is wrong, recorded in webhooks.intake_activity.
// A 503 means only that the database is unavailable.

const h = useHarness({ daemon: { as: "dispatcher" } });
let integration: { id: string; signing_secret: string };
let base: string;
const phone = '"customer_phone":"+15550107777"';

h.before(async () => {
  base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  integration = await createIntegration(h.db.pool, await createOrganization(h.db.pool, "Edges"));
});

/** Asserts a 400 whose JSON error matches `expected`, recorded as a refused activity row with that error. */
async function assertBadBody(response: Response, expected: RegExp): Promise<void> {
  const answer = (await response.json()) as { error: string; request_id: string };
  assert.equal(response.status, 400, JSON.stringify(answer));
  assert.match(answer.error, expected);
  assert.match(answer.request_id, REQUEST_ID);
  const { rows } = await h.db.pool.query(
    "select integration_id, http_status, outcome, error, event_id from webhooks.intake_activity where request_id = $1", [answer.request_id]);
  assert.deepEqual(rows, [{ integration_id: integration.id, http_status: 400, outcome: "refused", error: answer.error, event_id: null }]);
}

async function acceptedBody(response: Response): Promise<unknown> {
  const answer = (await response.json()) as { event_id: string };
  assert.equal(response.status, 202, JSON.stringify(answer));
  const { rows } = await h.db.pool.query("select body from webhooks.intake_activity where event_id = $1 and outcome <> 'duplicate'", [answer.event_id]);
  return rows[0].body;
}

test("a signed body that is not valid UTF-8 is a 400 'body is not valid UTF-8', not stored with U+FFFD", async () => {
  const body = Buffer.concat([Buffer.from(`{${phone},"first_name":"Zo`), Buffer.from([0xeb, 0xff]), Buffer.from('"}')]);
  await assertBadBody(await signedPost(base, integration, body), /^body is not valid UTF-8/);
  const overlong = Buffer.concat([Buffer.from(`{${phone},"x":"`), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]);
  await assertBadBody(await signedPost(base, integration, overlong), /^body is not valid UTF-8/);
  const { rows } = await h.db.pool.query("select count(*)::int as n from webhooks.intake_activity where body::text like '%\uFFFD%'");
  assert.equal(rows[0].n, 0);
});

test("valid UTF-8 is stored as sent", async () => {
  const body = `{${phone},"first_name":"Zoë","city":"東京","note":"🦄"}`;
  assert.deepEqual(await acceptedBody(await signedPost(base, integration, Buffer.from(body, "utf8"))), JSON.parse(body));
});

test("signed JSON nested 100,000 deep is a 400 naming the nesting limit; 100 deep is accepted", async () => {
  const deep = (depth: number) => `{${phone},"x":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
  await assertBadBody(await signedPost(base, integration, deep(100_000)), /^JSON nesting deeper than 100 levels/);
  await assertBadBody(await signedPost(base, integration, deep(101)), /^JSON nesting deeper than 100 levels/);
  assert.deepEqual(await acceptedBody(await signedPost(base, integration, deep(100))), JSON.parse(deep(100)));
});

test("numbers PostgreSQL's numeric cannot hold (1e999999, 1e131072, 1e-16384) are a 400 'number out of range'; the largest it holds are accepted", async () => {
  for (const number of ["1e999999", "-1e131072", "1e-16384", "0.0e-999999", "1e99999999999999999999"]) {
    await assertBadBody(await signedPost(base, integration, `{${phone},"n":${number}}`), /^number out of range/);
  }
  const stored = (await acceptedBody(await signedPost(base, integration, `{${phone},"big":1e131071,"small":1e-16383,"zero":0e999999}`))) as Record<string, unknown>;
  assert.equal(stored.zero, 0);
  assert.equal(typeof stored.big, "number");
});

test("a failure that is not the database being unavailable answers 500, not 503", async () => {
  await h.db.pool.query("revoke execute on function webhooks._accept_lead(uuid, text, text, text, jsonb) from webhooks_dispatcher");
  try {
    const response = await signedPost(base, integration, `{${phone}}`);
    const answer = (await response.json()) as { error: string; request_id: string };
    assert.equal(response.status, 500, JSON.stringify(answer));
    assert.match(answer.request_id, REQUEST_ID);
    assert.doesNotMatch(answer.error, /permission|_accept_lead/, "no internals in the answer");
  } finally {
    await h.db.pool.query("grant execute on function webhooks._accept_lead(uuid, text, text, text, jsonb) to webhooks_dispatcher");
  }
});

test("while the database refuses the daemon's connections a signed lead is answered 503 with Retry-After, and 202 once it accepts them again", async () => {
  // A daemon of its own, as a login of its own, in a child process killed at the end.
  const login = await h.roles.create("webhooks_dispatcher");
  const daemon = await spawnDaemon(login.url);
  h.defer(() => daemon.kill("SIGKILL"));
  const own = `http://127.0.0.1:${daemon.port}`;
  await h.db.pool.query(`alter role ${login.name} nologin`);
  try {
    await h.db.pool.query("select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", [login.name]);
    const response = await signedPost(own, integration, `{${phone}}`);
    const answer = (await response.json()) as { error: string; request_id: string };
    assert.equal(response.status, 503, JSON.stringify(answer));
    assert.match(response.headers.get("retry-after") ?? "", /^\d+$/);
    assert.match(answer.request_id, REQUEST_ID);
  } finally {
    await h.db.pool.query(`alter role ${login.name} login`);
  }
  const again = await waitFor("a lead accepted again", async () => {
    const response = await signedPost(own, integration, `{${phone}}`);
    await response.arrayBuffer();
    return response.status === 202 ? response.status : undefined;
  });
  assert.equal(again, 202);
});
