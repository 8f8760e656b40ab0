import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Pool } from "../db/pool.js";
import { EventType, ErrorBody, IdParams, ListQuery, Webhook, WebhookCreate, WebhookList, WebhookUpdate, WebhookWithSecret } from "./schemas.js";
import {
  createWebhook, deleteWebhook, getWebhook, listEventTypes, listWebhooks, rotateSecret, sendTestEvent, updateWebhook,
} from "./webhook-operations.js";

const notFound = (id: string) => ({ error: `no webhook ${id}` });

/**
 * /api/v1/webhooks (README "API and admin page"): each request acts as its key's organization
 * (webhook-operations.ts), so another organization's webhook is simply not there: 404.
 */
export function webhookRoutes(pool: Pool): FastifyPluginAsyncZod {
  return async (app) => {
    const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };

    app.post("/webhooks", { schema: { tags: ["webhooks"], summary: "Create a webhook; the answer has its secret (shown now and on rotate only)", body: WebhookCreate, response: { 201: WebhookWithSecret, ...errors } } },
      async (request, reply) => reply.code(201).send(await createWebhook(pool, request.organizationId, request.body)));

    app.get("/webhooks", { schema: { tags: ["webhooks"], summary: "List webhooks, oldest first", querystring: ListQuery, response: { 200: WebhookList, ...errors } } },
      (request) => listWebhooks(pool, request.organizationId, request.query));

    app.get("/webhooks/:id", { schema: { tags: ["webhooks"], summary: "One webhook", params: IdParams, response: { 200: Webhook, ...errors } } },
      async (request, reply) =>
        (await getWebhook(pool, request.organizationId, request.params.id)) ?? reply.code(404).send(notFound(request.params.id)));

    app.patch("/webhooks/:id", { schema: { tags: ["webhooks"], summary: "Change some of a webhook's settings", params: IdParams, body: WebhookUpdate, response: { 200: Webhook, ...errors } } },
      async (request, reply) =>
        (await updateWebhook(pool, request.organizationId, request.params.id, request.body)) ?? reply.code(404).send(notFound(request.params.id)));

    app.delete("/webhooks/:id", { schema: { tags: ["webhooks"], summary: "Delete a webhook (its queued deliveries go with it)", params: IdParams, response: { 204: z.null(), ...errors } } },
      async (request, reply) =>
        (await deleteWebhook(pool, request.organizationId, request.params.id)) ? reply.code(204).send(null) : reply.code(404).send(notFound(request.params.id)));

    app.post("/webhooks/:id/test", { schema: { tags: ["webhooks"], summary: "Send a webhook.test event to this endpoint", params: IdParams, response: { 202: z.object({ event_id: z.string() }), ...errors } } },
      async (request, reply) => reply.code(202).send({ event_id: await sendTestEvent(pool, request.organizationId, request.params.id) }));

    app.post("/webhooks/:id/rotate-secret", { schema: { tags: ["webhooks"], summary: "A new secret; the old one keeps signing for 24 hours", params: IdParams, response: { 200: z.object({ secret: z.string() }), ...errors } } },
      async (request) => ({ secret: await rotateSecret(pool, request.organizationId, request.params.id) }));

    app.get("/event-types", { schema: { tags: ["event types"], summary: "The event types a webhook may subscribe to", response: { 200: z.object({ data: z.array(EventType) }), ...errors } } },
      async (request) => ({ data: await listEventTypes(pool, request.organizationId) }));
  };
}
