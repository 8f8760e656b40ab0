import pgListen from "pg-listen";
import type { Logger } from "../logger.js";

// pg-listen is CommonJS with `exports.default`; under NodeNext its default import is the module object.
const createSubscriber = pgListen.default;

export const OUTBOX_CHANNEL = "webhooks_outbox";

export interface WakeListener {
  close(): Promise<void>;
}

/**
 * LISTENs on the outbox channel and calls `onWake` for each NOTIFY and after every reconnect
 * (a NOTIFY sent while disconnected is lost; the wake-up makes the dispatcher poll at once).
 * Reconnects forever: pg-listen would give up after 3 s by default.
 */
export async function listenForWakeUps(
  connectionString: string,
  onWake: () => void,
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
  subscriber.notifications.on(OUTBOX_CHANNEL, () => onWake());
  subscriber.events.on("reconnect", (attempt) => logger.warn("LISTEN connection lost; reconnecting", { attempt }));
  subscriber.events.on("connected", () => onWake());
  subscriber.events.on("error", (error) => logger.error("LISTEN connection failed", { error }));
  await subscriber.connect();
  await subscriber.listenTo(OUTBOX_CHANNEL);
  return { close: () => subscriber.close() };
}
