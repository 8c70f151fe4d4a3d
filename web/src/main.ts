// The dashboard's entry: picks the page from the URL and keeps links inside the app, so
// /elections/<name> works as a deep link and on reload (the server answers it with this
// same page).

import { identity } from "./api.js";
import { h } from "./dom.js";
import { electionPage } from "./election-page.js";
import { listPage } from "./list-page.js";
import { listablePrefix, signIn } from "./sign-in.js";

const app = document.getElementById("app") as HTMLElement;
let page: AbortController | undefined;

function route(): void {
  page?.abort();
  page = new AbortController();
  const path = window.location.pathname;
  if (path.startsWith("/elections/")) {
    const encoded = path.slice("/elections/".length);
    let name: string;
    try {
      name = decodeURIComponent(encoded);
    } catch {
      invalidAddress(encoded);
      return;
    }
    if (name) {
      electionPage(app, name, page.signal);
      return;
    }
  }
  if (path === "/" || path === "/index.html") {
    // An identity granted only some names lists those: the whole list would be refused.
    const prefix = listablePrefix();
    const params = new URLSearchParams(window.location.search);
    if (prefix !== undefined && !params.has("prefix") && !params.has("tag")) {
      window.history.replaceState(null, "", `/?${new URLSearchParams({ prefix })}`);
    }
    listPage(app, page.signal);
    return;
  }
  document.title = "Not found · electd";
  app.replaceChildren(
    h("h1", { tabindex: "-1" }, "Page not found"),
    h("p", {}, h("a", { href: "/", "data-link": true }, "All elections")),
  );
}

/** A typed or mangled link whose escapes do not decode to a name (say `%E0%A4%A`). */
function invalidAddress(encoded: string): void {
  document.title = "Not a valid election address · electd";
  app.replaceChildren(
    h(
      "section",
      { class: "not-found" },
      h("h1", { tabindex: "-1" }, "Not a valid election address"),
      h(
        "p",
        {},
        "The address ends in ",
        h("code", {}, encoded),
        ", which is not an election name: its %-escapes do not decode to UTF-8 text. " +
          "Election links carry the name URL-encoded; the link may have been cut short.",
      ),
      h(
        "p",
        { class: "buttons" },
        h("a", { href: "/", "data-link": true, class: "button" }, "All elections"),
      ),
    ),
  );
}

function navigate(url: string): void {
  window.history.pushState(null, "", url);
  route();
  (app.querySelector("h1") as HTMLElement | null)?.focus();
}

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = (event.target as Element).closest<HTMLAnchorElement>("a[data-link]");
  if (!link || link.origin !== window.location.origin) return;
  event.preventDefault();
  navigate(link.href);
});
window.addEventListener("popstate", route);
const header = document.querySelector("header.bar") as HTMLElement;
// Without an answer (the server unreachable) the pages show that and retry on their own.
signIn(app, header, () => identity.whoAmI({})).then(route, route);
