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

// One refresh at a time: the next is planned when the last one ended, later after a failure.
for (const live of document.querySelectorAll("[data-live][id]")) {
  let delay = 3000;
  const refresh = async () => {
    if (document.hidden) return;
    const response = await fetch(window.location.href, { headers: { accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById(live.id);
    if (fresh) live.innerHTML = fresh.innerHTML;
  };
  const next = () =>
    window.setTimeout(() => {
      refresh().then(
        () => { delay = 3000; },
        () => { delay = Math.min(delay * 2, 60000); },
      ).finally(next);
    }, delay);
  next();
}
