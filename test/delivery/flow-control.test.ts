import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import type { Daemon } from "../../src/daemon.js";
import type { Pool } from "../../src/db/pool.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { asTenant } from "../tenancy/roles.js";

// Flow control per endpoint across daemons (sql/000011_flow_control.sql): max_in_flight,
// rate_limit_per_second, paused and the circuit breaker, observed at real receivers that count
// the requests open at once. The tests run one after another, each with daemons of its own
// (stopped when it ends) and endpoints of its own organization; an endpoint that never answers
// is paused before its test ends so that no later test's daemon probes it.

const h = useHarness({ app: true });

// ---------------------------------------------------------------------------------------------
// A receiver that knows how many requests are open at once.

interface Hit {
  deliveryId: string;
  /** The payload's data.id: the contact the event is about. */
  contactId: string;
  receivedAt: number;
  /** The status answered; null while (or if never) answered. */
  status: number | null;
}

/** How to answer a request: a status after delayMs, or never (the request stays open until the client gives up). */
type Answer = { status: number; delayMs?: number } | "never";

interface GaugedReceiver {
  url: string;
  hits: Hit[];
  /** Requests open now: from the request's arrival until its answer is sent or the client drops it. */
  readonly open: number;
  /** The most requests ever open at once. */
  readonly maxOpen: number;
  answer(next: (hit: Hit) => Answer): void;
}

/**
 * test/support/receiver.ts answers after a delay with a timer that outlives a dropped request, and
 * cannot say what is open at once; this one counts a request open from its arrival until its
 * response is finished or its connection is gone, and cancels the timers of dropped requests.
 */
