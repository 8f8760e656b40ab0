import { readFileSync } from "node:fs";
import path from "node:path";
import cookie from "@fastify/cookie";
import formbody from "@fastify/formbody";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { describeRefusal, type Refusal } from "../api/api-errors.js";
import { getDelivery, listDeliveries, recoverWindow, replayDelivery } from "../api/delivery-operations.js";
import { RequestError } from "../api/request-error.js";
import { DeliveriesQuery, IdParams, RecoverBody } from "../api/schemas.js";
import {
  createWebhook, deleteWebhook, getWebhook, listEventTypes, listWebhooks, rotateSecret, sendTestEvent, updateWebhook,
} from "../api/webhook-operations.js";
import type { Pool } from "../db/pool.js";
import { describeError, type Logger } from "../logger.js";
import { packageRoot } from "../package-info.js";
import { closeSession, csrfToken, csrfTokenMatches, findSession, openSession, SESSION_COOKIE, type Session } from "./admin-session.js";
import { dashboardPage } from "./dashboard-page.js";
import { deliveryLogPage, deliveryPage } from "./delivery-pages.js";
import type { Html } from "./html.js";
import type { PageContext, Section } from "./layout.js";
import type { WebhookView } from "../api/webhook-operations.js";
import { errorPage } from "./error-page.js";
import { signInPage } from "./sign-in-page.js";
import { formValue, webhookFromForm, type FormFields } from "./webhook-form.js";
import { secretPage, webhookFormPage, webhookListPage } from "./webhook-pages.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The admin page's session, once its cookie was checked. */
    adminSession: Session | null;
  }
}

/** Confirmations shown after a redirect, by code: the page never shows text taken from the URL. */
const NOTICES = new Map<string, string>([
  ["saved", "Saved."],
  ["deleted", "Webhook deleted."],
  ["test", "Test event queued: its delivery appears below within a few seconds."],
  ["activated", "Webhook activated."],
  ["deactivated", "Webhook deactivated: nothing is queued for it until it is active again."],
  ["paused", "Webhook paused: its deliveries wait until it is resumed."],
  ["resumed", "Webhook resumed."],
  ["queued", "Replay queued."],
  ["already queued", "This delivery is queued already; it is sent at once."],
  ["in flight", "This delivery is being attempted right now."],
  ["recovered", "The failed and dead deliveries of the window are queued again."],
]);

/** The cookie that carries a new secret from the POST that made it to the one page that shows it. */
const SECRET_COOKIE = "pgwh_admin_secret";

/** A webhook's or delivery's id from the URL, or undefined for anything that is not one. */
const idOf = (value: unknown): string | undefined => (IdParams.safeParse({ id: value }).success ? (value as string) : undefined);

/** Every admin answer: no caching (secrets appear on pages), no framing, scripts and styles from here only. */
const PAGE_HEADERS = {
  "cache-control": "no-store",
  "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
};

const ASSET_TYPES: Record<string, string> = { "admin.css": "text/css; charset=utf-8", "admin.js": "text/javascript; charset=utf-8" };

function readAssets(): Map<string, string> {
  const directory = path.join(packageRoot, "src", "admin", "assets");
  return new Map(Object.keys(ASSET_TYPES).map((name) => [name, readFileSync(path.join(directory, name), "utf8")]));
}

/**
 * The admin page (README "API and admin page"): /admin (dashboard), /admin/webhooks (create,
 * edit, delete, activate, pause, test, rotate, recover), /admin/deliveries (the log and each
 * delivery's attempts, replay), signed in with an API key. Server-rendered HTML whose every value
 * is escaped (html.ts); forms POST with a CSRF token (admin-session.ts); the assets are served from
 * here. Every action is the API's own operation, as the session's organization.
 */
