import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Pool } from "../db/pool.js";
import { getDelivery, listDeliveries, recoverWindow, replayDelivery } from "./delivery-operations.js";
import { DeliveriesQuery, DeliveryList, DeliveryWithAttempts, ErrorBody, IdParams, RecoverBody, ReplayAnswer } from "./schemas.js";
import { getWebhook } from "./webhook-operations.js";

/**
 * Deliveries (README "API and admin page"): lists newest first by keyset cursor, one with its
 * attempts, replay, and recovery of a window, each as the key's organization
 * (delivery-operations.ts).
 */
export function deliveryRoutes(pool: Pool): FastifyPluginAsyncZod {
  return async (app) => {
    const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };

    app.get("/webhooks/deliveries", { schema: { tags: ["deliveries"], summary: "Deliveries of every webhook, newest first", querystring: DeliveriesQuery, response: { 200: DeliveryList, ...errors } } },
      (request) => listDeliveries(pool, request.organizationId, null, request.query));

    app.get("/webhooks/:id/deliveries", { schema: { tags: ["deliveries"], summary: "Deliveries of one webhook, newest first", params: IdParams, querystring: DeliveriesQuery, response: { 200: DeliveryList, ...errors } } },
      async (request, reply) => {
        if (!(await getWebhook(pool, request.organizationId, request.params.id))) return reply.code(404).send({ error: `no webhook ${request.params.id}` });
        return listDeliveries(pool, request.organizationId, request.params.id, request.query);
      });

    app.get("/deliveries/:id", { schema: { tags: ["deliveries"], summary: "One delivery with each attempt's request and response", params: IdParams, response: { 200: DeliveryWithAttempts, ...errors } } },
      async (request, reply) =>
        (await getDelivery(pool, request.organizationId, request.params.id)) ?? reply.code(404).send({ error: `no delivery ${request.params.id}` }));

    app.post("/deliveries/:id/replay", { schema: { tags: ["deliveries"], summary: "Send a delivery again (its attempt numbers continue)", params: IdParams, response: { 202: ReplayAnswer, ...errors } } },
      async (request, reply) => reply.code(202).send({ status: await replayDelivery(pool, request.organizationId, request.params.id) }));

    app.post("/webhooks/:id/recover", { schema: { tags: ["deliveries"], summary: "Send again every failed or dead delivery of this webhook created in a window", params: IdParams, body: RecoverBody, response: { 202: z.object({ queued: z.number().int() }), ...errors } } },
      async (request, reply) => reply.code(202).send({ queued: await recoverWindow(pool, request.organizationId, request.params.id, request.body) }));
  };
}