async function gaugedReceiver(answer: (hit: Hit) => Answer): Promise<GaugedReceiver> {
  let current = answer;
  let open = 0;
  let maxOpen = 0;
  const hits: Hit[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    open += 1;
    maxOpen = Math.max(maxOpen, open);
    let over = false;
    let timer: NodeJS.Timeout | undefined;
    const end = () => {
      if (over) return;
      over = true;
      open -= 1;
      if (timer) {
        clearTimeout(timer);
        timers.delete(timer);
      }
    };
    res.on("finish", end);
    res.on("close", end);
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const hit: Hit = {
        deliveryId: String(req.headers["x-webhook-delivery-id"]),
        contactId: String((JSON.parse(body) as { data?: { id?: string } }).data?.id),
        receivedAt: Date.now(),
        status: null,
      };
      hits.push(hit);
      const reply = current(hit);
      if (reply === "never" || over) return;
      const send = () => {
        if (over || res.destroyed) return;
        hit.status = reply.status;
        res.writeHead(reply.status, { "content-type": "text/plain" });
        res.end("ok");
      };
      if (reply.delayMs) {
        timer = setTimeout(send, reply.delayMs);
        timers.add(timer);
      } else send();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  h.defer(async () => {
    for (const timer of timers) clearTimeout(timer);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    hits,
    get open() {
      return open;
    },
    get maxOpen() {
      return maxOpen;
    },
    answer(next) {
      current = next;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Daemons and rows.

/** Few connections per daemon: other test files share the server. */
const daemonEnv = { WEBHOOKS_DB_POOL_SIZE: "6" };

/**
 * `count` daemons in this process (h.startDaemon) for one test: `work` runs with them, then they
 * stop, so the next test starts with daemons of its own. Their stop is made idempotent because
 * the harness stops them again at the end of the file.
 */
async function withDaemons<T>(count: number, env: Record<string, string>, work: (daemons: Daemon[]) => Promise<T>): Promise<T> {
  const daemons: Daemon[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const daemon = await h.startDaemon({ ...daemonEnv, ...env });
      const stop = daemon.stop.bind(daemon);
      let stopping: Promise<void> | undefined;
      daemon.stop = () => (stopping ??= stop());
      daemons.push(daemon);
    }
    return await work(daemons);
  } finally {
    await Promise.all(daemons.map((daemon) => daemon.stop()));
  }
}

/** Inserts `count` contacts for `org` in one statement (one transaction: one fan-out); returns their ids in order. */
async function insertContacts(pool: Pool, org: string, count: number): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    "insert into contacts (organization_id, first_name) select $1, 'contact ' || i from generate_series(1, $2) i returning id",
    [org, count],
  );
  return rows.map((row) => row.id);
}

async function count(sql: string, values: unknown[]): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(sql, values);
  return rows[0]!.n;
}

async function deliveryStates(webhookId: string): Promise<Record<string, number>> {
  const { rows } = await h.db.pool.query<{ state: string; n: number }>(
    "select state, count(*)::int as n from webhooks.deliveries where webhook_id = $1 group by state order by state",
    [webhookId],
  );
  return Object.fromEntries(rows.map((row) => [row.state, row.n]));
}

/** Waits until the endpoint has exactly `n` deliveries, all succeeded. */
function allSucceeded(webhookId: string, n: number, timeoutMs = 20_000) {
  return waitFor(
    `${n} succeeded deliveries to ${webhookId}`,
    async () => {
      const states = await deliveryStates(webhookId);
      return states.succeeded === n && Object.keys(states).length === 1 ? states : undefined;
    },
    timeoutMs,
  ).catch(async (error: Error) => {
    throw new Error(`${error.message}; states now ${JSON.stringify(await deliveryStates(webhookId))}`);
  });
}

/** How many requests each contact id got. */
function perContact(hits: Hit[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const hit of hits) counts.set(hit.contactId, (counts.get(hit.contactId) ?? 0) + 1);
  return counts;
}

function assertEachReceivedOnce(hits: Hit[], contactIds: string[]): void {
  const counts = perContact(hits);
  assert.deepEqual([...counts.keys()].sort(), [...contactIds].sort(), "every event, and only these, reached the receiver");
  assert.deepEqual([...new Set(counts.values())], [1], "no event was received twice");
}

interface EndpointState {
  organization_id: string;
  consecutive_failures: number;
  circuit: string;
  circuit_until: Date | null;
  circuit_trips: number;
}

/** The endpoint's webhooks.endpoint_states row as its organization's application reads it (webhooks_app, RLS). */
async function stateAsApp(org: string, webhookId: string): Promise<EndpointState | undefined> {
  return asTenant(h.app.pool, org, async (client) => {
    const { rows } = await client.query<EndpointState>(
      "select organization_id, consecutive_failures, circuit, circuit_until, circuit_trips from webhooks.endpoint_states where webhook_id = $1",
      [webhookId],
    );
    return rows[0];
  });
}

/** Waits until no daemon has an attempt in flight (exchange or record). */
function idle(daemons: Daemon[], timeoutMs = 15_000) {
  return waitFor("no attempt in flight in any daemon", () => daemons.every((daemon) => daemon.deliverer.attemptsInFlight === 0), timeoutMs);
}

// ---------------------------------------------------------------------------------------------

test("max_in_flight holds across two daemons: never more than 4 requests open at once, and both daemons send", async (t) => {
  const org = await createOrganization(h.db.pool);
  const receiver = await gaugedReceiver(() => ({ status: 200, delayMs: 150 }));
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"], max_in_flight: 4 });

  // Each daemon may hold 3 attempts: reaching 4 open at once then takes both daemons at the same
  // time, and if either ignored the other's published in-flight count, 6 could be open.
  const claimed = await withDaemons(2, { WEBHOOKS_CONCURRENCY: "3" }, async (daemons) => {
    const contacts = await insertContacts(h.db.pool, org, 60);
    await allSucceeded(hook.id, 60);
    assertEachReceivedOnce(receiver.hits, contacts);
    return daemons.map((daemon) => daemon.deliverer.stats.claimed);
  });

  t.diagnostic(`most requests open at once: ${receiver.maxOpen}; claimed per daemon: ${claimed.join(", ")}`);
  assert.ok(receiver.maxOpen <= 4, `${receiver.maxOpen} requests were open at once`);
  assert.equal(receiver.maxOpen, 4, "the limit was reached (the test exercises it)");
  assert.equal(claimed[0]! + claimed[1]!, 60, "each delivery was claimed once");
  assert.ok(claimed.every((n) => n > 0), `both daemons took a share: ${claimed.join(", ")}`);
  assert.equal(await count("select count(*)::int as n from webhooks.webhook_logs where webhook_id = $1", [hook.id]), 60);
});

test("rate_limit_per_second holds across two daemons: no window of receipts exceeds the bucket's burst plus its rate", async (t) => {
  const RATE = 10;
  const EVENTS = 35;
  const org = await createOrganization(h.db.pool);
  const receiver = await gaugedReceiver(() => ({ status: 200 }));
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"], rate_limit_per_second: RATE });

  // The bucket fills from empty at RATE a second from the endpoint's creation: once it is full,
  // the first RATE attempts may go at once (the burst the windows below allow for).
  await waitFor("the bucket to be full", async () =>
    (await count("select count(*)::int as n from webhooks.endpoint_states where webhook_id = $1 and rate_refilled_at <= now() - interval '1.1 s'", [hook.id])) === 1,
  );
  const claimed = await withDaemons(2, {}, async (daemons) => {
    const contacts = await insertContacts(h.db.pool, org, EVENTS);
    await allSucceeded(hook.id, EVENTS);
    assertEachReceivedOnce(receiver.hits, contacts);
    return daemons.map((daemon) => daemon.deliverer.stats.claimed);
  });

  // A token bucket of RATE a second holding at most RATE tokens lets at most RATE + RATE·T
  // attempts start in any T seconds. Receipts lag their claims by a variable few milliseconds
  // (2 shared cores), so each window gets JITTER seconds of slack: that still fails a limit
  // per daemon (twice the burst at once) or a missing one.
  const JITTER = 0.3;
  const times = receiver.hits.map((hit) => hit.receivedAt).sort((a, b) => a - b);
  let worst = { excess: -Infinity, n: 0, seconds: 0 };
  for (let i = 0; i < times.length; i++) {
    for (let j = i; j < times.length; j++) {
      const seconds = (times[j]! - times[i]!) / 1000;
      const n = j - i + 1;
      const excess = n - (RATE + RATE * (seconds + JITTER));
      if (excess > worst.excess) worst = { excess, n, seconds };
    }
  }
  const span = (times.at(-1)! - times[0]!) / 1000;
  t.diagnostic(`span ${span.toFixed(2)} s; fullest window ${worst.n} in ${worst.seconds.toFixed(3)} s; claimed per daemon: ${claimed.join(", ")}`);
  assert.equal(claimed[0]! + claimed[1]!, EVENTS, "each delivery was claimed once");
  assert.ok(claimed.every((n) => n > 0), `both daemons took a share: ${claimed.join(", ")}`);
  assert.ok(worst.excess <= 0, `${worst.n} requests arrived within ${worst.seconds.toFixed(3)} s`);
  // After a burst of 10, the other 25 take at least 2.5 s at 10/s; a lower bound only (less jitter).
  assert.ok(span >= 2, `all ${EVENTS} arrived within ${span.toFixed(2)} s`);
});

test("a paused endpoint's deliveries are created and wait (pending, no attempt, no log) until it is unpaused", async () => {
  const org = await createOrganization(h.db.pool);
  const receiver = await gaugedReceiver(() => ({ status: 200 }));
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"], paused: true });

  await withDaemons(1, {}, async () => {
    const contacts = await insertContacts(h.db.pool, org, 5);
    await waitFor("5 deliveries", async () => (await count("select count(*)::int as n from webhooks.deliveries where webhook_id = $1", [hook.id])) === 5);
    // What is checked is that nothing happens, so only waiting can show it: the daemon looks for
    // due deliveries every 100 ms when idle, so 1 s is ten claims that had to pass this endpoint by.
    await sleep(1_000);

    assert.equal(receiver.hits.length, 0, "nothing was sent");
    const { rows: deliveries } = await h.db.pool.query<{ state: string; attempts: number }>(
      "select state, attempts from webhooks.deliveries where webhook_id = $1",
      [hook.id],
    );
    assert.deepEqual(deliveries, Array(5).fill({ state: "pending", attempts: 0 }));
    assert.equal(await count("select count(*)::int as n from webhooks.webhook_logs where webhook_id = $1", [hook.id]), 0, "no log rows");
    assert.equal(
      await count("select count(*)::int as n from webhooks.delivery_queue where webhook_id = $1 and claimed_by is null", [hook.id]),
      5,
      "the 5 deliveries are queued and unclaimed",
    );

    // The application unpauses its endpoint.
    await asTenant(h.app.pool, org, (client) => client.query("update webhooks.webhook_configurations set paused = false where id = $1", [hook.id]));
    await allSucceeded(hook.id, 5);
    assertEachReceivedOnce(receiver.hits, contacts);
    const { rows: attempts } = await h.db.pool.query<{ attempts: number }>("select attempts from webhooks.deliveries where webhook_id = $1", [hook.id]);
    assert.deepEqual(attempts, Array(5).fill({ attempts: 1 }), "succeeded at the first attempt: no retry was spent while paused");
    const { rows: logs } = await h.db.pool.query<{ attempt: number; success: boolean }>(
      "select attempt, success from webhooks.webhook_logs where webhook_id = $1",
      [hook.id],
    );
    assert.deepEqual(logs, Array(5).fill({ attempt: 1, success: true }));
    assert.equal(await count("select count(*)::int as n from webhooks.delivery_queue where webhook_id = $1", [hook.id]), 0, "the queue is empty");
  });
});

test("10 failures in a row open the circuit: nothing is sent and no retry is spent while it is open; a successful probe closes it and everything is delivered", async (t) => {
  const EVENTS = 30;
  const org = await createOrganization(h.db.pool);
  const receiver = await gaugedReceiver(() => ({ status: 500 }));
  const hook = await createWebhook(h.db.pool, {
    organizationId: org,
    url: receiver.url,
    events: ["contact.created"],
    max_retries: 25,
    retry_base_seconds: 1,
    max_in_flight: 2,
  });

  await withDaemons(1, {}, async (daemons) => {
    const contacts = await insertContacts(h.db.pool, org, EVENTS);
    const opened = await waitFor("the circuit to open (read as the organization's webhooks_app)", async () => {
      const state = await stateAsApp(org, hook.id);
      return state?.circuit === "open" ? state : undefined;
    });
    assert.equal(opened.organization_id, org);
    assert.equal(opened.circuit_trips, 1);
    assert.ok(opened.circuit_until !== null);

    // The attempts made before the circuit opened have finished and are recorded.
    const logsNow = () => count("select count(*)::int as n from webhooks.webhook_logs where webhook_id = $1", [hook.id]);
    await waitFor("the attempts under way to be over and logged", async () =>
      daemons.every((daemon) => daemon.deliverer.attemptsInFlight === 0) && (await logsNow()) === receiver.hits.length,
    );
    const received = receiver.hits.length;
    const state = (await stateAsApp(org, hook.id))!;
    assert.equal(state.circuit, "open");
    assert.ok(state.consecutive_failures >= 10, `consecutive_failures ${state.consecutive_failures}`);
    assert.equal(state.consecutive_failures, received, "every failure counts");

    // The breaker shows as an absence of requests, so only waiting can show it. The failed
    // deliveries' retries fall due ~1 s after their attempts (retry_base_seconds 1, ±20 %) and
    // the daemon looks every 100 ms: 1.5 s covers them, well inside the circuit's 5 s.
    await sleep(1_500);
    assert.ok(Date.now() < opened.circuit_until!.getTime(), "the circuit is still open (else the check below proves nothing)");
    assert.equal(receiver.hits.length, received, "no request while the circuit is open");
    const { rows: [spent] } = await h.db.pool.query<{ attempts: number; dead: number; due: number }>(
      `select sum(attempts)::int as attempts, count(*) filter (where state = 'dead')::int as dead,
              count(*) filter (where next_attempt_at <= now() or state = 'pending')::int as due
         from webhooks.deliveries where webhook_id = $1`,
      [hook.id],
    );
    t.diagnostic(`requests before the circuit opened: ${received}; consecutive_failures ${state.consecutive_failures}; deliveries due but held: ${spent!.due}`);
    assert.equal(spent!.dead, 0, "no delivery is dead");
    assert.equal(spent!.attempts, received);
    // A failed attempt holds its slot until it is recorded, so the next claim already counts it:
    // at most the 10th failure plus the one other attempt in flight (max_in_flight 2), far below
    // the 30 × 26 attempts the retry budget allows.
    assert.ok(spent!.attempts <= 11, `${spent!.attempts} attempts were made before the circuit held them`);
    const unattempted = await count("select count(*)::int as n from webhooks.deliveries where webhook_id = $1 and attempts = 0 and state = 'pending'", [hook.id]);
    assert.equal(unattempted, EVENTS - new Set(receiver.hits.map((hit) => hit.deliveryId)).size, "the deliveries never attempted wait, pending");
    assert.ok(unattempted > 0, "some deliveries were held back before their first attempt");
    assert.ok(spent!.due > 0, "deliveries were due and held back by the circuit");

    // The endpoint recovers: the probe (once circuit_until passes) succeeds and closes the circuit.
    receiver.answer(() => ({ status: 200 }));
    await waitFor("the circuit to close", async () => (await stateAsApp(org, hook.id))?.circuit === "closed", 20_000);
    await allSucceeded(hook.id, EVENTS, 20_000);
    const closed = (await stateAsApp(org, hook.id))!;
    assert.equal(closed.consecutive_failures, 0);
    assert.equal(closed.circuit_trips, 0);
    const answered200 = new Set(receiver.hits.filter((hit) => hit.status === 200).map((hit) => hit.contactId));
    assert.deepEqual([...answered200].sort(), [...contacts].sort(), "every event was received and answered 200");
    assert.equal(
      await count("select count(distinct delivery_id)::int as n from webhooks.webhook_logs where webhook_id = $1 and success", [hook.id]),
      EVENTS,
    );
  });
});

test("an endpoint that never answers does not hold back another organization's endpoint", async (t) => {
  const [orgA, orgB] = [await createOrganization(h.db.pool, "A"), await createOrganization(h.db.pool, "B")];
  const dead = await gaugedReceiver(() => "never");
  const healthy = await gaugedReceiver(() => ({ status: 200 }));
  const hookA = await createWebhook(h.db.pool, {
    organizationId: orgA,
    url: dead.url,
    events: ["contact.created"],
    timeout_seconds: 1,
    max_retries: 0,
    max_in_flight: 8,
  });
  const hookB = await createWebhook(h.db.pool, { organizationId: orgB, url: healthy.url, events: ["contact.created"] });

  // The daemon may hold 32 attempts: A's backlog could fill it if A's max_in_flight did not hold.
  await withDaemons(1, { WEBHOOKS_CONCURRENCY: "32" }, async () => {
    try {
      await insertContacts(h.db.pool, orgA, 400);
      const contactsB = await insertContacts(h.db.pool, orgB, 20);
      await waitFor("B's 20 events at B's receiver", () => contactsB.every((id) => healthy.hits.some((hit) => hit.contactId === id)), 20_000);
      const aReceived = dead.hits.length;
      const aLogged = await count("select count(*)::int as n from webhooks.webhook_logs where webhook_id = $1", [hookA.id]);
      t.diagnostic(`when B had all 20: A had received ${aReceived} requests, ${aLogged} logged; most open at A at once: ${dead.maxOpen}`);
      assert.ok(aLogged < 400, `B waited for A's backlog (${aLogged} of A's attempts logged first)`);
      // A's attempts go 8 at a time and each takes its 1 s timeout: B did not wait for more than
      // a couple of those rounds (with A's backlog filling the daemon, A would have had 32).
      assert.ok(aReceived <= 3 * 8, `A received ${aReceived} requests before B's 20 arrived`);
      assert.ok(dead.maxOpen <= 8, `${dead.maxOpen} requests were open at A at once`);
      assertEachReceivedOnce(healthy.hits, contactsB);
      await allSucceeded(hookB.id, 20);
    } finally {
      await h.db.pool.query("update webhooks.webhook_configurations set paused = true where id = $1", [hookA.id]);
    }
  });
});

test("one organization's many endpoints that never answer cannot crowd another organization out of the daemon's slots", async (t) => {
  const [orgA, orgB] = [await createOrganization(h.db.pool, "A"), await createOrganization(h.db.pool, "B")];
  const dead = await gaugedReceiver(() => "never");
  const healthy = await gaugedReceiver(() => ({ status: 200 }));
  // Ten endpoints of A, each allowed more than the daemon's 40 slots: together they fill the daemon.
  const hooksA: string[] = [];
  for (let i = 0; i < 10; i++) {
    const hook = await createWebhook(h.db.pool, {
      organizationId: orgA, url: `${dead.url}?endpoint=${i}`, events: ["contact.created"], timeout_seconds: 1, max_retries: 0,
    });
    hooksA.push(hook.id);
  }
  const hookB = await createWebhook(h.db.pool, { organizationId: orgB, url: healthy.url, events: ["contact.created"] });

  await withDaemons(1, { WEBHOOKS_CONCURRENCY: "40" }, async () => {
    try {
      await insertContacts(h.db.pool, orgA, 100);
      await waitFor("A's requests fill the daemon's 40 slots", () => dead.hits.length >= 40);
      const contactsB = await insertContacts(h.db.pool, orgB, 20);
      await waitFor("B's 20 events at B's receiver", () => contactsB.every((id) => healthy.hits.some((hit) => hit.contactId === id)), 20_000);
      const aReceived = dead.hits.length;
      t.diagnostic(`when B had all 20: A's endpoints had received ${aReceived} requests`);
      // A's first 40 time out after 1 s; the slots they free go to B first (B holds none), so all
      // of B's 20 go out in the next claim, before A's second round can fill the daemon again.
      // Served endpoint by endpoint instead, B would get one slot in eleven, A would fill the
      // daemon again, and B would wait for A's second round to time out too.
      assert.ok(aReceived <= 80, `A received ${aReceived} requests (more than two full rounds) before B's 20 arrived`);
      assertEachReceivedOnce(healthy.hits, contactsB);
      await allSucceeded(hookB.id, 20);
    } finally {
      await h.db.pool.query("update webhooks.webhook_configurations set paused = true where id = any ($1::uuid[])", [hooksA]);
    }
  });
});

test("first attempts of fresh events take turns with retries that fell due earlier: neither waits for the other", async (t) => {
  const org = await createOrganization(h.db.pool);
  // Each contact's first attempt fails (500) and its retry succeeds; fewer than 10 failures, so
  // the circuit stays closed.
  const failing = new Set<string>();
  const attempted = new Set<string>();
  const receiver = await gaugedReceiver((hit) => {
    const first = !attempted.has(hit.contactId);
    attempted.add(hit.contactId);
    return { status: first && failing.has(hit.contactId) ? 500 : 200 };
  });
  const hook = await createWebhook(h.db.pool, {
    organizationId: org, url: receiver.url, events: ["contact.created"], max_in_flight: 4, retry_base_seconds: 1, paused: true,
  });
  const setPaused = (paused: boolean) =>
    h.db.pool.query("update webhooks.webhook_configurations set paused = $2 where id = $1", [hook.id, paused]);

  await withDaemons(1, {}, async () => {
    for (const id of await insertContacts(h.db.pool, org, 8)) failing.add(id);
    await setPaused(false);
    await waitFor("8 first attempts failed and were rescheduled", async () =>
      (await count("select count(*)::int as n from webhooks.delivery_queue where webhook_id = $1 and retry", [hook.id])) === 8);
    // Hold the endpoint while the retries fall due, then queue 8 fresh events behind them.
    await setPaused(true);
    const fresh = await insertContacts(h.db.pool, org, 8);
    await waitFor("the retries are due and the fresh deliveries queued", async () =>
      (await count(
        `select count(*) filter (where retry and due_at <= now())::int + count(*) filter (where not retry)::int as n
           from webhooks.delivery_queue where webhook_id = $1`, [hook.id])) === 16, 10_000);
    const before = receiver.hits.length;
    await setPaused(false);
    await allSucceeded(hook.id, 16);

    const order = receiver.hits.slice(before).map((hit) => (fresh.includes(hit.contactId) ? "fresh" : "retry"));
    t.diagnostic(`after unpausing: ${order.join(" ")}`);
    // Strictly by due time, all 8 retries would go first. Taking turns, the first 4 requests
    // (one claim's worth) are 2 and 2.
    const firstRound = order.slice(0, 4);
    assert.ok(firstRound.filter((kind) => kind === "fresh").length >= 2, `first requests after unpausing: ${firstRound.join(", ")}`);
    assert.ok(firstRound.filter((kind) => kind === "retry").length >= 2, `first requests after unpausing: ${firstRound.join(", ")}`);
  });
});

test("a timed-out attempt is one the endpoint received; deliveries held back by the open circuit stay pending", async (t) => {
  const EVENTS = 120;
  const org = await createOrganization(h.db.pool);
  const receiver = await gaugedReceiver(() => "never");
  const hook = await createWebhook(h.db.pool, {
    organizationId: org,
    url: receiver.url,
    events: ["contact.created"],
    timeout_seconds: 1,
    max_retries: 0,
    max_in_flight: 50,
  });

  await withDaemons(1, { WEBHOOKS_CONCURRENCY: "1024" }, async (daemons) => {
    try {
      await insertContacts(h.db.pool, org, EVENTS);
      await waitFor("the circuit to open", async () => (await stateAsApp(org, hook.id))?.circuit === "open", 20_000);
      // The attempts under way when it opened time out within 1 s and are recorded; then nothing
      // more is claimed until circuit_until (5 s).
      await idle(daemons);
      const { rows: logs } = await h.db.pool.query<{ delivery_id: string; error: string | null }>(
        "select delivery_id, error from webhooks.webhook_logs where webhook_id = $1",
        [hook.id],
      );
      const receivedIds = new Set(receiver.hits.map((hit) => hit.deliveryId));
      const timedOut = logs.filter((log) => /^timed out/.test(log.error ?? ""));
      t.diagnostic(`requests received ${receiver.hits.length} (most open at once ${receiver.maxOpen}); logs ${logs.length}, timed out ${timedOut.length}`);
      assert.ok(timedOut.length >= 10, `${timedOut.length} timed-out attempts opened the circuit`);
      assert.deepEqual(logs.filter((log) => !timedOut.includes(log)), [], "every failed attempt timed out");
      assert.ok(timedOut.length <= receiver.hits.length, `${timedOut.length} timeouts, ${receiver.hits.length} requests received`);
      const phantoms = timedOut.filter((log) => !receivedIds.has(log.delivery_id));
      assert.deepEqual(phantoms, [], "every timed-out delivery reached the endpoint");
      assert.ok(receiver.maxOpen <= 50, `${receiver.maxOpen} requests open at once`);
      // A failure frees its slot only once recorded: past the first 50, at most 9 more could start
      // before the 10th failure was counted.
      assert.ok(receiver.hits.length <= 50 + 9, `${receiver.hits.length} requests sent to an endpoint that never answers`);

      const states = await deliveryStates(hook.id);
      const { rows: [unattempted] } = await h.db.pool.query<{ n: number; pending: number }>(
        "select count(*)::int as n, count(*) filter (where state = 'pending')::int as pending from webhooks.deliveries where webhook_id = $1 and attempts = 0",
        [hook.id],
      );
      assert.equal(states.dead, logs.length, "each attempted delivery is dead (max_retries 0)");
      assert.ok(unattempted!.n > 0, "the circuit opened before every delivery was attempted");
      assert.equal(unattempted!.pending, unattempted!.n, "the deliveries not attempted are pending, not dead");
      assert.equal(states.dead + unattempted!.n, EVENTS);
    } finally {
      await h.db.pool.query("update webhooks.webhook_configurations set paused = true where id = $1", [hook.id]);
    }
  });
});

test("a slow endpoint gets more than 128 requests at once when its max_in_flight allows (no per-origin connection cap)", async (t) => {
  const EVENTS = 300;
  const org = await createOrganization(h.db.pool);
  const receiver = await gaugedReceiver(() => ({ status: 200, delayMs: 400 }));
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"], max_in_flight: 300 });

  await withDaemons(1, { WEBHOOKS_CONCURRENCY: "1024" }, async () => {
    const contacts = await insertContacts(h.db.pool, org, EVENTS);
    await allSucceeded(hook.id, EVENTS, 30_000);
    assertEachReceivedOnce(receiver.hits, contacts);
  });
  t.diagnostic(`most requests open at once: ${receiver.maxOpen}`);
  assert.ok(receiver.maxOpen > 128, `at most ${receiver.maxOpen} requests were open at once`);
  assert.ok(receiver.maxOpen <= 300);
  assert.equal(await count("select count(*)::int as n from webhooks.webhook_logs where webhook_id = $1 and success and attempt = 1", [hook.id]), EVENTS);
});

test("an endpoint's endpoint_states row comes with it (active or not) and goes with it, with its published claims and queued deliveries", async () => {
  const [org, other] = [await createOrganization(h.db.pool), await createOrganization(h.db.pool)];
  const receiver = await gaugedReceiver(() => ({ status: 200 }));
  const asOrg = <T>(work: (client: pg.PoolClient) => Promise<T>) => asTenant(h.app.pool, org, work);

  const { rows: [created] } = await asOrg((client) =>
    client.query<{ id: string }>(
      "insert into webhooks.webhook_configurations (organization_id, name, url, events) values ($1, 'hook', $2, '{contact.created}') returning id",
      [org, receiver.url],
    ),
  );
  const id = created!.id;
  assert.deepEqual(await stateAsApp(org, id), { organization_id: org, consecutive_failures: 0, circuit: "closed", circuit_until: null, circuit_trips: 0 });
  assert.equal(await stateAsApp(other, id), undefined, "another organization does not see it");
  const { rows: [inactive] } = await asOrg((client) =>
    client.query<{ id: string }>(
      "insert into webhooks.webhook_configurations (organization_id, name, url, events, is_active) values ($1, 'off', $2, '{contact.created}', false) returning id",
      [org, receiver.url],
    ),
  );
  assert.equal((await stateAsApp(org, inactive!.id))?.circuit, "closed", "an inactive endpoint has its row too");

  await withDaemons(1, {}, async (daemons) => {
    // One delivery goes through, so the daemon publishes its claims for the endpoint …
    await asOrg((client) => client.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]));
    await allSucceeded(id, 1);
    assert.equal(
      await count("select count(*)::int as n from webhooks.endpoint_claims where webhook_id = $1 and daemon_id = $2", [id, daemons[0]!.id]),
      1,
    );
    // … and, paused, it keeps three deliveries queued.
    await asOrg((client) => client.query("update webhooks.webhook_configurations set paused = true where id = $1", [id]));
    await asOrg((client) => client.query("insert into contacts (organization_id, first_name) select $1, 'Ada' from generate_series(1, 3)", [org]));
    await waitFor("3 queued deliveries", async () => (await count("select count(*)::int as n from webhooks.delivery_queue where webhook_id = $1", [id])) === 3);

    // One statement deletes both (the queue rows go with a statement trigger).
    const deleted = await asOrg((client) =>
      client.query("delete from webhooks.webhook_configurations where id = any ($1::uuid[])", [[id, inactive!.id]]),
    );
    assert.equal(deleted.rowCount, 2);
    assert.equal(await stateAsApp(org, id), undefined);
    for (const table of ["endpoint_states", "endpoint_claims", "delivery_queue", "deliveries"]) {
      assert.equal(
        await count(`select count(*)::int as n from webhooks.${table} where webhook_id = any ($1::uuid[])`, [[id, inactive!.id]]),
        0,
        `no ${table} row is left`,
      );
    }
  });
  assert.equal(receiver.hits.length, 1, "only the delivery made before the pause was sent");
});

