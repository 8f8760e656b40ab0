// pg-webhooks admin page: progressive enhancement only. Every page works without this script.
// - forms with data-confirm ask first (delete, rotate);
// - buttons with data-copy copy a value (a new secret);
// - an element with data-live and an id is refreshed every few seconds while the tab is visible
//   (the delivery log), so a test event's attempt shows up without reloading.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  navigator.clipboard?.writeText(button.getAttribute("data-copy") ?? "").then(() => {
    button.textContent = "Copied";
  });
});

for (const live of document.querySelectorAll("[data-live][id]")) {
  const refresh = async () => {
    if (document.hidden) return;
    const response = await fetch(window.location.href, { headers: { accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById(live.id);
    if (fresh) live.innerHTML = fresh.innerHTML;
  };
  window.setInterval(() => void refresh().catch(() => undefined), 3000);
}
