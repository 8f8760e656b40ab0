import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { findChromium, launchChromium, SCREENSHOT_DIR } from "../support/browser.js";
import { createApiKey } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// The admin page in a real headless Chromium (README "API and admin page"): sign in with an API
// key, create a webhook through the form, click "Send test", and see its attempt in the log with
// status 200. Screenshots of the three pages go to artifacts/screenshots/.

const chromiumPath = findChromium();
const skip = "missing" in chromiumPath ? chromiumPath.missing : false;

const h = useHarness({ receiver: true, daemon: true, twoOrganizations: true });

let base = "";
let key = "";
let browser: Browser | undefined;

h.before(async () => {
  base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  key = await createApiKey(h.db.pool, h.orgA, "admin page");
});
before(async () => {
  if ("path" in chromiumPath) browser = await launchChromium(chromiumPath.path);
});
after(async () => {
  await browser?.close();
});

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

test("sign in, create a webhook through the form, send a test and see its attempt logged with status 200", { skip }, async () => {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const outside: string[] = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(base)) outside.push(request.url());
  });
  try {
    await page.goto(`${base}/admin`);
    assert.equal(new URL(page.url()).pathname, "/admin/sign-in", "not signed in: the sign-in page");
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${base}/admin`);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "pgwh_admin_session");
    assert.ok(session, "a session cookie");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.ok(!cookies.some((c) => c.value.includes(key)), "the key itself is not kept in the browser");
    assert.equal(await page.evaluate("document.cookie"), "", "scripts cannot read the session");

    await page.getByRole("link", { name: "Webhooks", exact: true }).click();
    await page.getByRole("link", { name: "New webhook" }).click();
    await page.getByLabel("URL").fill(`${h.receiver.url.replace(/\/hook$/, "")}/from-the-form`);
    await page.getByLabel("Name", { exact: true }).fill("CRM mirror");
    await page.getByLabel("contact.created").check();
    await page.getByLabel("deal.stage.changed").check();
    await page.getByLabel("Timeout (seconds)").fill("15");
    await page.getByRole("button", { name: "Create webhook" }).click();
    const secret = (await page.locator("#secret").textContent())?.trim() ?? "";
    assert.match(secret, /^whsec_/, "the secret is shown once, on creation");
    const { rows } = await h.db.pool.query("select name, events, timeout_seconds, organization_id, secret from webhooks.webhook_configurations");
    assert.deepEqual(rows, [{ name: "CRM mirror", events: ["contact.created", "deal.stage.changed"], timeout_seconds: 15, organization_id: h.orgA, secret }]);

    await page.getByRole("link", { name: "Back to webhooks" }).click();
    const row = page.locator("tr", { hasText: "CRM mirror" });
    await row.getByRole("button", { name: "Send test" }).click();
    await page.waitForURL(/\/admin\/deliveries\?webhook_id=/);
    assert.match((await page.getByRole("status").textContent()) ?? "", /Test event queued/);
    // The log refreshes itself (admin.js): the attempt's 200 appears without a reload.
    const logged = page.locator("#deliveries tr", { hasText: "webhook.test" });
    await logged.locator(".last-response", { hasText: "200" }).waitFor({ timeout: 30_000 });
    assert.match((await logged.textContent()) ?? "", /succeeded/);
    await waitFor("the test event at the receiver", () => h.receiver.requests.find((r) => r.path === "/from-the-form" && r.headers["x-webhook-event"] === "webhook.test"));
    await shoot(page, "admin-deliveries");

    await logged.getByRole("link").first().click();
    await page.getByText("Attempt 1").waitFor();
    assert.match((await page.locator(".attempt").first().textContent()) ?? "", /webhook\.test[\s\S]*200/, "the attempt's request and response");

    await page.getByRole("link", { name: "Webhooks", exact: true }).click();
    await page.locator("#help-events summary").click();
    await shoot(page, "admin-webhooks");

    await page.getByRole("link", { name: "Dashboard" }).click();
    const endpoint = page.locator("#endpoints tr", { hasText: "CRM mirror" });
    assert.match((await endpoint.textContent()) ?? "", /100\.0 %/, "the dashboard's success rate");
    await shoot(page, "admin-dashboard");

    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
    assert.ok(overflow <= 0, `readable on a phone: the page is ${overflow}px wider than the screen`);
    await shoot(page, "admin-dashboard-phone");

    assert.deepEqual(outside, [], "every asset comes from the daemon");
  } catch (error) {
    await shoot(page, "failure");
    throw error;
  } finally {
    await context.close();
  }
});