test("max_in_flight, rate_limit_per_second and paused out of bounds are refused with a check_violation naming the column, and nothing changes", async () => {
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: "https://example.com/hook", max_in_flight: 7, rate_limit_per_second: 3, paused: true });
  const refused: { column: string; value: unknown }[] = [
    { column: "max_in_flight", value: 0 },
    { column: "max_in_flight", value: 1001 },
    { column: "rate_limit_per_second", value: 0 },
    { column: "rate_limit_per_second", value: 20000 },
    { column: "paused", value: null },
  ];
  const snapshot = async () =>
    (await h.db.pool.query("select id, max_in_flight, rate_limit_per_second, paused from webhooks.webhook_configurations where organization_id = $1 order by id", [org]))
      .rows;
  const before = await snapshot();
  assert.deepEqual(before, [{ id: hook.id, max_in_flight: 7, rate_limit_per_second: "3", paused: true }]);

  const refusal = (column: string, value: unknown) => (error: pg.DatabaseError) => {
    assert.equal(error.code, "23514", `${column} = ${String(value)}: ${error.code} ${error.message}`);
    assert.equal(error.column, column);
    assert.match(error.message, new RegExp(column));
    return true;
  };
  for (const { column, value } of refused) {
    await assert.rejects(
      asTenant(h.app.pool, org, (client) =>
        client.query(
          `insert into webhooks.webhook_configurations (organization_id, name, url, events, ${column}) values ($1, 'bad', 'https://example.com/bad', '{*}', $2)`,
          [org, value],
        ),
      ),
      refusal(column, value),
      `insert with ${column} = ${String(value)}`,
    );
    await assert.rejects(
      asTenant(h.app.pool, org, (client) => client.query(`update webhooks.webhook_configurations set ${column} = $2 where id = $1`, [hook.id, value])),
      refusal(column, value),
      `update to ${column} = ${String(value)}`,
    );
  }
  assert.deepEqual(await snapshot(), before, "no row was added or changed");

  // The bounds themselves are allowed.
  for (const [column, value] of [["max_in_flight", 1], ["max_in_flight", 1000], ["rate_limit_per_second", 0.01], ["rate_limit_per_second", 10000], ["rate_limit_per_second", null], ["paused", false]] as const) {
    await asTenant(h.app.pool, org, (client) => client.query(`update webhooks.webhook_configurations set ${column} = $2 where id = $1`, [hook.id, value]));
  }
  assert.deepEqual(await snapshot(), [{ id: hook.id, max_in_flight: 1000, rate_limit_per_second: null, paused: false }]);
});
