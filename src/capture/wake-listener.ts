import pgListen from "pg-listen";
import type { Logger } from "../logger.js";

// pg-listen is CommonJS with `exports.default`; under NodeNext its default import is the module object.
const createSubscriber = pgListen.default;

export const OUTBOX_CHANNEL = "webhooks_outbox";
/** Deliveries were queued outside a fan-out (webhooks.replay): claimers look at once. */
export const DELIVERIES_CHANNEL = "webhooks_deliveries";

export interface WakeListener {
  close(): Promise<void>;
}

/**
 * LISTENs on each channel and calls its handler for each NOTIFY and after every reconnect
 * (a NOTIFY sent while disconnected is lost; the wake-up makes the dispatcher poll at once).
 * Reconnects forever: pg-listen would give up after 3 s by default.
 */
export async function listenForWakeUps(
  connectionString: string,
  handlers: Record<string, () => void>,
  logger: Logger,
): Promise<WakeListener> {
  const subscriber = createSubscriber(
    { connectionString, application_name: "pg-webhooks:listen" },
    {
      retryLimit: Number.POSITIVE_INFINITY,
      retryTimeout: Number.POSITIVE_INFINITY,
      retryInterval: (attempt: number) => Math.min(5000, 100 * 2 ** Math.min(attempt, 6)),
      paranoidChecking: 10_000,
      parse: (payload: string) => payload,
    },
  );
  const wakeAll = () => Object.values(handlers).forEach((handler) => handler());
  for (const [channel, handler] of Object.entries(handlers)) subscriber.notifications.on(channel, () => handler());
  subscriber.events.on("reconnect", (attempt) => logger.warn("LISTEN connection lost; reconnecting", { attempt }));
  subscriber.events.on("connected", wakeAll);
  subscriber.events.on("error", (error) => logger.error("LISTEN connection failed", { error }));
  await subscriber.connect();
  for (const channel of Object.keys(handlers)) await subscriber.listenTo(channel);
  return { close: () => subscriber.close() };
}
