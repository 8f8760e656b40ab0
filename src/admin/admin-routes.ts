import { readFileSync } from "node:fs";
import path from "node:path";
import cookie from "@fastify/cookie";
import formbody from "@fastify/formbody";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { describeRefusal } from "../api/api-errors.js";
import { getDelivery, listDeliveries, recoverWindow, replayDelivery } from "../api/delivery-operations.js";
import { DeliveriesQuery } from "../api/schemas.js";
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
import { errorPage, signInPage } from "./sign-in-page.js";
import { formValue, webhookFromForm, type FormFields } from "./webhook-form.js";
import { secretPage, webhookFormPage, webhookListPage } from "./webhook-pages.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The admin page's session, once its cookie was checked. */
    adminSession: Session | null;
  }
}

/** Confirmations shown after a redirect, by code: the page never shows text taken from the URL. */
const NOTICES: Record<string, string> = {
  saved: "Saved.",
  deleted: "Webhook deleted.",
  test: "Test event queued: its delivery appears below within a few seconds.",
  activated: "Webhook activated.",
  deactivated: "Webhook deactivated: nothing is queued for it until it is active again.",
  paused: "Webhook paused: its deliveries wait until it is resumed.",
  resumed: "Webhook resumed.",
  queued: "Replay queued.",
  "already queued": "This delivery is queued already; it is sent at once.",
  "in flight": "This delivery is being attempted right now.",
  recovered: "Deliveries of the window queued again.",
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
      await admin.register(formbody);
      admin.decorateRequest("adminSession", null);

      const send = (reply: FastifyReply, body: Html, status = 200) =>
        reply.code(status).headers(PAGE_HEADERS).type("text/html; charset=utf-8").send(body.text);
      const context = (request: FastifyRequest, section: Section): PageContext => {
        const notice = (request.query as Record<string, unknown>).notice;
        return { section, csrf: csrfToken(request.adminSession!), notice: typeof notice === "string" ? NOTICES[notice] : undefined };
      };
      const organization = (request: FastifyRequest) => request.adminSession!.organizationId;
      const form = (request: FastifyRequest) => (request.body ?? {}) as FormFields;
      const idParam = (request: FastifyRequest) => {
        const id = (request.params as { id: string }).id;
        return UUID.test(id) ? id : undefined;
      };
      const notFound = (reply: FastifyReply, what: string) => send(reply, errorPage("Not found", `No ${what} here.`, true), 404);

      // A request from another site's page: its Origin (sent by browsers with every POST) is not ours.
      const crossSite = (request: FastifyRequest) => {
        const origin = request.headers.origin;
        if (origin === undefined) return false;
        try {
          return new URL(origin).host !== request.headers.host;
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
        if (status !== undefined && status >= 400 && status < 500) return send(reply, errorPage("Refused", (error as Error).message, true), status);
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
            path: "/admin", httpOnly: true, sameSite: "strict", secure: request.protocol === "https", expires: session.expiresAt,
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
      const refusedForm = async (request: FastifyRequest, reply: FastifyReply, error: unknown, webhookId?: string) => {
        const refusal = describeRefusal(error);
        if (!refusal || refusal.status === 404) throw error;
        const webhook = webhookId ? await getWebhook(pool, organization(request), webhookId) : undefined;
        return send(reply, webhookFormPage(context(request, "webhooks"), await eventTypes(request), { webhook, form: form(request), error: refusal }), refusal.status);
      };

      admin.post("/webhooks", async (request, reply) => {
        const parsed = webhookFromForm(form(request), "create");
        if (!parsed.ok) return refusedForm(request, reply, { code: "22023", message: parsed.error, column: parsed.field });
        try {
          const created = await createWebhook(pool, organization(request), parsed.body);
          return send(reply, secretPage(context(request, "webhooks"), created, created.secret, true), 201);
        } catch (error) {
          return refusedForm(request, reply, error);
        }
      });

      admin.get("/webhooks/:id", async (request, reply) => {
        const id = idParam(request);
        const webhook = id && (await getWebhook(pool, organization(request), id));
        if (!webhook) return notFound(reply, "webhook");
        return send(reply, webhookFormPage(context(request, "webhooks"), await eventTypes(request), { webhook }));
      });

      admin.post("/webhooks/:id", async (request, reply) => {
        const id = idParam(request);
        if (!id) return notFound(reply, "webhook");
        const parsed = webhookFromForm(form(request), "update");
        if (!parsed.ok) return refusedForm(request, reply, { code: "22023", message: parsed.error, column: parsed.field }, id);
        try {
          const updated = await updateWebhook(pool, organization(request), id, parsed.body);
          if (!updated) return notFound(reply, "webhook");
        } catch (error) {
          return refusedForm(request, reply, error, id);
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
        const webhook = id && (await getWebhook(pool, organization(request), id));
        if (!webhook) return notFound(reply, "webhook");
        const secret = await rotateSecret(pool, organization(request), webhook.id);
        return send(reply, secretPage(context(request, "webhooks"), webhook, secret, false));
      });

      admin.post("/webhooks/:id/delete", async (request, reply) => {
        const id = idParam(request);
        if (!id || !(await deleteWebhook(pool, organization(request), id))) return notFound(reply, "webhook");
        return reply.code(303).header("location", "/admin/webhooks?notice=deleted").send();
      });

      admin.post("/webhooks/:id/recover", async (request, reply) => {
        const id = idParam(request);
        if (!id) return notFound(reply, "webhook");
        // datetime-local fields, read as UTC (the form says so).
        const utc = (name: string) => {
          const value = formValue(form(request), name)?.trim();
          if (!value) return undefined;
          if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$/.test(value)) throw Object.assign(new Error(`${name}: not a date and time`), { statusCode: 400 });
          return `${value}Z`;
        };
        const since = utc("since");
        if (!since) throw Object.assign(new Error("since: required"), { statusCode: 400 });
        const queued = await recoverWindow(pool, organization(request), id, { since, until: utc("until") });
        return reply.code(303).header("location", `/admin/deliveries?webhook_id=${id}&notice=recovered&queued=${queued}`).send();
      });

      admin.get("/deliveries", async (request, reply) => {
        const query = request.query as Record<string, unknown>;
        const blank = (value: unknown) => (value === "" ? undefined : value);
        const filter = DeliveriesQuery.safeParse({ status: blank(query.status), event_type: blank(query.event_type), cursor: blank(query.cursor), limit: 50 });
        const webhookId = typeof query.webhook_id === "string" && UUID.test(query.webhook_id) ? query.webhook_id : undefined;
        if (!filter.success || (blank(query.webhook_id) !== undefined && !webhookId)) {
          return send(reply, errorPage("Refused", "These filters are not valid.", true), 400);
        }
        const [page, webhooks, types] = await Promise.all([
          listDeliveries(pool, organization(request), webhookId ?? null, filter.data),
          listWebhooks(pool, organization(request), { limit: 100 }),
          eventTypes(request),
        ]);
        const pageContext = context(request, "deliveries");
        if (query.notice === "recovered") pageContext.notice = `${Number(query.queued) || 0} failed or dead deliveries of the window queued again.`;
        return send(reply, deliveryLogPage(pageContext, { ...filter.data, webhook_id: webhookId }, page.data, page.next_cursor, webhooks.data, types.map((t) => t.name)));
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
