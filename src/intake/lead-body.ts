/**
 * A signed lead's body, checked before PostgreSQL sees it (README "Inbound leads"): UTF-8, JSON
 * that jsonb can hold, an object with a customer_phone. Pure; every problem is an answer that
 * says what is wrong, never a throw.
 */

/** Deeper JSON is refused: no lead needs it, and jsonb's parser recurses (stack depth). */
export const MAX_JSON_DEPTH = 100;

/** What PostgreSQL's numeric (jsonb's number type) holds: digits before the decimal point, after it. */
export const NUMERIC_MAX_INTEGER_DIGITS = 131_072;
export const NUMERIC_MAX_FRACTION_DIGITS = 16_383;
/** numeric's input refuses exponents this large outright, whatever the digits. */
const NUMERIC_MAX_EXPONENT = 1_073_741_823;

export type LeadBody = { ok: true; text: string; fields: Record<string, unknown> } | { ok: false; error: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function parseLeadBody(raw: Uint8Array): LeadBody {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, error: "body is not valid UTF-8" };
  }
  const problem = jsonbProblem(text);
  if (problem) return { ok: false, error: problem };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: "body is not valid JSON" };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { ok: false, error: "body must be a JSON object" };
  }
  const fields = parsed as Record<string, unknown>;
  if (typeof fields.customer_phone !== "string" || !/\d/.test(fields.customer_phone)) {
    return { ok: false, error: "customer_phone is required (a string with digits)" };
  }
  return { ok: true, text, fields };
}

/**
 * The first reason jsonb would refuse `text` that JSON.parse accepts: nesting deeper than
 * MAX_JSON_DEPTH, or a number numeric cannot hold. One pass; strings are skipped. Text that is not
 * JSON at all gets no answer here (JSON.parse gives it one).
 */
export function jsonbProblem(text: string): string | undefined {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > MAX_JSON_DEPTH) return `JSON nesting deeper than ${MAX_JSON_DEPTH} levels`;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < text.length && /[0-9eE.+-]/.test(text[end]!)) end++;
      if (!numericHolds(text.slice(i, end))) {
        return `number out of range: PostgreSQL's numeric holds at most ${NUMERIC_MAX_INTEGER_DIGITS} digits before the decimal point and ${NUMERIC_MAX_FRACTION_DIGITS} after`;
      }
      i = end - 1;
    }
  }
  return undefined;
}

const JSON_NUMBER = /^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/**
 * Whether PostgreSQL's numeric accepts this JSON number, by its own rules (numeric.c): the
 * exponent below 2^30 in size, the digits after the decimal point (`dscale`, counting the zeros
 * written) at most 16383, the first significant digit at most 131071 places before the point.
 * Not a JSON number: true (not ours to judge).
 */
export function numericHolds(token: string): boolean {
  const match = JSON_NUMBER.exec(token);
  if (!match) return true;
  const [, integer = "", fraction = "", exponentText = "0"] = match;
  const exponentDigits = exponentText.replace(/^[+-]?0*/, "");
  if (exponentDigits.length > 10) return false;
  const exponent = Number(exponentText);
  if (Math.abs(exponent) >= NUMERIC_MAX_EXPONENT) return false;
  if (Math.max(0, fraction.length - exponent) > NUMERIC_MAX_FRACTION_DIGITS) return false;
  const significantInteger = integer.replace(/^0+/, "");
  const significantFraction = fraction.replace(/^0+/, "");
  if (significantInteger === "" && significantFraction === "") return true; // zero
  // Places of the first significant digit before the decimal point (1 for 1.5, 0 for 0.5, -1 for 0.05).
  const places = (significantInteger ? significantInteger.length : significantFraction.length - fraction.length) + exponent;
  return places <= NUMERIC_MAX_INTEGER_DIGITS;
}
