import { runIsolatingFailures } from "./isolate-failures.js";

interface Pending<In, Out> {
  item: In;
  resolve: (value: Out) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for queries: items added while a flush is in flight are sent together in the next
 * one. An item added to an idle batcher is flushed on the next turn of the event loop, so a
 * quiet system pays no batching delay and a busy one sends few, large statements.
 *
 * One bad member fails only itself: a batch that fails with an error a member's data can cause
 * is retried in halves (runIsolatingFailures), so the others' results still arrive.
 */
export class Batcher<In, Out> {
  private queue: Pending<In, Out>[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly run: (items: In[]) => Promise<Out[]>,
    private readonly options: { maxBatch: number; maxInFlight: number; lingerMs?: number },
  ) {}

  add(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0 || this.inFlight >= this.options.maxInFlight) return;
    this.scheduled = true;
    const flush = () => {
      this.scheduled = false;
      void this.flush();
    };
    if (this.options.lingerMs && this.queue.length < this.options.maxBatch) setTimeout(flush, this.options.lingerMs);
    else setImmediate(flush);
  }

  private async flush(): Promise<void> {
    if (this.queue.length === 0 || this.inFlight >= this.options.maxInFlight) return;
    const batch = this.queue.splice(0, this.options.maxBatch);
    this.inFlight += 1;
    // What did not fit may go at once in another statement, up to maxInFlight.
    this.schedule();
    try {
      const outcomes = await runIsolatingFailures(batch.map((pending) => pending.item), this.run);
      batch.forEach((pending, index) => {
        const outcome = outcomes[index]!;
        if (outcome.ok) pending.resolve(outcome.value);
        else pending.reject(outcome.error);
      });
    } finally {
      this.inFlight -= 1;
      this.schedule();
    }
  }
}
