import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { packageRoot } from "../../src/package-info.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

const h = useHarness({ receiver: (request) => (request.path.endsWith("/fail") ? { status: 500 } : { status: 200 }), daemon: true });
const cli = path.join(packageRoot, "dist/src/cli.js");

interface Printed {
  event_type: string;
  webhook_id: string;
  success: boolean;
  response_status: number | null;
}

test("logs --follow prints the latest attempts, then each new one as it is written, and ends on SIGINT with 0", async () => {
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: `${h.receiver.url}/ok`, events: ["contact.created", "contact.updated"] });
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Before')", [org]);
  await waitFor("the first attempt", async () => (await h.db.pool.query("select 1 from webhooks.webhook_logs where webhook_id = $1", [hook.id])).rowCount);

  const child = spawn(process.execPath, [cli, "logs", "--follow", "--webhook", hook.id], {
    env: { PATH: process.env.PATH, DATABASE_URL: h.db.url, LOG_LEVEL: "error" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const printed = () => stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line) as Printed);
  try {
    await waitFor("the attempt made before following", () => printed().length === 1);
    await h.db.pool.query("update contacts set first_name = 'After' where organization_id = $1", [org]);
    await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Later')", [org]);
    await waitFor("the two attempts written while following", () => printed().length === 3);
    const [before, ...whileFollowing] = printed().map((row) => [row.event_type, row.success, row.response_status, row.webhook_id]);
    assert.deepEqual(before, ["contact.created", true, 200, hook.id]);
    // The two were delivered at once: in the order their attempts were logged, whichever that was.
    assert.deepEqual(whileFollowing.map(String).sort(), [
      ["contact.created", true, 200, hook.id],
      ["contact.updated", true, 200, hook.id],
    ].map(String).sort());
    child.kill("SIGINT");
    assert.equal(await exited, 0);
  } finally {
    child.kill("SIGKILL");
  }
});

test("logs --follow --failed prints only failed attempts, of every endpoint", async () => {
  const org = await createOrganization(h.db.pool);
  const failing = await createWebhook(h.db.pool, { organizationId: org, url: `${h.receiver.url}/fail`, events: ["deal.created"], max_retries: 0 });
  const fine = await createWebhook(h.db.pool, { organizationId: org, url: `${h.receiver.url}/ok`, events: ["deal.created"] });
  const child = spawn(process.execPath, [cli, "logs", "--follow", "--failed", "--limit", "1"], {
    env: { PATH: process.env.PATH, DATABASE_URL: h.db.url, LOG_LEVEL: "error" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    await h.db.pool.query("insert into deals (organization_id, title) values ($1, 'Followed')", [org]);
    await waitFor("the failed attempt", () => stdout.includes(failing.id));
    const { rows } = await h.db.pool.query("select success from webhooks.webhook_logs where webhook_id = $1", [fine.id]);
    assert.deepEqual(rows, [{ success: true }], "the healthy endpoint's attempt was written");
    // A marker written after both: once it shows, the healthy attempt would have shown too.
    await h.db.pool.query("insert into deals (organization_id, title) values ($1, 'Marker')", [org]);
    await waitFor("the marker's failed attempt", () => stdout.split(failing.id).length - 1 === 2);
    assert.equal(stdout.includes(fine.id), false, "no successful attempt is printed");
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  } finally {
    child.kill("SIGKILL");
  }
});

test("logs refuses a bad command line with the usage and exit code 1, without touching the database", async () => {
  for (const args of [["--limit", "0"], ["--webhook", "not-a-uuid"], ["--folow"]]) {
    const result = await promisify(execFile)(process.execPath, [cli, "logs", ...args], {
      env: { PATH: process.env.PATH, DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", LOG_LEVEL: "error" },
    }).then(
      () => assert.fail(`logs ${args.join(" ")} succeeded`),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(result.code, 1, args.join(" "));
    assert.match(result.stderr, /usage: pg-webhooks/);
  }
});
