import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_JSON_DEPTH, jsonbProblem, numericHolds, parseLeadBody } from "../../src/intake/lead-body.js";
import { useHarness } from "../support/harness.js";

// parseLeadBody is pure; the number rule is also checked against PostgreSQL's own jsonb input.

const h = useHarness();
const phone = '"customer_phone":"+15550100000"';
const error = (body: string | Uint8Array) => {
  const result = parseLeadBody(typeof body === "string" ? Buffer.from(body) : body);
  return result.ok ? undefined : result.error;
};

test("a lead is an object with a customer_phone that has digits; its text is returned as decoded", () => {
  const result = parseLeadBody(Buffer.from(`{${phone},"first_name":"Zoë"}`));
  assert.deepEqual(result, { ok: true, text: `{${phone},"first_name":"Zoë"}`, fields: { customer_phone: "+15550100000", first_name: "Zoë" } });
  assert.equal(error("{not json"), "body is not valid JSON");
  assert.equal(error("[1]"), "body must be a JSON object");
  assert.equal(error("null"), "body must be a JSON object");
  assert.equal(error('{"customer_phone":"call me"}'), "customer_phone is required (a string with digits)");
  assert.equal(error('{"customer_phone":5550100}'), "customer_phone is required (a string with digits)");
});

test("bytes that are not UTF-8 (invalid, overlong, surrogate, truncated) are refused, not replaced", () => {
  for (const bytes of [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
    const body = Buffer.concat([Buffer.from(`{${phone},"x":"`), Buffer.from(bytes), Buffer.from('"}')]);
    assert.equal(error(body), "body is not valid UTF-8", String(bytes));
  }
});

test(`nesting deeper than ${MAX_JSON_DEPTH} levels is refused before JSON.parse; brackets inside strings do not count`, () => {
  const nested = (depth: number) => `{${phone},"x":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
  assert.equal(error(nested(MAX_JSON_DEPTH)), undefined);
  assert.equal(error(nested(MAX_JSON_DEPTH + 1)), `JSON nesting deeper than ${MAX_JSON_DEPTH} levels`);
  assert.equal(error(nested(1_000_000)), `JSON nesting deeper than ${MAX_JSON_DEPTH} levels`);
  assert.equal(error(`{${phone},"x":"${"[{".repeat(500)}","y":"\\"[[[[\\\\"}`), undefined);
  assert.equal(jsonbProblem(`"${"[".repeat(200)}`), undefined, "an unterminated string is JSON.parse's to refuse");
});

test("numbers outside PostgreSQL's numeric are refused naming the limits; others, however long, are not", () => {
  assert.match(String(error(`{${phone},"n":1e999999}`)), /^number out of range: PostgreSQL's numeric holds at most 131072 digits before the decimal point and 16383 after$/);
  assert.equal(error(`{${phone},"n":[1e131071,-1e-16383,0e999999,12.5,-0,"1e999999"]}`), undefined);
  assert.equal(error(`{${phone},"n":${"9".repeat(131_072)}}`), undefined);
  assert.match(String(error(`{${phone},"n":${"9".repeat(131_073)}}`)), /^number out of range/);
});

test("numericHolds agrees with PostgreSQL's jsonb input on numbers around every limit", async () => {
  const numbers = [
    "0", "-0", "1", "12.50", "1e1000", "1E+1000", "1e131071", "1e131072", "9.99e131071", "123456789e131063", "123456789e131064",
    "0.001e131074", "0.001e131075", "1e-16383", "1e-16384", "-1e-16383", "1.5e-16382", "1.5e-16383", "0.0001e-16379", "0.0001e-16380",
    `0.${"0".repeat(16_382)}1`, `0.${"0".repeat(16_383)}1`, `1.${"0".repeat(16_383)}`, `1.${"0".repeat(16_384)}`,
    "0e999999", "0e-16383", "0e-16384", "0.0e-16382", "0.0e-16383", "0e1073741822", "0e1073741823", "1e-1073741823",
    "0e99999999999999999999", "1e00000000000000000000001", "00", "-",
  ];
  const disagreements: string[] = [];
  for (const number of numbers) {
    const postgres = await h.db.pool.query("select $1::jsonb", [number]).then(
      () => true,
      (failure: { code?: string }) => (failure.code === "22003" ? false : `error ${failure.code}`),
    );
    const expected = postgres === true || postgres === false ? postgres : true; // not JSON: not numericHolds' to judge
    // A zero with the largest exponent: PostgreSQL 15 refuses it, 16 and later read it as 0. Either
    // answer is safe: a number the guard lets through and the server refuses is still a 400.
    if (number === "0e1073741823") continue;
    if (numericHolds(number) !== expected) disagreements.push(`${number.length > 40 ? `${number.slice(0, 20)}…(${number.length})` : number}: PostgreSQL says ${postgres}`);
  }
  assert.deepEqual(disagreements, []);
});
