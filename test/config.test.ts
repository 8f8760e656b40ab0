import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../src/config.js";
import { packageRoot } from "../src/package-info.js";

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail(`accepted ${JSON.stringify(env)}`);
}

describe("loadConfig", () => {
  test("an empty environment gives the documented defaults", () => {
    const config = loadConfig({});
    assert.equal(config.port, 8787);
    assert.equal(config.allowPrivateTargets, false);
    assert.equal(config.allowHttp, false);
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.logLevel, "info");
    assert.equal(config.concurrency, 1024);
    assert.equal(config.dbPoolSize, 40);
    assert.equal(config.lockTimeoutMs, 5000);
    assert.equal(config.stallSeconds, 30);
    assert.equal(config.httpHost, undefined, "every interface");
    assert.equal(config.httpMaxConnections, 1000);
    assert.equal(config.httpReadTimeoutMs, 10_000);
    assert.equal(config.intakeBodyMemoryBytes, 64 * 1024 * 1024);
    assert.equal(config.metricsListener, undefined, "/metrics on PORT");
    assert.equal(config.demoEcho, false);
  });

  test("the HTTP listeners' variables are parsed", () => {
    const config = loadConfig({
      WEBHOOKS_HTTP_HOST: "127.0.0.1",
      WEBHOOKS_HTTP_MAX_CONNECTIONS: "50",
      WEBHOOKS_HTTP_READ_TIMEOUT_MS: "2500",
      WEBHOOKS_INTAKE_BODY_MEMORY_MB: "8",
      WEBHOOKS_METRICS_PORT: "9464",
      WEBHOOKS_DEMO_ECHO: "true",
    });
    assert.equal(config.httpHost, "127.0.0.1");
    assert.equal(config.httpMaxConnections, 50);
    assert.equal(config.httpReadTimeoutMs, 2500);
    assert.equal(config.intakeBodyMemoryBytes, 8 * 1024 * 1024);
    assert.deepEqual(config.metricsListener, { host: "127.0.0.1", port: 9464 }, "the metrics listener is on 127.0.0.1 unless told otherwise");
    assert.equal(config.demoEcho, true);
    assert.equal(loadConfig({ WEBHOOKS_HTTP_HOST: "::" }).httpHost, "::");
    assert.deepEqual(loadConfig({ WEBHOOKS_METRICS_PORT: "9464", WEBHOOKS_METRICS_HOST: "10.0.0.5" }).metricsListener, { host: "10.0.0.5", port: 9464 });
  });

  test("the pool size follows WEBHOOKS_CONCURRENCY unless WEBHOOKS_DB_POOL_SIZE sets it", () => {
    assert.equal(loadConfig({ WEBHOOKS_CONCURRENCY: "64" }).dbPoolSize, 10);
    assert.equal(loadConfig({ WEBHOOKS_CONCURRENCY: "1000" }).dbPoolSize, 40);
    assert.equal(loadConfig({ WEBHOOKS_DB_POOL_SIZE: "12" }).dbPoolSize, 12);
    assert.equal(loadConfig({ WEBHOOKS_DB_POOL_SIZE: "12", WEBHOOKS_CONCURRENCY: "1000" }).dbPoolSize, 12);
  });

  test("empty strings count as unset", () => {
    const config = loadConfig({ PORT: "", WEBHOOKS_ALLOW_HTTP: "", DATABASE_URL: "" });
    assert.equal(config.port, 8787);
    assert.equal(config.allowHttp, false);
    assert.equal(config.databaseUrl, undefined);
  });

  test("good values are parsed", () => {
    const config = loadConfig({
      DATABASE_URL: "postgresql://app@db.internal:5432/crm",
      PORT: "9000",
      WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
      WEBHOOKS_ALLOW_HTTP: "1",
      LOG_LEVEL: "debug",
    });
    assert.equal(config.databaseUrl, "postgresql://app@db.internal:5432/crm");
    assert.equal(config.port, 9000);
    assert.equal(config.allowPrivateTargets, true);
    assert.equal(config.allowHttp, true);
    assert.equal(config.logLevel, "debug");
    assert.equal(loadConfig({ WEBHOOKS_ALLOW_HTTP: "false" }).allowHttp, false);
    assert.equal(loadConfig({ WEBHOOKS_ALLOW_HTTP: "0" }).allowHttp, false);
  });

  const badValues: Array<[variable: string, value: string]> = [
    ["PORT", "abc"],
    ["PORT", "70000"],
    ["PORT", "-1"],
    ["PORT", "80.5"],
    ["WEBHOOKS_ALLOW_HTTP", "yes"],
    ["WEBHOOKS_ALLOW_PRIVATE_TARGETS", "enabled"],
    ["DATABASE_URL", "mysql://root:hunter2@db.internal/crm"],
    ["LOG_LEVEL", "loud"],
    ["WEBHOOKS_CONCURRENCY", "100000"],
    ["WEBHOOKS_DB_POOL_SIZE", "1"],
    ["WEBHOOKS_DB_POOL_SIZE", "lots"],
    ["WEBHOOKS_LOCK_TIMEOUT_MS", "50"],
    ["WEBHOOKS_LOCK_TIMEOUT_MS", "5s"],
    ["WEBHOOKS_STALL_SECONDS", "0"],
    ["WEBHOOKS_STALL_SECONDS", "thirty"],
    ["WEBHOOKS_HTTP_HOST", "localhost"],
    ["WEBHOOKS_HTTP_HOST", "256.1.1.1"],
    ["WEBHOOKS_HTTP_MAX_CONNECTIONS", "0"],
    ["WEBHOOKS_HTTP_MAX_CONNECTIONS", "unlimited"],
    ["WEBHOOKS_HTTP_READ_TIMEOUT_MS", "50"],
    ["WEBHOOKS_INTAKE_BODY_MEMORY_MB", "0"],
    ["WEBHOOKS_METRICS_PORT", "70000"],
    ["WEBHOOKS_METRICS_PORT", "8787"],
    ["WEBHOOKS_METRICS_HOST", "127.0.0.9"],
    ["WEBHOOKS_DEMO_ECHO", "2"],
  ];
  for (const [variable, value] of badValues) {
    test(`${variable}=${value} is refused naming ${variable}, without echoing the value`, () => {
      const error = configError({ [variable]: value });
      assert.ok(error.message.includes(variable), error.message);
      assert.equal(error.message.includes(value), false, `value echoed: ${error.message}`);
      assert.deepEqual(
        error.problems.map((problem) => problem.split(/[ :]/)[0]),
        [variable],
        `problems: ${error.problems.join(" | ")}`,
      );
    });
  }

  test("several bad variables are all named at once", () => {
    const error = configError({ PORT: "abc", LOG_LEVEL: "loud", WEBHOOKS_ALLOW_HTTP: "yes" });
    for (const variable of ["PORT", "LOG_LEVEL", "WEBHOOKS_ALLOW_HTTP"]) assert.ok(error.message.includes(variable), error.message);
  });
});

test("`pg-webhooks start` with PORT=abc exits 2 naming PORT, before starting anything", () => {
  const child = spawnSync(process.execPath, [path.join(packageRoot, "dist/src/cli.js"), "start"], {
    env: {
      PATH: process.env.PATH,
      PORT: "abc",
      // Any postgres:// URL: with DATABASE_URL set nothing embedded is started; port 1 is never a server.
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/nothing",
    },
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(child.error, undefined, `did not exit by itself: ${String(child.error)}`);
  assert.equal(child.status, 2, `exit ${child.status}, stderr: ${child.stderr}`);
  assert.match(child.stderr, /PORT/);
  assert.equal(child.stderr.includes("abc"), false, `value echoed: ${child.stderr}`);
  assert.equal(child.stdout, "", "nothing was started or printed");
  assert.doesNotMatch(child.stderr, /ECONNREFUSED|migrat/i, "it tried to reach the database");
});
