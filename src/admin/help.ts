import { readFileSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../package-info.js";
import { html, type Html } from "./html.js";

/** The signature schemes, what each sends, in the words of docs/signatures.md. */
const SCHEMES: { scheme: string; summary: string }[] = [
  { scheme: "standard", summary: "Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature: v1,<base64> over <id>.<timestamp>.<body>, keyed with the base64 after whsec_. Libraries: standardwebhooks, svix." },
  { scheme: "hmac-hex", summary: "<signature_header>: lowercase hex HMAC-SHA256 of the body, keyed with the secret's UTF-8 bytes; x-webhook-timestamp (ISO 8601) is not signed." },
  { scheme: "hmac-prefixed", summary: "<signature_header>: sha256=<hex> of the body (GitHub style), keyed with the secret's UTF-8 bytes; no timestamp." },
  { scheme: "hmac-timestamped", summary: "x-webhook-signature: signature=<hex> over <x-webhook-timestamp>.<body>.<idempotency-key>, keyed with the secret's UTF-8 bytes." },
];

/**
 * The Node verify() of each scheme, taken from docs/signatures.md (where the test suite runs each
 * one against real deliveries): the page shows the code the documentation proves, not a copy.
 */
function nodeSnippets(): Map<string, string> {
  const text = readFileSync(path.join(packageRoot, "docs", "signatures.md"), "utf8");
  const snippets = new Map<string, string>();
  for (const match of text.matchAll(/<!-- snippet: node ([a-z-]+) -->\n```js\n([\s\S]*?)```/g)) snippets.set(match[1]!, match[2]!);
  return snippets;
}

let snippets: Map<string, string> | undefined;

/** On-screen help of the webhooks pages: what each event means, how to verify a signature. */
export function webhookHelp(eventTypes: { name: string; description: string | null }[]): Html {
  snippets ??= nodeSnippets();
  return html`<details id="help-events">
  <summary>What each event means</summary>
  <p>A webhook subscribes to event types, or to all of them (<code>*</code>). Each delivery is a POST whose JSON body has
  <code>id</code> (the event id, the same on every retry), <code>event</code>, <code>timestamp</code>, <code>organization_id</code> and <code>data</code>
  (the row after the change); updates add <code>changes</code>, <code>{column: {"old": …, "new": …}}</code> for each changed column. A receiver answers 2xx within the timeout; anything else is retried
  with backoff up to the webhook's retries, then the delivery is dead (it can still be replayed).</p>
  <div class="table"><table><thead><tr><th>Event</th><th>Sent when</th></tr></thead><tbody>
  ${eventTypes.map((type) => html`<tr><td><code>${type.name}</code></td><td>${type.description ?? ""}</td></tr>`)}
  </tbody></table></div>
</details>
<details id="help-signatures">
  <summary>How to verify a signature</summary>
  <p>Every delivery is signed with HMAC-SHA256 under the webhook's secret (<code>whsec_…</code>, shown when the webhook is created and when
  it is rotated; after a rotation the old secret keeps signing for 24 hours). Verify over the raw body bytes as received, never a
  re-serialized object, and compare in constant time. The scheme is the webhook's <em>signature scheme</em>:</p>
  ${SCHEMES.map(({ scheme, summary }) => html`<h3><code>${scheme}</code></h3><p>${summary}</p>
  ${snippets!.has(scheme) && html`<pre><code>${snippets!.get(scheme)!}</code></pre>`}`)}
</details>`;
}
