import assert from "node:assert/strict";
import { test } from "node:test";
import { ConcurrencyLimit, OverCapacityError } from "../../src/util/concurrency-limit.js";

test("at most `running` at once, the next `waiting` in order, the rest refused at once with a 503", async () => {
  const limit = new ConcurrencyLimit("the thing", 2, 1);
  let running = 0;
  let most = 0;
  const order: number[] = [];
  const releases: (() => void)[] = [];
  const job = (n: number) => limit.run(async () => {
    running++;
    most = Math.max(most, running);
    await new Promise<void>((resolve) => releases.push(resolve));
    order.push(n);
    running--;
    return n;
  });
  const first = [job(1), job(2), job(3)];
  await assert.rejects(job(4), (error: unknown) => error instanceof OverCapacityError && error.statusCode === 503 && /the thing/.test(error.message));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(releases.length, 2, "two run, one waits");
  releases.shift()!();
  await first[0];
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(releases.length, 2, "the waiting one started");
  for (const release of releases.splice(0)) release();
  assert.deepEqual(await Promise.all(first), [1, 2, 3]);
  assert.equal(most, 2);
  assert.ok(limit.idle);
  await assert.rejects(limit.run(async () => { throw new Error("boom"); }), /boom/);
  assert.ok(limit.idle, "a failure frees its place");
});
