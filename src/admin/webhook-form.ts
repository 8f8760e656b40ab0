import type { z } from "zod";
import { WebhookCreate, WebhookUpdate } from "../api/schemas.js";

/** A form as @fastify/formbody parses it: a repeated field (checkboxes) is an array. */
export type FormFields = Record<string, string | string[] | undefined>;

export type FormResult<T> = { ok: true; body: T } | { ok: false; error: string; field: string | null };

/** The last value of a field (a checkbox after its hidden "false" is the last one). */
export function formValue(form: FormFields, name: string): string | undefined {
  const value = form[name];
  return Array.isArray(value) ? value.at(-1) : value;
}

function allValues(form: FormFields, name: string): string[] {
  const value = form[name];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

const blankToUndefined = (value: string | undefined) => (value === undefined || value.trim() === "" ? undefined : value.trim());

/** "" → undefined; anything else a number (NaN where it is none: the schema names the field). */
function numberField(form: FormFields, name: string): number | undefined {
  const value = blankToUndefined(formValue(form, name));
  return value === undefined ? undefined : Number(value);
}

function booleanField(form: FormFields, name: string): boolean | undefined {
  const value = formValue(form, name);
  return value === undefined ? undefined : value === "true" || value === "on";
}

/**
 * A switch the edit form shows (is_active, paused), only when the form changed it: the form
 * carries what it showed (was_<name>), so saving other settings does not undo a change made
 * meanwhile (the circuit breaker disabling the endpoint, say).
 */
function changedBoolean(form: FormFields, name: string): boolean | undefined {
  const value = booleanField(form, name);
  const shown = formValue(form, `was_${name}`);
  return shown !== undefined && String(value) === shown ? undefined : value;
}

class FieldError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

/** "Name: value" per line → an object; blank lines skipped. */
function headersField(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [index, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new FieldError("headers", `headers: line ${index + 1} is not "Name: value"`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** The database keeps a filter of at most 4 KiB: a longer text is refused before it is parsed. */
const MAX_FILTER_TEXT = 4096;

function filterField(text: string): Record<string, unknown> | null {
  if (text.trim() === "") return null;
  if (text.length > MAX_FILTER_TEXT) throw new FieldError("filter", `filter: longer than ${MAX_FILTER_TEXT} characters`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new FieldError("filter", "filter: not JSON (a JSON object such as {\"data\": {\"status\": \"won\"}})");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new FieldError("filter", "filter: must be a JSON object");
  return parsed as Record<string, unknown>;
}

/**
 * The admin page's webhook form as the API's request body, checked by the same zod schema
 * (WebhookCreate or WebhookUpdate) — the same rules, the same field names in its errors. On
 * edit, a blank headers box keeps the headers (their values are never shown); "clear headers"
 * removes them.
 */
export function webhookFromForm(form: FormFields, mode: "create"): FormResult<z.infer<typeof WebhookCreate>>;
export function webhookFromForm(form: FormFields, mode: "update"): FormResult<z.infer<typeof WebhookUpdate>>;
export function webhookFromForm(form: FormFields, mode: "create" | "update"): FormResult<unknown> {
  let candidate: Record<string, unknown>;
  try {
    const events = allValues(form, "all_events").includes("true") ? ["*"] : allValues(form, "events");
    const headersText = formValue(form, "headers") ?? "";
    const clearHeaders = booleanField(form, "clear_headers") === true;
    const rate = blankToUndefined(formValue(form, "rate_limit_per_second"));
    candidate = {
      name: blankToUndefined(formValue(form, "name")),
      url: blankToUndefined(formValue(form, "url")) ?? (mode === "create" ? "" : undefined),
      events,
      max_retries: numberField(form, "max_retries"),
      timeout: numberField(form, "timeout"),
      is_active: changedBoolean(form, "is_active"),
      paused: changedBoolean(form, "paused"),
      signature_scheme: blankToUndefined(formValue(form, "signature_scheme")),
      signature_header: blankToUndefined(formValue(form, "signature_header")),
      ordering: blankToUndefined(formValue(form, "ordering")),
      max_in_flight: numberField(form, "max_in_flight"),
      rate_limit_per_second: rate === undefined ? (mode === "update" ? null : undefined) : Number(rate),
      filter: formValue(form, "filter") === undefined ? undefined : filterField(formValue(form, "filter")!),
      headers: clearHeaders ? {} : headersText.trim() === "" ? undefined : headersField(headersText),
    };
  } catch (error) {
    if (error instanceof FieldError) return { ok: false, error: error.message, field: error.field };
    throw error;
  }
  const defined = Object.fromEntries(Object.entries(candidate).filter(([, value]) => value !== undefined));
  const parsed = (mode === "create" ? WebhookCreate : WebhookUpdate).safeParse(defined);
  if (parsed.success) return { ok: true, body: parsed.data };
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map(String).join(".") || null;
  return { ok: false, error: `${field ?? "form"}: ${issue.message}`, field: field?.split(".")[0] ?? null };
}
