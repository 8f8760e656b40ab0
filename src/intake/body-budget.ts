/**
 * Memory for intake bodies being received, shared by every request of one daemon
 * (WEBHOOKS_INTAKE_BODY_MEMORY_MB): a request reserves its Content-Length (1 MiB when chunked)
 * before a byte is read, and gives it back when its answer is done. A request that does not fit is
 * refused unread, so bodies never hold more than the budget however many senders there are.
 */
export class BodyBudget {
  private reserved = 0;

  constructor(readonly limitBytes: number) {}

  /** Bytes reserved right now. */
  get inFlight(): number {
    return this.reserved;
  }

  /** Reserves `bytes` if they fit; false (nothing reserved) if not. */
  tryReserve(bytes: number): boolean {
    if (this.reserved + bytes > this.limitBytes) return false;
    this.reserved += bytes;
    return true;
  }

  release(bytes: number): void {
    this.reserved = Math.max(0, this.reserved - bytes);
  }
}
