/** Too many callers are waiting already: the caller should answer "busy" (HTTP 503). */
export class OverCapacityError extends Error {
  readonly statusCode = 503;
  constructor(what: string) {
    super(`${what}: too many requests at once; try again shortly`);
    this.name = "OverCapacityError";
  }
}

/**
 * At most `running` calls at once; up to `waiting` more wait their turn in order; beyond that a
 * call fails at once with OverCapacityError. The management API and the admin page share the
 * daemon's pool with delivery: this keeps their share of it bounded, whoever sends requests.
 */
export class ConcurrencyLimit {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly what: string,
    private readonly running: number,
    private readonly waiting: number,
  ) {}

  /** Nothing running or waiting. */
  get idle(): boolean {
    return this.active === 0;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.running) {
      if (this.queue.length >= this.waiting) throw new OverCapacityError(this.what);
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.active++;
    }
    try {
      return await work();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }
}
