import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import { createEvent, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { LoginRole } from "../support/login-roles.js";

// The SECURITY DEFINER functions an application may call act for the caller's organization. Who
// the caller is, is the role whose privileges the session runs with — the role of SET [LOCAL]
// ROLE, else the session user — never the login alone: a superuser pool that does
// `set local role webhooks_app` is an application, and must get exactly what a login that is
// only a member of webhooks_app gets, however it got there (webhooks._assert_tenant in
// sql/000012_tenant_hardening.sql).

const h = useHarness({ app: true, twoOrganizations: true });
let hookB: string;
let deliveryB: string;
/** Two set-aside rows of B's: one to release, one to discard. */
let setAsideB: [number, number];
let secretB: string;
/** A login in both group roles, which may choose to act as either. */
let both: LoginRole;

h.before(async () => {
  const hook = await createWebhook(h.db.pool, { organizationId: h.orgB, url: "https://b.example.com/hook" });
  hookB = hook.id;
  secretB = hook.secret;
  const eventId = await createEvent(h.db.pool, h.orgB);
  deliveryB = (await h.db.pool.query<{ id: string }>(
    `insert into webhooks.deliveries (organization_id, event_id, webhook_id, state, attempts, completed_at)
     values ($1, $2, $3, 'dead', 1, now()) returning id`,
    [h.orgB, eventId, hookB],
  )).rows[0]!.id;
  const { rows: setAside } = await h.db.pool.query<{ id: number }>(
    `insert into webhooks.outbox_set_aside (id, event_id, organization_id, event_type, data, occurred_at, error)
     select id, gen_random_uuid(), $1, 'contact.created', '{}', now(), 'a test row' from unnest(array[424242, 424243]) id
     returning id`,
    [h.orgB],
  );
  setAsideB = [setAside[0]!.id, setAside[1]!.id];
  both = await h.roles.create("webhooks_dispatcher");
  await h.db.pool.query(`grant webhooks_app to ${both.name}`);
  // A function the superuser owns that runs any statement as its owner: a definer chain in
  // front of the webhooks functions.
  await h.db.pool.query(`
    create function public.as_owner(statement text) returns text
    language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
    declare
      result text;
    begin
      execute statement into result;
      return result;
    end
    $$;
    grant execute on function public.as_owner(text) to webhooks_app;
  `);
});

/** Every definer function an application may call, each acting on organization B's objects. */
function calls(): Record<string, string> {
  return {
    rotate_secret: `select webhooks.rotate_secret('${hookB}')::text`,
    emit: `select webhooks.emit('${h.orgB}', 'zoom.recording.completed', '{}')::text`,
    send_test: `select webhooks.send_test('${hookB}')::text`,
    replay: `select webhooks.replay('${deliveryB}')::text`,
    replay_dead: `select webhooks.replay_dead('${hookB}')::text`,
    release_set_aside: `select webhooks.release_set_aside(${setAsideB[0]})::text`,
    discard_set_aside: `select webhooks.discard_set_aside(${setAsideB[1]})::text`,
  };
}

type Outcome = string;

/** One way of being the application: connects, becomes the role, runs `work` in a transaction. */
interface Path {
  name: string;
  run(tenant: string | null, work: (client: pg.ClientBase) => Promise<void>, commit: boolean): Promise<void>;
  /** Wraps each call (the definer chain). */
  wrap?: (statement: string) => string;
}

async function inTransaction(client: pg.ClientBase, tenant: string | null, prelude: string[], work: (client: pg.ClientBase) => Promise<void>, commit: boolean) {
  await client.query("begin");
  try {
    for (const statement of prelude) await client.query(statement);
    if (tenant !== null) await client.query("select set_config('app.organization_id', $1, true)", [tenant]);
    await work(client);
  } finally {
    await client.query(commit ? "commit" : "rollback");
  }
}

async function superuser<T>(use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: h.db.url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

function paths(): Path[] {
  return [
    {
      name: "a login that is a member of webhooks_app",
      run: async (tenant, work, commit) => {
        const client = await h.app.pool.connect();
        try {
          await inTransaction(client, tenant, [], work, commit);
        } finally {
          client.release();
        }
      },
    },
    {
      name: "a superuser after `set local role webhooks_app`",
      run: (tenant, work, commit) => superuser((client) => inTransaction(client, tenant, ["set local role webhooks_app"], work, commit)),
    },
    {
      name: "a superuser after `set role webhooks_app`",
      run: (tenant, work, commit) =>
        superuser(async (client) => {
          await client.query("set role webhooks_app");
          await inTransaction(client, tenant, [], work, commit);
        }),
    },
    {
      name: "a superuser after `set session authorization` to an application login",
      run: (tenant, work, commit) =>
        superuser(async (client) => {
          await client.query(`set session authorization ${h.app.name}`);
          await inTransaction(client, tenant, [], work, commit);
        }),
    },
    {
      name: "a login in webhooks_app and webhooks_dispatcher after `set role webhooks_app`",
      run: async (tenant, work, commit) => {
        const client = await both.pool.connect();
        try {
          await client.query("set role webhooks_app");
          await inTransaction(client, tenant, [], work, commit);
          await client.query("reset role");
        } finally {
          client.release();
        }
      },
    },
    {
      name: "a superuser after `set local role webhooks_app`, through a superuser's SECURITY DEFINER function",
      run: (tenant, work, commit) => superuser((client) => inTransaction(client, tenant, ["set local role webhooks_app"], work, commit)),
      wrap: (statement) => `select public.as_owner('${statement.replace(/'/g, "''")}')`,
    },
  ];
}

/** Runs every call in its own savepoint; each outcome is "ok" or the error's code and message. */
async function outcomes(path: Path, tenant: string | null, commit: boolean): Promise<Record<string, Outcome>> {
  const seen: Record<string, Outcome> = {};
  await path.run(tenant, async (client) => {
    for (const [name, statement] of Object.entries(calls())) {
      await client.query("savepoint call");
      try {
        await client.query(path.wrap ? path.wrap(statement) : statement);
        seen[name] = "ok";
        await client.query("release savepoint call");
      } catch (error) {
        const { code, message } = error as pg.DatabaseError;
        seen[name] = `${code}: ${message}`;
        await client.query("rollback to savepoint call");
      }
    }
  }, commit);
  return seen;
}

/** Organization B's objects as the superuser sees them: any change would show here. */
async function stateOfB(): Promise<unknown> {
  const { rows } = await h.db.pool.query(
    `select (select secret from webhooks.webhook_configurations where id = $1) as secret,
            (select count(*)::int from webhooks.outbox) as outbox,
            (select state from webhooks.deliveries where id = $2) as delivery,
            (select count(*)::int from webhooks.delivery_queue) as queued,
            (select count(*)::int from webhooks.outbox_set_aside where id = any ($3::bigint[])) as set_aside`,
    [hookB, deliveryB, setAsideB],
  );
  return rows[0];
}

test("without an organization set, every path to the application role is refused by every function, like the plain application login", async () => {
  const before = await stateOfB();
  assert.deepEqual(before, { secret: secretB, outbox: 0, delivery: "dead", queued: 0, set_aside: 2 });
  const [reference, ...others] = paths();
  const expected = await outcomes(reference!, null, true);
  for (const [name, outcome] of Object.entries(expected)) {
    assert.match(outcome, new RegExp(`^42501: webhooks\\.${name}: no organization set for this transaction$`), name);
  }
  for (const path of others) {
    assert.deepEqual(await outcomes(path, null, true), expected, path.name);
  }
  assert.deepEqual(await stateOfB(), before, "organization B's secret, outbox, delivery and set-aside row are untouched");
});

test("with organization A set, every path gets organization B's objects answered as missing, like the plain application login", async () => {
  const before = await stateOfB();
  const [reference, ...others] = paths();
  const expected = await outcomes(reference!, h.orgA, true);
  assert.match(expected.emit!, /^42501: webhooks\.emit: organization .* is not the organization of this transaction$/);
  for (const name of ["rotate_secret", "send_test", "replay", "replay_dead", "release_set_aside", "discard_set_aside"]) {
    assert.match(expected[name]!, /^P0002: webhooks\.\w+: no /, name);
  }
  for (const path of others) {
    assert.deepEqual(await outcomes(path, h.orgA, true), expected, path.name);
  }
  assert.deepEqual(await stateOfB(), before);
});

test("with organization B set, every path acts for B like the plain application login (rolled back)", async () => {
  const before = await stateOfB();
  for (const path of paths()) {
    const seen = await outcomes(path, h.orgB, false);
    assert.deepEqual(Object.values(seen), Object.values(calls()).map(() => "ok"), `${path.name}: ${JSON.stringify(seen)}`);
  }
  assert.deepEqual(await stateOfB(), before);
});

test("the roles that act for every organization still do without a setting: a superuser as itself, and the dispatcher (rolled back)", async () => {
  const asThemselves: Path[] = [
    { name: "a superuser", run: (tenant, work, commit) => superuser((client) => inTransaction(client, tenant, [], work, commit)) },
    {
      name: "a login in webhooks_app and webhooks_dispatcher, acting as itself",
      run: async (tenant, work, commit) => {
        const client = await both.pool.connect();
        try {
          await inTransaction(client, tenant, [], work, commit);
        } finally {
          client.release();
        }
      },
    },
    {
      name: "a superuser after `set local role webhooks_dispatcher`",
      run: (tenant, work, commit) => superuser((client) => inTransaction(client, tenant, ["set local role webhooks_dispatcher"], work, commit)),
    },
  ];
  for (const path of asThemselves) {
    const seen = await outcomes(path, null, false);
    assert.deepEqual(Object.values(seen), Object.values(calls()).map(() => "ok"), `${path.name}: ${JSON.stringify(seen)}`);
  }
});

test("a login that must SET ROLE to use webhooks_dispatcher's privileges (NOINHERIT) acts for every organization only once it has", async () => {
  // A member of webhooks_dispatcher that does not inherit its privileges, granted the functions
  // themselves (as a deployer might grant a login directly): as itself it has the dispatcher's
  // membership but not its privileges, so row-level security would not show it other
  // organizations' rows, and the functions do not act for them either.
  const noinherit = await h.roles.create("webhooks_dispatcher");
  // Granted again after NOINHERIT: from PostgreSQL 16 a grant keeps the inheritance its member had
  // when it was made, so the first grant (made while it inherited) would still pass privileges on.
  await h.db.pool.query(`alter role ${noinherit.name} noinherit;
    revoke webhooks_dispatcher from ${noinherit.name}; grant webhooks_dispatcher to ${noinherit.name};
    grant usage on schema webhooks to ${noinherit.name};
    grant execute on function webhooks.rotate_secret(uuid), webhooks.emit(uuid, text, jsonb), webhooks.send_test(uuid),
      webhooks.replay(uuid), webhooks.replay_dead(uuid), webhooks.release_set_aside(bigint), webhooks.discard_set_aside(bigint)
      to ${noinherit.name}`);
  const run = (prelude: string[]): Path["run"] => async (tenant, work, commit) => {
    const client = await noinherit.pool.connect();
    try {
      await inTransaction(client, tenant, prelude, work, commit);
    } finally {
      client.release();
    }
  };
  const asItself = await outcomes({ name: "as itself", run: run([]) }, null, false);
  assert.deepEqual(asItself, await outcomes(paths()[0]!, null, false), "like the plain application login");
  const asDispatcher = await outcomes({ name: "after set local role webhooks_dispatcher", run: run(["set local role webhooks_dispatcher"]) }, null, false);
  assert.deepEqual(Object.values(asDispatcher), Object.values(calls()).map(() => "ok"), JSON.stringify(asDispatcher));
});