export function createAdminRoutes(pool: Pool, logger: Logger) {
  const assets = readAssets();
  return async (app: FastifyInstance): Promise<void> => {
    await app.register(async (admin) => {
      await admin.register(cookie);
      // Forms only (urlencoded): any other body is a 415, never parsed.
      admin.removeAllContentTypeParsers();
      await admin.register(formbody);
      admin.decorateRequest("adminSession", null);

      const send = (reply: FastifyReply, body: Html, status = 200) =>
        reply.code(status).headers(PAGE_HEADERS).type("text/html; charset=utf-8").send(body.text);
      const context = (request: FastifyRequest, section: Section): PageContext => {
        const notice = (request.query as Record<string, unknown>).notice;
        return { section, csrf: csrfToken(request.adminSession!), notice: typeof notice === "string" ? NOTICES.get(notice) : undefined };
      };
      const organization = (request: FastifyRequest) => request.adminSession!.organizationId;
      const form = (request: FastifyRequest) => (request.body ?? {}) as FormFields;
      const idParam = (request: FastifyRequest) => idOf((request.params as { id: string }).id);
      // Behind a proxy that terminates TLS the daemon sees http: the proxy's X-Forwarded-Proto says https.
      const secure = (request: FastifyRequest) => request.protocol === "https" || request.headers["x-forwarded-proto"] === "https";
      const notFound = (reply: FastifyReply, what: string) => send(reply, errorPage("Not found", `No ${what} here.`, true), 404);

      // A request from another site's page: the browser says so (Sec-Fetch-Site), or, from one that
      // does not send it, its Origin is not this host (the proxy's X-Forwarded-Host, else Host).
      const crossSite = (request: FastifyRequest) => {
        const site = request.headers["sec-fetch-site"];
        if (typeof site === "string") return site !== "same-origin" && site !== "none";
        const origin = request.headers.origin;
        if (origin === undefined) return false;
        try {
          return new URL(origin).host !== (request.headers["x-forwarded-host"] ?? request.headers.host);
        } catch {
          return true;
        }
      };

      admin.addHook("preHandler", async (request, reply) => {
        const route = request.routeOptions.url ?? "";
        if (request.method === "POST" && crossSite(request)) {
          return send(reply, errorPage("Refused", "This form was sent from another site.", false), 403);
        }
        if (route === "/admin/sign-in" || route.startsWith("/admin/assets/")) return;
        request.adminSession = (await findSession(pool, request.cookies[SESSION_COOKIE])) ?? null;
        if (!request.adminSession) return reply.code(303).header("location", "/admin/sign-in").send();
        if (request.method === "POST" && !csrfTokenMatches(request.adminSession, form(request)._csrf)) {
          return send(reply, errorPage("Refused", "This form is stale or was not sent from this page: reload the page and try again.", true), 403);
        }
      });

      admin.setErrorHandler((error, request, reply) => {
        const refusal = describeRefusal(error);
        if (refusal) return send(reply, errorPage(refusal.status === 404 ? "Not found" : "Refused", refusal.error, true), refusal.status);
        const status = (error as { statusCode?: number }).statusCode;
        if (status !== undefined && ((status >= 400 && status < 500) || status === 503)) return send(reply, errorPage("Refused", (error as Error).message, true), status);
        logger.error("admin request failed", { method: request.method, path: request.url.split("?")[0], error: describeError(error) });
        return send(reply, errorPage("Something went wrong", "The request failed; the daemon's log has the details.", true), 500);
      });
      admin.setNotFoundHandler((_request, reply) => send(reply, errorPage("Not found", "There is no such page.", false), 404));

      admin.get("/assets/:name", (request, reply) => {
        const { name } = request.params as { name: string };
        const text = assets.get(name);
        if (text === undefined) return reply.code(404).send({ error: "not found" });
        return reply.headers({ "cache-control": "public, max-age=300", "x-content-type-options": "nosniff" }).type(ASSET_TYPES[name]!).send(text);
      });

      admin.get("/sign-in", (_request, reply) => send(reply, signInPage()));
      admin.post("/sign-in", async (request, reply) => {
        const key = formValue(form(request), "api_key")?.trim() ?? "";
        const session = /^pgwh_[0-9a-f]{64}$/.test(key) ? await openSession(pool, key) : undefined;
        if (!session) return send(reply, signInPage("That is not an API key in use: check it, or create one with pg-webhooks api-key create."), 401);
        return reply
          .setCookie(SESSION_COOKIE, session.token, {
            path: "/admin", httpOnly: true, sameSite: "strict", secure: secure(request), expires: session.expiresAt,
          })
          .code(303).header("location", "/admin").send();
      });
      admin.post("/sign-out", async (request, reply) => {
        await closeSession(pool, request.adminSession!.token);
        return reply.clearCookie(SESSION_COOKIE, { path: "/admin" }).code(303).header("location", "/admin/sign-in").send();
      });

      admin.get("/", async (request, reply) => send(reply, await dashboardPage(pool, organization(request), context(request, "dashboard"))));

      const eventTypes = (request: FastifyRequest) => listEventTypes(pool, organization(request));

      admin.get("/webhooks", async (request, reply) => {
        const cursor = (request.query as { cursor?: unknown }).cursor;
        const { data, next_cursor } = await listWebhooks(pool, organization(request), { limit: 100, cursor: typeof cursor === "string" ? cursor : undefined });
        return send(reply, webhookListPage(context(request, "webhooks"), data, await eventTypes(request), next_cursor));
      });
      admin.get("/webhooks/new", async (request, reply) =>
        send(reply, webhookFormPage(context(request, "webhooks"), await eventTypes(request), {})));

      // A form the database or the schema refuses comes back as typed, with the reason and the field marked.
      const refusedForm = async (request: FastifyRequest, reply: FastifyReply, refusal: Refusal, webhook?: WebhookView) =>
        send(reply, webhookFormPage(context(request, "webhooks"), await eventTypes(request), { webhook, form: form(request), error: refusal }), refusal.status);
      const formRefusal = (parsed: { error: string; field: string | null }): Refusal => ({ status: 400, error: parsed.error, field: parsed.field });
      const refusalOf = (error: unknown): Refusal => {
        const refusal = describeRefusal(error);
        if (!refusal || refusal.status === 404 || refusal.status === 503) throw error;
        return refusal;
      };

      // A new secret is shown once, on a page of its own: the POST that made it redirects there with
      // the secret in a short-lived HttpOnly cookie scoped to that page, which the page clears. A
      // reload shows it no more, and never makes (or rotates) another.
      const showSecret = (request: FastifyRequest, reply: FastifyReply, webhookId: string, secret: string, created: boolean) =>
        reply
          .setCookie(SECRET_COOKIE, secret, {
            path: `/admin/webhooks/${webhookId}/secret`, httpOnly: true, sameSite: "strict", secure: secure(request), maxAge: 300,
          })
          .code(303).header("location", `/admin/webhooks/${webhookId}/secret${created ? "?created=1" : ""}`).send();

      admin.post("/webhooks", async (request, reply) => {
        const parsed = webhookFromForm(form(request), "create");
        if (!parsed.ok) return refusedForm(request, reply, formRefusal(parsed));
        let created;
        try {
          created = await createWebhook(pool, organization(request), parsed.body);
        } catch (error) {
          return refusedForm(request, reply, refusalOf(error));
        }
        return showSecret(request, reply, created.id, created.secret, true);
      });

      admin.get("/webhooks/:id/secret", async (request, reply) => {
        const id = idParam(request);
        const webhook = id && (await getWebhook(pool, organization(request), id));
        if (!webhook) return notFound(reply, "webhook");
        const secret = request.cookies[SECRET_COOKIE];
        reply.clearCookie(SECRET_COOKIE, { path: `/admin/webhooks/${webhook.id}/secret` });
        return send(reply, secretPage(context(request, "webhooks"), webhook, secret, (request.query as { created?: unknown }).created === "1"));
      });

      admin.get("/webhooks/:id", async (request, reply) => {
        const id = idParam(request);
        const webhook = id && (await getWebhook(pool, organization(request), id));
        if (!webhook) return notFound(reply, "webhook");
        return send(reply, webhookFormPage(context(request, "webhooks"), await eventTypes(request), { webhook }));
      });

      admin.post("/webhooks/:id", async (request, reply) => {
        const id = idParam(request);
        const webhook = id && (await getWebhook(pool, organization(request), id));
        if (!webhook) return notFound(reply, "webhook");
        const parsed = webhookFromForm(form(request), "update");
        if (!parsed.ok) return refusedForm(request, reply, formRefusal(parsed), webhook);
        try {
          if (!(await updateWebhook(pool, organization(request), webhook.id, parsed.body))) return notFound(reply, "webhook");
        } catch (error) {
          return refusedForm(request, reply, refusalOf(error), webhook);
        }
        return reply.code(303).header("location", "/admin/webhooks?notice=saved").send();
      });

      // One switch each: active, paused.
      for (const [flag, on, off] of [["is_active", "activated", "deactivated"], ["paused", "paused", "resumed"]] as const) {
        admin.post(`/webhooks/:id/${flag === "is_active" ? "active" : "paused"}`, async (request, reply) => {
          const id = idParam(request);
          const value = formValue(form(request), flag) === "true";
          const updated = id && (await updateWebhook(pool, organization(request), id, { [flag]: value }));
          if (!updated) return notFound(reply, "webhook");
          return reply.code(303).header("location", `/admin/webhooks?notice=${value ? on : off}`).send();
        });
      }

      admin.post("/webhooks/:id/test", async (request, reply) => {
        const id = idParam(request);
        if (!id) return notFound(reply, "webhook");
        await sendTestEvent(pool, organization(request), id);
        return reply.code(303).header("location", `/admin/deliveries?webhook_id=${id}&notice=test`).send();
      });

      admin.post("/webhooks/:id/rotate-secret", async (request, reply) => {
        const id = idParam(request);
        if (!id) return notFound(reply, "webhook");
        return showSecret(request, reply, id, await rotateSecret(pool, organization(request), id), false);
      });

      admin.post("/webhooks/:id/delete", async (request, reply) => {
        const id = idParam(request);
        if (!id || !(await deleteWebhook(pool, organization(request), id))) return notFound(reply, "webhook");
        return reply.code(303).header("location", "/admin/webhooks?notice=deleted").send();
      });

      admin.post("/webhooks/:id/recover", async (request, reply) => {
        const id = idParam(request);
        if (!id) return notFound(reply, "webhook");
        // datetime-local fields (to the minute or the second), read as UTC (the form says so);
        // then the API's own schema of a window.
        const utc = (name: string) => {
          const value = formValue(form(request), name)?.trim();
          return value ? `${value}${/T\d\d:\d\d$/.test(value) ? ":00" : ""}Z` : undefined;
        };
        const window = RecoverBody.safeParse({ since: utc("since"), until: utc("until") });
        if (!window.success) {
          const field = window.error.issues[0]?.path.join(".") || "since";
          throw new RequestError(400, `${field}: not a date and time`, field);
        }
        await recoverWindow(pool, organization(request), id, window.data);
        return reply.code(303).header("location", `/admin/deliveries?webhook_id=${id}&notice=recovered`).send();
      });

      admin.get("/deliveries", async (request, reply) => {
        const query = request.query as Record<string, unknown>;
        const blank = (value: unknown) => (value === "" ? undefined : value);
        const filter = DeliveriesQuery.safeParse({ status: blank(query.status), event_type: blank(query.event_type), cursor: blank(query.cursor), limit: 50 });
        const webhookId = blank(query.webhook_id) === undefined ? undefined : idOf(query.webhook_id);
        if (!filter.success || (blank(query.webhook_id) !== undefined && !webhookId)) {
          return send(reply, errorPage("Refused", "These filters are not valid.", true), 400);
        }
        const chosen = webhookId ? await getWebhook(pool, organization(request), webhookId) : undefined;
        if (webhookId && !chosen) return notFound(reply, "webhook");
        const page = await listDeliveries(pool, organization(request), webhookId ?? null, filter.data);
        const webhooks = (await listWebhooks(pool, organization(request), { limit: 100 })).data;
        if (chosen && !webhooks.some((w) => w.id === chosen.id)) webhooks.push(chosen);
        const types = await eventTypes(request);
        return send(reply, deliveryLogPage(context(request, "deliveries"), { ...filter.data, webhook_id: webhookId }, page.data, page.next_cursor, webhooks, types.map((t) => t.name)));
      });

      admin.get("/deliveries/:id", async (request, reply) => {
        const id = idParam(request);
        const delivery = id && (await getDelivery(pool, organization(request), id));
        if (!delivery) return notFound(reply, "delivery");
        const webhook = await getWebhook(pool, organization(request), delivery.webhook_id);
        return send(reply, deliveryPage(context(request, "deliveries"), delivery, webhook?.name));
      });

      admin.post("/deliveries/:id/replay", async (request, reply) => {
        const id = idParam(request);
        if (!id) return notFound(reply, "delivery");
        const status = await replayDelivery(pool, organization(request), id);
        return reply.code(303).header("location", `/admin/deliveries/${id}?notice=${encodeURIComponent(status)}`).send();
      });
    }, { prefix: "/admin" });
  };
}
