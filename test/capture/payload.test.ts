/** SPEC 4 payload building: pure functions, tested with vectors. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { diffRows, payloadEventId, serializePayload, type CapturedEvent } from "../../src/capture/payload.js";

const eventId = "0194f3b2-7c1a-7d4e-9a2b-3c4d5e6f7a8b";
const organizationId = "5b2f0c1e-8d3a-4f6b-9e7c-1a2b3c4d5e6f";

function event(overrides: Partial<CapturedEvent> = {}): CapturedEvent {
  return {
    eventId,
    organizationId,
    eventType: "contact.created",
    data: { id: "c-1", email: "ada@example.com" },
    oldData: null,
    occurredAt: new Date(Date.UTC(2026, 0, 15, 10, 30, 0, 0)),
    ...overrides,
  };
}

describe("payloadEventId", () => {
  test("is evt_ followed by the uuid's 32 hex digits", () => {
    assert.equal(payloadEventId(eventId), "evt_0194f3b27c1a7d4e9a2b3c4d5e6f7a8b");
  });

  test("is the same for the same event and differs between events", () => {
    assert.equal(payloadEventId(eventId), payloadEventId(eventId));
    assert.notEqual(payloadEventId(eventId), payloadEventId("0194f3b2-7c1a-7d4e-9a2b-3c4d5e6f7a8c"));
  });
});

describe("serializePayload", () => {
  test("an insert serializes to the exact SPEC 4 bytes, without changes", () => {
    const { id, body } = serializePayload(event());
    assert.equal(id, "evt_0194f3b27c1a7d4e9a2b3c4d5e6f7a8b");
    assert.equal(
      body,
      '{"id":"evt_0194f3b27c1a7d4e9a2b3c4d5e6f7a8b","event":"contact.created","timestamp":"2026-01-15T10:30:00.000Z",' +
        '"organization_id":"5b2f0c1e-8d3a-4f6b-9e7c-1a2b3c4d5e6f","data":{"id":"c-1","email":"ada@example.com"}}',
    );
  });

  test("an update serializes to the exact SPEC 4 bytes, changes last", () => {
    const { body } = serializePayload(event({
      eventType: "contact.updated",
      data: { id: "c-1", email: "new@example.com", city: "Oslo" },
      oldData: { id: "c-1", email: "old@example.com", city: "Oslo" },
    }));
    assert.equal(
      body,
      '{"id":"evt_0194f3b27c1a7d4e9a2b3c4d5e6f7a8b","event":"contact.updated","timestamp":"2026-01-15T10:30:00.000Z",' +
        '"organization_id":"5b2f0c1e-8d3a-4f6b-9e7c-1a2b3c4d5e6f","data":{"id":"c-1","email":"new@example.com","city":"Oslo"},' +
        '"changes":{"email":{"old":"old@example.com","new":"new@example.com"}}}',
    );
  });

  test("keys are in the order id, event, timestamp, organization_id, data(, changes)", () => {
    assert.deepEqual(Object.keys(JSON.parse(serializePayload(event()).body)),
      ["id", "event", "timestamp", "organization_id", "data"]);
    assert.deepEqual(Object.keys(JSON.parse(serializePayload(event({ oldData: { id: "c-1", email: "x" } })).body)),
      ["id", "event", "timestamp", "organization_id", "data", "changes"]);
  });

  test("changes appears exactly when oldData is non-null, even if nothing differs", () => {
    assert.equal("changes" in JSON.parse(serializePayload(event({ oldData: null })).body), false);
    const same = JSON.parse(serializePayload(event({ oldData: { id: "c-1", email: "ada@example.com" } })).body);
    assert.deepEqual(same.changes, {});
  });

  test("a delete carries the row before it as data and no changes", () => {
    const deleted = { id: "inv-1", number: "INV-1" };
    const payload = JSON.parse(serializePayload(event({ eventType: "invoice.deleted", data: deleted, oldData: null })).body);
    assert.deepEqual(payload.data, deleted);
    assert.equal("changes" in payload, false);
  });

  test("the timestamp is UTC ISO 8601 with milliseconds and Z, whatever offset the time was given in", () => {
    const timestamp = (occurredAt: Date) => JSON.parse(serializePayload(event({ occurredAt })).body).timestamp;
    assert.equal(timestamp(new Date("2026-01-15T12:30:00.007+02:00")), "2026-01-15T10:30:00.007Z");
    assert.equal(timestamp(new Date(Date.UTC(2026, 11, 31, 23, 59, 59, 999))), "2026-12-31T23:59:59.999Z");
    assert.match(timestamp(new Date()), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  test("data keeps the row's column order and nested jsonb as given", () => {
    const data = { z: 1, a: { nested: [1, { deep: true }] }, m: null };
    const payload = JSON.parse(serializePayload(event({ data })).body);
    assert.deepEqual(Object.keys(payload.data), ["z", "a", "m"]);
    assert.deepEqual(payload.data, data);
  });

  test("the same event serializes to the same bytes every time", () => {
    const input = event({ oldData: { id: "c-1", email: "old@example.com" } });
    assert.equal(serializePayload(input).body, serializePayload(structuredClone(input)).body);
  });
});

describe("diffRows", () => {
  test("lists exactly the changed columns, each with old and new", () => {
    assert.deepEqual(
      diffRows(
        { id: "c-1", email: "a@x", city: "Oslo", assigned_to: null, score: 1 },
        { id: "c-1", email: "b@x", city: "Oslo", assigned_to: "u-1", score: 2 },
      ),
      { email: { old: "a@x", new: "b@x" }, assigned_to: { old: null, new: "u-1" }, score: { old: 1, new: 2 } },
    );
  });

  test("identical rows have no changes", () => {
    assert.deepEqual(diffRows({ id: "c-1", n: 1, j: { a: [1] } }, { id: "c-1", n: 1, j: { a: [1] } }), {});
  });

  test("a value set to null is a change; a column missing on one side counts as null", () => {
    assert.deepEqual(diffRows({ email: "a@x" }, { email: null }), { email: { old: "a@x", new: null } });
    assert.deepEqual(diffRows({ id: 1 }, { id: 1, added: "v" }), { added: { old: null, new: "v" } });
    assert.deepEqual(diffRows({ id: 1, dropped: "v" }, { id: 1 }), { dropped: { old: "v", new: null } });
    assert.deepEqual(diffRows({ id: 1, gone: null }, { id: 1 }), {});
  });

  test("values of different JSON types are different even if they print alike", () => {
    assert.deepEqual(diffRows({ n: 1 }, { n: "1" }), { n: { old: 1, new: "1" } });
    assert.deepEqual(diffRows({ b: false }, { b: null }), { b: { old: false, new: null } });
  });

  test("nested jsonb values compare by value: equal content in other objects is no change", () => {
    assert.deepEqual(diffRows({ custom: { tier: "gold", tags: ["a", "b"] } }, { custom: { tier: "gold", tags: ["a", "b"] } }), {});
  });

  test("nested jsonb values compare by value: object key order does not matter", () => {
    assert.deepEqual(diffRows({ custom: { a: 1, b: { c: 2, d: 3 } } }, { custom: { b: { d: 3, c: 2 }, a: 1 } }), {});
  });

  test("a nested change reports the whole old and new value of the column; array order matters", () => {
    assert.deepEqual(
      diffRows({ custom: { tier: "gold", tags: ["a", "b"] } }, { custom: { tier: "gold", tags: ["b", "a"] } }),
      { custom: { old: { tier: "gold", tags: ["a", "b"] }, new: { tier: "gold", tags: ["b", "a"] } } },
    );
  });
});
