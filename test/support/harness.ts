import { after, before as beforeAll } from "node:test";
import type { Daemon } from "../../src/daemon.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { spawnDaemon, startTestDaemon, type DaemonProcess, type StartCommand } from "./daemon.js";
import { createOrganization } from "./fixtures.js";
import { LoginRoles, type LoginRole } from "./login-roles.js";
import { startReceiver, type Receiver, type Responder } from "./receiver.js";

/** Environment overrides for a daemon, on top of `testEnvironment`. */
type Env = Record<string, string>;

export interface HarnessOptions {
  /** A LOGIN role that is a member of webhooks_app only (see LoginRoles). */
  app?: true | { poolSize: number };
  /** A LOGIN role that is a member of webhooks_dispatcher only. */
  dispatcher?: true | { poolSize: number };
  /** Organizations named "A" and "B", made by the superuser. */
  twoOrganizations?: true;
  /** A real HTTP receiver; `responder` decides its answers (200 "ok" when just `true`). */
  receiver?: true | Responder;
  /** The daemon in this process, logged in as the superuser or as the dispatcher login. */
  daemon?: true | { as?: "dispatcher"; env?: Env };
}

/** What every file gets. */
export interface Stage {
  db: TestDatabase;
  /** Makes LOGIN roles beyond `app` and `dispatcher`; drops them, then the database, at the end. */
  roles: LoginRoles;
  /** Another receiver, closed at the end. */
  startReceiver(responder?: Responder): Promise<Receiver>;
  /** Another daemon in this process, on `db` unless `url` (a login role's) says otherwise; stopped at the end. */
  startDaemon(env?: Env, url?: string): Promise<Daemon>;
  /**
   * `pg-webhooks start` (or `npm start`'s script: `command`) as a child process on `db` (or at
   * `url`, a login role's), SIGKILLed at the end (a no-op if already gone); resolves once it is
   * healthy unless `healthy: false`.
   */
  spawnDaemon(env?: Env, url?: string, options?: { healthy?: boolean; command?: StartCommand }): Promise<DaemonProcess>;
  /** Runs `stop` at the end, before whatever was started earlier: last in, first out. */
  defer(stop: () => Promise<unknown>): void;
  /** Registers a `before` hook of the file's own that runs once the harness is set up. */
  before(setUp: () => Promise<unknown>): void;
}

/** What `options` add, each under its option's name. */
interface Parts {
  app: LoginRole;
  dispatcher: LoginRole;
  receiver: Receiver;
  daemon: Daemon;
}

export type Harness<O extends HarnessOptions> = Stage &
  Pick<Parts, keyof O & keyof Parts> &
  (O extends { twoOrganizations: true } ? { orgA: string; orgB: string } : unknown);

/**
 * One test file's stage, the way graphile-worker's helpers keep its tests short:
 *
 *     const h = useHarness({ receiver: true, daemon: true });
 *     test("…", async () => { await h.db.pool.query(…); await waitFor("…", () => h.receiver.requests[0]); });
 *
 * registers node:test `before`/`after` hooks that give the file a migrated database of its own
 * plus what `options` ask for, and stop it all again, last started first. The fields are filled in
 * by `before`: read them inside hooks and tests, never at module level.
 *
 * A file's own set-up goes in `h.before` (it runs once the harness is ready); what it starts
 * there, it hands to `defer`: `after` hooks run in the order they were registered, so a file's
 * own `after` would only run once the database is gone.
 * (`O & HarnessOptions`, not a bare `O`, so that a responder's parameters are typed.)
 */
export function useHarness<O extends HarnessOptions = Record<never, never>>(options: O & HarnessOptions = {} as O): Harness<O> {
  const stops: (() => Promise<unknown>)[] = [];
  // Memoized: Node 20 starts top-level `before` hooks as they are registered, without waiting for
  // the ones registered earlier, so each of the file's own hooks awaits this first.
  let ready: Promise<void> | undefined;
  const setUp = () => (ready ??= setUpStage());
  // db and roles are missing until setUpStage runs, hence the assertion.
  const h = {
    defer(stop) {
      stops.push(stop);
    },
    before(fn) {
      beforeAll(async () => {
        await setUp();
        await fn();
      });
    },
    async startReceiver(responder) {
      const receiver = await startReceiver(responder);
      h.defer(() => receiver.close());
      return receiver;
    },
    async startDaemon(env = {}, url = h.db.url) {
      const daemon = await startTestDaemon(url, env);
      h.defer(() => daemon.stop());
      return daemon;
    },
    async spawnDaemon(env = {}, url = h.db.url, options = {}) {
      const daemon = await spawnDaemon(url, env, options);
      h.defer(() => daemon.kill("SIGKILL"));
      return daemon;
    },
  } as Stage & Partial<Parts> & { orgA?: string; orgB?: string };

  beforeAll(setUp);
  after(async () => {
    for (const stop of stops.reverse()) await stop();
  });
  return h as Harness<O>;

  async function setUpStage(): Promise<void> {
    h.db = await createTestDatabase();
    h.roles = new LoginRoles(h.db);
    h.defer(() => h.roles.dropAll());
    if (options.app) h.app = await h.roles.create("webhooks_app", options.app === true ? {} : options.app);
    if (options.dispatcher) h.dispatcher = await h.roles.create("webhooks_dispatcher", options.dispatcher === true ? {} : options.dispatcher);
    if (options.twoOrganizations) {
      h.orgA = await createOrganization(h.db.pool, "A");
      h.orgB = await createOrganization(h.db.pool, "B");
    }
    if (options.receiver) h.receiver = await h.startReceiver(options.receiver === true ? undefined : options.receiver);
    if (options.daemon) {
      const { as, env = {} } = options.daemon === true ? {} : options.daemon;
      if (as === "dispatcher") h.dispatcher ??= await h.roles.create("webhooks_dispatcher");
      h.daemon = await h.startDaemon(env, as === "dispatcher" ? h.dispatcher!.url : h.db.url);
    }
  }
}
