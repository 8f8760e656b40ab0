/** The payload (README "What a delivery looks like"), built by Postgres: webhooks._event_body and _changes. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { useHarness } from "../support/harness.js";

const h = useHarness();

const eventId = "0194f3b2-7c1a-7d4e-9a2b-3c4d5e6f7a8b";
const organizationId = "5b2f0c1e-8d3a-4f6b-9e7c-1a2b3c4d5e6f";
const occurredAt = "2026-01-15T10:30:00.000Z";

interface Event {
  eventType?: string;
  /** JSON text, passed to Postgres as jsonb exactly as written. */
  data?: string;
  oldData?: string | null;
  occurredAt?: string;
}

async function body(event: Event = {}): Promise<string> {
  const { rows } = await h.db.pool.query<{ body: string }>(
    "select webhooks._event_body($1::uuid, $2, $3::timestamptz, $4::uuid, $5::jsonb, $6::jsonb) as body",
    [eventId, event.eventType ?? "contact.created", event.occurredAt ?? occurredAt, organizationId,
     event.data ?? '{"id": "c-1", "email": "ada@example.com"}', event.oldData ?? null],
  );
  return rows[0]!.body;
}

async function changes(oldData: unknown, newData: unknown): Promise<unknown> {
  const { rows } = await h.db.pool.query("select webhooks._changes($1::jsonb, $2::jsonb) as changes", [JSON.stringify(oldData), JSON.stringify(newData)]);
  return rows[0]!.changes;
}

describe("the payload body", () => {
  test("an insert is the exact documented bytes, without changes; the id is evt_ and the uuid's hex", async () => {
    assert.equal(
      await body(),
      '{"id":"evt_0194f3b27c1a7d4e9a2b3c4d5e6f7a8b","event":"contact.created","timestamp":"2026-01-15T10:30:00.000Z",' +
        '"organization_id":"5b2f0c1e-8d3a-4f6b-9e7c-1a2b3c4d5e6f","data":{"id": "c-1", "email": "ada@example.com"}}',
    );
  });

  test("an update is the exact documented bytes, changes last", async () => {
    assert.equal(
      await body({
        eventType: "contact.updated",
        data: '{"id": "c-1", "email": "new@example.com", "city": "Oslo"}',
        oldData: '{"id": "c-1", "email": "old@example.com", "city": "Oslo"}',
      }),
      '{"id":"evt_0194f3b27c1a7d4e9a2b3c4d5e6f7a8b","event":"contact.updated","timestamp":"2026-01-15T10:30:00.000Z",' +
        '"organization_id":"5b2f0c1e-8d3a-4f6b-9e7c-1a2b3c4d5e6f","data":{"id": "c-1", "city": "Oslo", "email": "new@example.com"},' +
        '"changes":{"email": {"new": "new@example.com", "old": "old@example.com"}}}',
    );
  });

  test("keys are in the order id, event, timestamp, organization_id, data(, changes)", async () => {
    assert.deepEqual(Object.keys(JSON.parse(await body())), ["id", "event", "timestamp", "organization_id", "data"]);
    assert.deepEqual(Object.keys(JSON.parse(await body({ oldData: '{"id": "c-1", "email": "x"}' }))),
      ["id", "event", "timestamp", "organization_id", "data", "changes"]);
  });

  test("changes appears exactly when there is an old row, even if nothing differs", async () => {
    assert.equal("changes" in JSON.parse(await body()), false);
    assert.deepEqual(JSON.parse(await body({ oldData: '{"id": "c-1", "email": "ada@example.com"}' })).changes, {});
  });

  test("the timestamp is UTC ISO 8601 with milliseconds and Z, whatever offset the time was given in", async () => {
    const timestamp = async (at: string) => JSON.parse(await body({ occurredAt: at })).timestamp;
    assert.equal(await timestamp("2026-01-15T12:30:00.007+02:00"), "2026-01-15T10:30:00.007Z");
    assert.equal(await timestamp("2026-12-31T23:59:59.999Z"), "2026-12-31T23:59:59.999Z");
  });

  test("numbers arrive exactly as stored: no rounding through a double", async () => {
    const text = await body({ data: '{"big": 9007199254740993, "amount": 12345678901234567.89, "tiny": 1e-30}' });
    assert.match(text, /"big": 9007199254740993[,}]/);
    assert.match(text, /"amount": 12345678901234567\.89[,}]/);
    assert.match(text, /"tiny": 0\.0{29}1[,}]/);
  });

  test("strings keep every character, escaped as JSON (quotes, backslashes, control characters, emoji)", async () => {
    const value = 'say "hi"\\ \u0001 tab\t 😀 ü';
    const parsed = JSON.parse(await body({ data: JSON.stringify({ id: "c-1", note: value }) }));
    assert.equal(parsed.data.note, value);
  });

  test("a row nested 6,000 levels deep is a valid body (the daemon never parses it)", async () => {
    const deep = "[".repeat(6000) + "]".repeat(6000);
    const text = await body({ data: `{"id": "c-1", "x": ${deep}}` });
    assert.ok(text.includes(`"x": ${deep}`));
    assert.equal(JSON.parse(text).data.id, "c-1");
  });

  test("the same event is the same bytes every time", async () => {
    const update = { eventType: "contact.updated", data: '{"id": "c-1", "email": "b"}', oldData: '{"id": "c-1", "email": "a"}' };
    assert.equal(await body(update), await body(update));
  });
});

describe("changes", () => {
  test("lists exactly the changed columns, each with old and new", async () => {
    assert.deepEqual(
      await changes(
        { id: "c-1", email: "a@x", city: "Oslo", assigned_to: null, score: 1 },
        { id: "c-1", email: "b@x", city: "Oslo", assigned_to: "u-1", score: 2 },
      ),
      { email: { old: "a@x", new: "b@x" }, assigned_to: { old: null, new: "u-1" }, score: { old: 1, new: 2 } },
    );
  });

  test("identical rows have no changes", async () => {
    assert.deepEqual(await changes({ id: "c-1", n: 1, j: { a: [1] } }, { id: "c-1", n: 1, j: { a: [1] } }), {});
  });

  test("a value set to null is a change; a column missing on one side counts as null", async () => {
    assert.deepEqual(await changes({ email: "a@x" }, { email: null }), { email: { old: "a@x", new: null } });
    assert.deepEqual(await changes({ id: 1 }, { id: 1, added: "v" }), { added: { old: null, new: "v" } });
    assert.deepEqual(await changes({ id: 1, dropped: "v" }, { id: 1 }), { dropped: { old: "v", new: null } });
    assert.deepEqual(await changes({ id: 1, gone: null }, { id: 1 }), {});
  });

  test("values of different JSON types are different even if they print alike", async () => {
    assert.deepEqual(await changes({ n: 1 }, { n: "1" }), { n: { old: 1, new: "1" } });
    assert.deepEqual(await changes({ b: false }, { b: null }), { b: { old: false, new: null } });
  });

  test("nested values compare by value: key order does not matter, array order does", async () => {
    assert.deepEqual(await changes({ custom: { a: 1, b: { c: 2, d: 3 } } }, { custom: { b: { d: 3, c: 2 }, a: 1 } }), {});
    assert.deepEqual(
      await changes({ custom: { tier: "gold", tags: ["a", "b"] } }, { custom: { tier: "gold", tags: ["b", "a"] } }),
      { custom: { old: { tier: "gold", tags: ["a", "b"] }, new: { tier: "gold", tags: ["b", "a"] } } },
    );
  });
});
