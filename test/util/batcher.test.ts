import assert from "node:assert/strict";
import { test } from "node:test";
import { Batcher } from "../../src/util/batcher.js";

// The group commit every hot statement goes through (records, fan-out wake-ups), without a
// database: `run` is a function that records the batches it was given.

function recordingRun(answer: (item: number) => number = (item) => item * 10) {
  const batches: number[][] = [];
  let release: (() => void) | undefined;
  let gate: Promise<void> = Promise.resolve();
  return {
    batches,
    /** Holds every later run until `open()`, to have items pile up behind a flush in flight. */
    hold() {
      gate = new Promise((resolve) => (release = resolve));
    },
    open() {
      release?.();
    },
    run: async (items: number[]) => {
      batches.push([...items]);
      await gate;
      return items.map(answer);
    },
  };
}

test("an item added to an idle batcher is flushed on its own at once, and gets its own result", async () => {
  const r = recordingRun();
  const batcher = new Batcher(r.run, { maxBatch: 10, maxInFlight: 1 });
  assert.equal(await batcher.add(4), 40);
  assert.deepEqual(r.batches, [[4]]);
});

test("items added while a flush is in flight go together in the next one, at most maxBatch at a time, in order", async () => {
  const r = recordingRun();
  const batcher = new Batcher(r.run, { maxBatch: 3, maxInFlight: 1 });
  r.hold();
  const first = batcher.add(1);
  await new Promise((resolve) => setImmediate(resolve));
  const rest = [2, 3, 4, 5, 6, 7].map((item) => batcher.add(item));
  r.open();
  assert.deepEqual(await Promise.all([first, ...rest]), [10, 20, 30, 40, 50, 60, 70]);
  assert.deepEqual(r.batches, [[1], [2, 3, 4], [5, 6, 7]]);
});

test("no more than maxInFlight batches run at once", async () => {
  let running = 0;
  let most = 0;
  const batcher = new Batcher(
    async (items: number[]) => {
      running += 1;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running -= 1;
      return items;
    },
    { maxBatch: 2, maxInFlight: 2 },
  );
  await Promise.all(Array.from({ length: 20 }, (_, i) => batcher.add(i)));
  assert.equal(most, 2);
});

test("with lingerMs, a small batch waits for company; a full one goes at once", async () => {
  const r = recordingRun();
  const batcher = new Batcher(r.run, { maxBatch: 3, maxInFlight: 1, lingerMs: 20 });
  const early = batcher.add(1);
  await new Promise((resolve) => setTimeout(resolve, 1));
  const later = batcher.add(2);
  await Promise.all([early, later]);
  assert.deepEqual(r.batches, [[1, 2]], "the second item joined the lingering first");

  const full = [3, 4, 5].map((item) => batcher.add(item));
  await Promise.all(full);
  assert.deepEqual(r.batches.at(-1), [3, 4, 5]);
});

test("one member whose data the statement refuses fails alone; the others get their results", async () => {
  const dataError = Object.assign(new Error("value too long"), { code: "22001" });
  const batcher = new Batcher(
    async (items: number[]) => {
      if (items.includes(13)) throw dataError;
      return items.map((item) => item + 1);
    },
    { maxBatch: 8, maxInFlight: 1, lingerMs: 5 },
  );
  const outcomes = await Promise.allSettled([1, 2, 13, 4, 5].map((item) => batcher.add(item)));
  assert.deepEqual(
    outcomes.map((o) => (o.status === "fulfilled" ? o.value : (o.reason as Error).message)),
    [2, 3, "value too long", 5, 6],
  );
});

test("a failure of the whole statement (not a data error) fails every member of that batch, and the next batch still runs", async () => {
  let calls = 0;
  const batcher = new Batcher(
    async (items: number[]) => {
      calls += 1;
      if (calls === 1) throw Object.assign(new Error("connection terminated"), { code: "57P01" });
      return items;
    },
    { maxBatch: 8, maxInFlight: 1, lingerMs: 5 },
  );
  const first = await Promise.allSettled([1, 2, 3].map((item) => batcher.add(item)));
  assert.deepEqual(first.map((o) => o.status), ["rejected", "rejected", "rejected"]);
  assert.equal(calls, 1, "no split on a server error");
  assert.equal(await batcher.add(9), 9);
});
