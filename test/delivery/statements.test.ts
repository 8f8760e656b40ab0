/** The hot statements are pure: built from their inputs without a database, checked here. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fanOutStatement } from "../../src/capture/fan-out-statement.js";
import { claimedDeliveriesStatement, claimStatement } from "../../src/delivery/claim-statement.js";
import { releaseClaimsStatement } from "../../src/delivery/release-claims-statement.js";
import { recordStatement, type AttemptRecord } from "../../src/delivery/record-statement.js";

/** The highest $n a statement's text uses. */
function highestPlaceholder(text: string): number {
  return Math.max(0, ...[...text.matchAll(/\$(\d+)/g)].map((match) => Number(match[1])));
}

function record(overrides: Partial<AttemptRecord> = {}, logged = true): AttemptRecord {
  const deliveryId = overrides.deliveryId ?? "00000000-0000-4000-8000-000000000001";
  return {
    deliveryId,
    state: "succeeded",
    attempt: 1,
    retryAt: null,
    lastError: null,
    endpoint: "up",
    partitionKeys: { delivery: "2026-01-15T10:29:59.123456Z", event: "2026-01-15T10:29:59.123455Z" },
    log: logged
      ? {
          organization_id: "00000000-0000-4000-8000-0000000000aa",
          webhook_id: "00000000-0000-4000-8000-0000000000bb",
          event_id: "evt_1",
          delivery_id: deliveryId,
          event_type: "contact.created",
          attempt: 1,
          url: "https://example.com/hook",
          request_headers: { "content-type": "application/json" },
          response_status: 200,
          response_headers: { server: "x" },
          response_body: "ok",
          error: null,
          duration_ms: 3,
          success: true,
        }
      : null,
    ...overrides,
  };
}

describe("recordStatement", () => {
  test("its text is the same whatever the batch (it is a named prepared statement)", () => {
    const one = recordStatement([record()], "daemon-1", 120);
    const many = recordStatement(
      [record(), record({ deliveryId: "00000000-0000-4000-8000-000000000002", state: "failed", retryAt: new Date(), endpoint: "down" }, false)],
      "daemon-2",
      1,
    );
    assert.equal(one.name, many.name);
    assert.equal(one.text, many.text);
  });

  test("every placeholder has a value, and every per-attempt array has one entry per attempt", () => {
    const records = [record(), record({ deliveryId: "00000000-0000-4000-8000-000000000002" }, false), record({ deliveryId: "00000000-0000-4000-8000-000000000003" })];
    const { text, values } = recordStatement(records, "daemon-1", 120);
    assert.equal(highestPlaceholder(text), values.length);
    const arrays = values.filter(Array.isArray) as unknown[][];
    const lengths = new Set(arrays.map((array) => array.length));
    // Input columns carry every record (3); log columns (with their event's partition key) and
    // health only the logged ones (2).
    assert.deepEqual([...lengths].sort(), [2, 3]);
    const jsonColumns = values.filter((value): value is string => typeof value === "string" && value.startsWith("["));
    assert.equal(jsonColumns.length, 2, "request_headers and response_headers travel as JSON arrays");
    for (const column of jsonColumns) assert.equal((JSON.parse(column) as unknown[]).length, 2);
    assert.ok(values.includes("daemon-1"), "the claims it releases are this daemon's");
  });

  test("a log row's columns are inserted in the order they travel (one column list), its event's partition key beside them", () => {
    const { text } = recordStatement([record()], "daemon-1", 120);
    const inserted = /insert into webhooks\.webhook_logs \(([^)]*)\)/.exec(text)![1]!.split(",").map((c) => c.trim());
    const travelling = /as l\(([^)]*)\)/.exec(text)![1]!.split(",").map((c) => c.trim());
    assert.deepEqual([...inserted.filter((column) => column !== "request_body"), "event_key"], travelling);
  });

  test("finds the batch's rows in the partitions between its first and last partition keys", () => {
    const records = [
      record(),
      record({ deliveryId: "00000000-0000-4000-8000-000000000002", partitionKeys: { delivery: "2026-01-15T10:29:59.123457Z", event: "2026-01-14T23:59:59.999999Z" } }),
      record({ deliveryId: "00000000-0000-4000-8000-000000000003", partitionKeys: { delivery: "2026-01-03T00:00:00.000000Z", event: "2026-01-03T00:00:00.000000Z" } }, false),
    ];
    const { text, values } = recordStatement(records, "daemon-1", 120);
    const range = (column: string) => {
      const [, first, last] = new RegExp(`${column} between \\$(\\d+)::timestamptz and \\$(\\d+)::timestamptz`).exec(text)!;
      return [values[Number(first) - 1], values[Number(last) - 1]];
    };
    assert.deepEqual(range("d\\.created_at"), ["2026-01-03T00:00:00.000000Z", "2026-01-15T10:29:59.123457Z"]);
    // Only the logged attempts' events are read (their request bodies).
    assert.deepEqual(range("e\\.dispatched_at"), ["2026-01-14T23:59:59.999999Z", "2026-01-15T10:29:59.123455Z"]);
  });
});

