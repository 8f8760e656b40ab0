/**
 * A delivery's partition keys, as the hot path carries them from its claim to its record (pure).
 *
 * deliveries and events are partitioned by time (sql/000017). A statement that finds a row by
 * id and a partition key known only while it runs (from a join, a CTE) is planned against every
 * partition, and each time it runs opens and locks every partition and each one's index, however
 * few rows it reads: its cost grows with the days kept, not with the rows. So the claim hands the
 * daemon each delivery's keys (the queue row holds its delivery's `created_at` and its event's
 * `dispatched_at`), and each statement that reads or writes those rows takes, beside each row's
 * own key, the batch's first and last key as two parameters: `created_at between $first and
 * $last`. When it starts, the executor keeps only the partitions in that range (one, as a rule:
 * a fan-out gives its whole batch one time) and opens only theirs.
 *
 * Not `= any ($keys)`: PostgreSQL 15 prunes by an array parameter only while planning with its
 * value (a custom plan), and planning the record statement each time costs more than the
 * partitions do. A generic plan still locks every partition's table (not its indexes) before it
 * prunes: what is left of the partitions' cost (BENCHMARKS.md, session 6).
 */

/**
 * A timestamptz exactly as Postgres holds it, to the microsecond, as ISO 8601 text in UTC
 * (`exactTimestamp` writes it): a JavaScript Date keeps milliseconds only, and a key rounded to
 * them would find no row.
 */
export type PartitionKey = string;

export interface PartitionKeys {
  /** The delivery's created_at. */
  delivery: PartitionKey;
  /** Its event's dispatched_at. */
  event: PartitionKey;
}

/** SQL writing a timestamptz expression as a PartitionKey, whatever the session's DateStyle and TimeZone. */
export function exactTimestamp(expression: string): string {
  return `to_char(${expression} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/**
 * The first and last of a batch's keys, for `key between $first and $last` (null for an empty
 * batch). Keys are ISO 8601 in UTC, all of one length: their text order is their time order.
 */
export function keyRange(keys: readonly PartitionKey[]): [first: PartitionKey | null, last: PartitionKey | null] {
  let first: PartitionKey | null = null;
  let last: PartitionKey | null = null;
  for (const key of keys) {
    if (first === null || key < first) first = key;
    if (last === null || key > last) last = key;
  }
  return [first, last];
}
