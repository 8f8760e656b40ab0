import type http from "node:http";

export type BodyRead = Buffer | "too large" | "timeout" | "aborted";

/**
 * The raw body; "too large" as soon as it passes `limit` bytes, "timeout" if it has not all
 * arrived within `timeoutMs`, "aborted" if the sender went away. In the first two cases reading
 * stops and what was read is dropped; the caller answers, and the connection is closed.
 */
export function readBody(req: http.IncomingMessage, limit: number, timeoutMs: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (outcome: BodyRead) => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAbort);
      req.off("close", onClose);
      if (typeof outcome === "string") {
        chunks.length = 0;
        req.pause();
      }
      resolve(outcome);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return finish("too large");
      chunks.push(chunk);
    };
    const onEnd = () => finish(Buffer.concat(chunks, size));
    const onAbort = () => finish("aborted");
    const onClose = () => {
      if (!req.complete) onAbort();
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onAbort);
    req.on("close", onClose);
  });
}
