import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import { jsonSchemaTransform, jsonSchemaTransformObject } from "fastify-type-provider-zod";
import type { Pool } from "../db/pool.js";
import { version } from "../package-info.js";
import { answerDatabaseRefusal } from "./api-errors.js";
import { deliveryRoutes } from "./delivery-routes.js";
import { webhookRoutes } from "./webhook-routes.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The organization of the request's API key. */
    organizationId: string;
  }
}

const BEARER = /^Bearer (\S+)$/i;

/**
 * The management API (README "API and admin page"): /api/v1 with an API key per organization
 * (`Authorization: Bearer pgwh_…`, checked by webhooks.authenticate_api_key), its OpenAPI document
 * generated from the routes' zod schemas at /api/v1/openapi.json, and interactive docs at /docs
 * (served from this daemon: no CDN).
 */
export function createApiRoutes(pool: Pool) {
  return async (app: FastifyInstance): Promise<void> => {
    await app.register(swagger, {
      openapi: {
        info: { title: "pg-webhooks management API", version },
        components: { securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "pgwh_… (pg-webhooks api-key create)" } } },
        security: [{ apiKey: [] }],
      },
      transform: jsonSchemaTransform,
      transformObject: jsonSchemaTransformObject,
    });
    await app.register(swaggerUi, { routePrefix: "/docs" });
    app.get("/api/v1/openapi.json", { schema: { hide: true } }, () => app.swagger());

    await app.register(async (api) => {
      api.decorateRequest("organizationId", "");
      api.addHook("onRequest", async (request, reply) => {
        const key = BEARER.exec(request.headers.authorization ?? "")?.[1];
        if (!key) return reply.code(401).send({ error: "missing API key: send Authorization: Bearer <key>" });
        const { rows } = await pool.query<{ organization_id: string }>("select organization_id from webhooks.authenticate_api_key($1)", [key]);
        if (rows.length === 0) return reply.code(401).send({ error: "unknown or revoked API key" });
        request.organizationId = rows[0]!.organization_id;
      });
      // The database's refusals of the request; anything else goes to the server's handler.
      api.setErrorHandler((error, _request, reply) => {
        if (!answerDatabaseRefusal(error, reply)) throw error;
      });
      await api.register(webhookRoutes(pool));
      await api.register(deliveryRoutes(pool));
    }, { prefix: "/api/v1" });
  };
}