describe("claimStatement", () => {
  test("its text is the same whatever it claims, and every placeholder has a value", () => {
    const a = claimStatement({ webhookIds: ["w1"], ownInFlight: [0], daemonId: "d1", limit: 10, organizations: { ids: [], open: [] } });
    const b = claimStatement({ webhookIds: ["w1", "w2"], ownInFlight: [3, 0], daemonId: "d2", limit: 500, organizations: { ids: ["o"], open: [4] } });
    assert.equal(a.text, b.text);
    assert.equal(highestPlaceholder(b.text), b.values.length);
    assert.deepEqual(b.values, [["w1", "w2"], [3, 0], "d2", 500, ["o"], [4]]);
    assert.doesNotMatch(a.text, /webhooks\.(deliveries|events)\b/, "it reads no partitioned table");
  });

  test("the claimed deliveries are read by their partition keys, in the partitions between the first and last", () => {
    const claimed = [
      { delivery_id: "d1", attempts: 0, delivery_key: "2026-01-15T10:29:59.123456Z", event_key: "2026-01-15T10:29:59.123456Z" },
      { delivery_id: "d2", attempts: 2, delivery_key: "2026-01-15T10:29:59.123456Z", event_key: "2026-01-14T23:59:59.999999Z" },
    ];
    const a = claimedDeliveriesStatement(claimed);
    const b = claimedDeliveriesStatement(claimed.slice(1));
    assert.equal(a.text, b.text);
    assert.equal(highestPlaceholder(a.text), a.values.length);
    assert.deepEqual(a.values, [
      ["d1", "d2"], [0, 2],
      ["2026-01-15T10:29:59.123456Z", "2026-01-15T10:29:59.123456Z"], ["2026-01-15T10:29:59.123456Z", "2026-01-14T23:59:59.999999Z"],
      "2026-01-15T10:29:59.123456Z", "2026-01-15T10:29:59.123456Z", "2026-01-14T23:59:59.999999Z", "2026-01-15T10:29:59.123456Z",
    ]);
    assert.match(a.text, /d\.created_at between \$5::timestamptz and \$6::timestamptz/);
    assert.match(a.text, /e\.dispatched_at between \$7::timestamptz and \$8::timestamptz/);
  });

  test("giving claims back names the daemon, or takes every daemon no longer registered", () => {
    const own = releaseClaimsStatement({ daemonId: "d1" });
    assert.deepEqual(own.values, ["d1"]);
    assert.equal(highestPlaceholder(own.text), 1);
    const reaped = releaseClaimsStatement("unregistered");
    assert.deepEqual(reaped.values, []);
    assert.equal(highestPlaceholder(reaped.text), 0);
    assert.match(reaped.text, /not in \(select id from webhooks\.daemons\)/);
  });

  test("each claim given back is logged as an interrupted attempt with the record statement's column list", () => {
    const insertColumns = (text: string) => /insert into webhooks\.webhook_logs \(([^)]*)\)/.exec(text)?.[1];
    const recorded = insertColumns(recordStatement([record()], "daemon-1", 120).text);
    assert.ok(recorded?.includes("request_body"));
    for (const of of [{ daemonId: "d1" }, "unregistered"] as const) assert.equal(insertColumns(releaseClaimsStatement(of).text), recorded);
  });
});

describe("fanOutStatement", () => {
  test("takes the oldest rows by limit, or exactly the given ids, each its own named statement", () => {
    const oldest = fanOutStatement({ limit: 500 });
    const ids = fanOutStatement({ ids: [4, 5] });
    assert.deepEqual(oldest.values, [500]);
    assert.deepEqual(ids.values, [[4, 5]]);
    assert.notEqual(oldest.name, ids.name);
    assert.match(oldest.text, /order by id limit \$1 for update skip locked/);
    assert.match(ids.text, /id = any \(\$1::bigint\[\]\)/);
    for (const statement of [oldest, ids]) assert.equal(highestPlaceholder(statement.text), 1);
  });
});
