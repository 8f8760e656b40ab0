import { html, type Html } from "./html.js";
import { publicPage } from "./layout.js";

/** A page for an error outside a form (not found, a refused action), with the way back. */
export function errorPage(title: string, message: string, signedIn: boolean): Html {
  return publicPage(title, html`<p class="error" role="alert">${message}</p>
<p><a href="${signedIn ? "/admin" : "/admin/sign-in"}">${signedIn ? "Back to the dashboard" : "Sign in"}</a></p>`);
}
