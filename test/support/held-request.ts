import net from "node:net";

/** What came back on a raw connection: a parsed response, or nothing before the connection closed. */
export interface RawAnswer {
  /** null: the connection closed (or was reset) before a complete response arrived. */
  status: number | null;
  headers: Record<string, string>;
  body: string;
  /** The socket error that ended the connection, if any (e.g. ECONNRESET). */
  error?: string;
}

export interface HeldRequest {
  socket: net.Socket;
  /** Settles once a complete response has arrived or the connection has ended. */
  answer: Promise<RawAnswer>;
  /** Resolves once the client is connected (the server may not have accepted it yet). */
  connected: Promise<void>;
  close(): void;
}

/**
 * An HTTP/1.1 request written by hand on its own TCP connection, the way an attacker would: the
 * head, then `body` (which may be shorter than the declared Content-Length), and then nothing —
 * the connection is held open until the server answers or closes it. `head: false` connects and
 * sends nothing at all; `endHead: false` sends the head without the blank line that ends it.
 */
export function heldRequest(
  port: number,
  options: {
    host?: string;
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    head?: false;
    endHead?: false;
  },
): HeldRequest {
  const socket = net.connect(port, options.host ?? "127.0.0.1");
  socket.on("error", () => undefined);
  const connected = new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const answer = new Promise<RawAnswer>((resolve) => {
    let received = Buffer.alloc(0);
    let error: string | undefined;
    const settle = () => resolve(parseResponse(received, error) ?? { status: null, headers: {}, body: received.toString("latin1"), ...(error ? { error } : {}) });
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const parsed = parseResponse(received, undefined);
      if (parsed) {
        resolve(parsed);
        socket.destroy();
      }
    });
    socket.on("error", (failure: NodeJS.ErrnoException) => (error = failure.code ?? failure.message));
    socket.on("close", settle);
  });
  if (options.head !== false) {
    const headers = { host: "127.0.0.1", ...options.headers };
    const head = `${options.method ?? "POST"} ${options.path ?? "/"} HTTP/1.1\r\n` +
      Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("") + (options.endHead === false ? "" : "\r\n");
    socket.write(head);
    if (options.body !== undefined) socket.write(options.body);
  }
  return { socket, answer, connected, close: () => socket.destroy() };
}

/** A complete response with a Content-Length body, else undefined. */
function parseResponse(data: Buffer, error: string | undefined): RawAnswer | undefined {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine, ...lines] = data.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1]);
  if (!status) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers["content-length"] ?? 0);
  const body = data.subarray(end + 4);
  if (body.length < length) return undefined;
  return { status, headers, body: body.subarray(0, length).toString("utf8"), ...(error ? { error } : {}) };
}
