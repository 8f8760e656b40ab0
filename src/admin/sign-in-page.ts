import { html, type Html } from "./html.js";
import { publicPage } from "./layout.js";

/** /admin/sign-in: an API key of the organization (pg-webhooks api-key create). */
export function signInPage(error?: string): Html {
  return publicPage("Sign in", html`
${error && html`<p class="error" role="alert">${error}</p>`}
<form method="post" action="/admin/sign-in" id="sign-in">
  <label for="api_key">API key</label>
  <input type="password" id="api_key" name="api_key" required autocomplete="off" placeholder="pgwh_…" maxlength="200">
  <p class="hint">A key of your organization: <code>pg-webhooks api-key create --organization &lt;id&gt; --name admin</code> prints one.
  The page keeps a session of 12 hours (revoking the key ends it at once); the key itself is not stored in the browser.</p>
  <p><button type="submit" class="primary">Sign in</button></p>
</form>`);
}
