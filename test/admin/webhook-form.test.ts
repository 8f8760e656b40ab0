import assert from "node:assert/strict";
import { test } from "node:test";
import { html } from "../../src/admin/html.js";
import { webhookFromForm } from "../../src/admin/webhook-form.js";

// The admin page's pure parts: a form becomes the API's request body under the API's own schema,
// and every value put in a page is escaped.

test("a create form becomes the API's body: checkboxes, numbers, headers, filter; blanks take the defaults", () => {
  const result = webhookFromForm({
    url: " https://example.com/hook ", name: "", events: ["contact.created", "deal.created"], all_events: "false",
    is_active: ["false", "true"], paused: "false", timeout: "15", max_retries: "", headers: "Authorization: Bearer x:y\n\nX-Team: crm",
    filter: "{\"data\": {\"status\": \"won\"}}", rate_limit_per_second: "", signature_scheme: "hmac-hex",
  }, "create");
  assert.deepEqual(result, {
    ok: true,
    body: {
      url: "https://example.com/hook", events: ["contact.created", "deal.created"], is_active: true, paused: false, timeout: 15,
      headers: { Authorization: "Bearer x:y", "X-Team": "crm" }, filter: { data: { status: "won" } }, signature_scheme: "hmac-hex",
    },
  });
});

test("all events is [\"*\"]; on edit, blank headers are left as they are, clear removes them, a blank rate limit removes it", () => {
  const edit = webhookFromForm({ url: "https://example.com/a", events: "contact.created", all_events: ["false", "true"], headers: "", filter: "", rate_limit_per_second: "" }, "update");
  assert.deepEqual(edit, { ok: true, body: { url: "https://example.com/a", events: ["*"], filter: null, rate_limit_per_second: null } });
  const cleared = webhookFromForm({ events: "contact.created", headers: "X: y", clear_headers: "true" }, "update");
  assert.deepEqual(cleared.ok && cleared.body.headers, {});
});

test("a bad field is named, by the same schema as the API's", () => {
  const cases: [Record<string, string>, string][] = [
    [{ url: "https://x.example", events: "contact.created", timeout: "abc" }, "timeout"],
    [{ url: "https://x.example", events: "contact.created", max_retries: "99" }, "max_retries"],
    [{ url: "https://x.example" }, "events"],
    [{ events: "contact.created" }, "url"],
    [{ url: "https://x.example", events: "contact.created", signature_scheme: "md5" }, "signature_scheme"],
    [{ url: "https://x.example", events: "contact.created", filter: "{" }, "filter"],
    [{ url: "https://x.example", events: "contact.created", filter: "\"text\"" }, "filter"],
    [{ url: "https://x.example", events: "contact.created", headers: ": no name" }, "headers"],
  ];
  for (const [form, field] of cases) {
    const result = webhookFromForm(form, "create");
    assert.equal(result.ok, false, JSON.stringify(form));
    if (!result.ok) {
      assert.equal(result.field, field, JSON.stringify(form));
      assert.match(result.error, new RegExp(`^${field}`), result.error);
    }
  }
});

test("html escapes every interpolated value, nests templates as markup, and drops null, undefined and false", () => {
  const name = `<script>alert("x")</script>&'`;
  assert.equal(html`<td title="${name}">${name}</td>`.text,
    `<td title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</td>`);
  assert.equal(html`<ul>${["<a>", "b"].map((item) => html`<li>${item}</li>`)}</ul>`.text, "<ul><li>&lt;a&gt;</li><li>b</li></ul>");
  assert.equal(html`${null}${undefined}${false}${0}`.text, "0");
});
