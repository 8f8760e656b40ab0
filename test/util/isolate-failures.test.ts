import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isDataError, runIsolatingFailures } from "../../src/util/isolate-failures.js";

/** An error as pg reports one, with its SQLSTATE. */
const pgError = (code: string) => Object.assign(new Error(`failed with ${code}`), { code });

describe("runIsolatingFailures", () => {
  test("one bad member fails alone; every other member gets its result", async () => {
    const calls: number[][] = [];
    const outcomes = await runIsolatingFailures([1, 2, 3, 4, 5, 6, 7, 8], async (items) => {
      calls.push(items);
      if (items.includes(6)) throw pgError("23505");
      return items.map((item) => item * 10);
    });
    assert.deepEqual(
      outcomes.map((outcome) => (outcome.ok ? outcome.value : "failed")),
      [10, 20, 30, 40, 50, "failed", 70, 80],
    );
    assert.ok(calls.length <= 1 + 2 * Math.ceil(Math.log2(8)), `${calls.length} statements to find one bad member of 8`);
  });

  test("an error no member's data can cause fails every member at once, without splitting", async () => {
    let calls = 0;
    const outcomes = await runIsolatingFailures([1, 2, 3, 4], async () => {
      calls += 1;
      throw pgError("57P01"); // the server is shutting down
    });
    assert.equal(calls, 1);
    assert.deepEqual(outcomes.map((outcome) => outcome.ok), [false, false, false, false]);
  });
});

describe("isDataError", () => {
  test("data exceptions, integrity violations, program limits and raised exceptions are a member's; others are not", () => {
    for (const code of ["22P02", "23505", "54001", "P0001"]) assert.equal(isDataError(pgError(code)), true, code);
    for (const code of ["08006", "57P01", "42601", "53200", "40P01"]) assert.equal(isDataError(pgError(code)), false, code);
    assert.equal(isDataError(new Error("no code")), false);
    assert.equal(isDataError(null), false);
  });
});
