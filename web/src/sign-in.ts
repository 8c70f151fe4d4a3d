// Who the dashboard acts as. With auth on, the server answers nothing without a token: this
// asks for one, keeps it for this tab only (sessionStorage: gone when the tab closes, never
// sent to another origin), shows who is signed in, and tells pages which controls to offer.
import { Code, ConnectError } from "@connectrpc/connect";
import type { WhoAmIResponse } from "../../gen/electd/v1/identity_pb.js";
import { h } from "./dom.js";

const KEY = "electd-token";

/** The token of this tab, if one was given. */
export function token(): string | undefined {
  return sessionStorage.getItem(KEY) ?? undefined;
}

let me: WhoAmIResponse | undefined;

type Role = "viewer" | "candidate" | "admin";
const rank: Record<string, number> = { viewer: 0, candidate: 1, admin: 2 };

/** Whether the signed-in identity holds `role` (or more) on election `name`. */
export function mayAct(role: Role, name: string): boolean {
  if (!me?.authEnabled) return true;
  const needed = rank[role] ?? 2;
  return me.grants.some((g) => (rank[g.role] ?? -1) >= needed && name.startsWith(g.prefix));
}

/**
 * Where the list page may look when the identity cannot view every election: the prefix
 * of its first grant (`?prefix=` then asks the server for those only). Undefined when it
 * can view them all.
 */
export function listablePrefix(): string | undefined {
  if (mayAct("viewer", "")) return undefined;
  return me?.grants[0]?.prefix;
}

/** A refusal about who is calling, in words; undefined for other errors. */
export function explainAccess(error: unknown): string | undefined {
  const e = ConnectError.from(error);
  if (e.code === Code.Unauthenticated) {
    return `Not signed in, or the token is no longer accepted (401 unauthenticated): ${e.rawMessage}. Sign out and sign in again with a valid token.`;
  }
  if (e.code === Code.PermissionDenied) {
    return `Not allowed for ${me?.identity ?? "this identity"} (403 permission denied): ${e.rawMessage}.`;
  }
  return undefined;
}

/**
 * Finds out who this tab is. Resolves once the dashboard may be shown: at once when auth
 * is off or the stored token is accepted, else after a token is given in the form shown
 * in `app`.
 */
export async function signIn(
  app: HTMLElement,
  header: HTMLElement,
  whoAmI: () => Promise<WhoAmIResponse>,
): Promise<void> {
  for (let problem: string | undefined; ; ) {
    if (token() !== undefined || problem === undefined) {
      try {
        me = await whoAmI();
        showIdentity(header, me);
        return;
      } catch (error) {
        const e = ConnectError.from(error);
        if (e.code !== Code.Unauthenticated && e.code !== Code.PermissionDenied) throw error;
        problem =
          token() === undefined
            ? undefined
            : e.code === Code.Unauthenticated
              ? "The server did not accept that token (401 unauthenticated): it is not one the server knows, or it was revoked."
              : `That token's identity may not view elections here (403 permission denied): ${e.rawMessage}.`;
        sessionStorage.removeItem(KEY);
      }
    }
    await askForToken(app, problem);
  }
}

function askForToken(app: HTMLElement, problem: string | undefined): Promise<void> {
  document.title = "Sign in · electd";
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const form = h(
    "form",
    { class: "sign-in", "aria-labelledby": "sign-in-heading" },
    h("h1", { id: "sign-in-heading", tabindex: "-1" }, "Sign in"),
    h(
      "p",
      {},
      "This electd checks who is calling. Paste the token you were given (it stays in this tab only and is forgotten when the tab closes).",
    ),
    ...(problem
      ? [h("p", { class: "feedback error", role: "alert", id: "sign-in-problem" }, problem)]
      : []),
    h("label", { for: "token" }, "Token"),
    input,
    h("p", { class: "buttons" }, h("button", { type: "submit" }, "Sign in")),
  );
  app.replaceChildren(form);
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      resolve();
    });
  });
}

function showIdentity(header: HTMLElement, who: WhoAmIResponse): void {
  header.querySelector("#identity")?.remove();
  if (!who.authEnabled) return;
  const roles = who.grants
    .map((g) => (g.prefix === "" ? g.role : `${g.role} on ${g.prefix}…`))
    .join(", ");
  const signOut = h("button", { type: "button", class: "link" }, "Sign out");
  signOut.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    window.location.reload();
  });
  header.append(
    h(
      "span",
      { class: "identity", id: "identity" },
      "Signed in as ",
      h("strong", {}, who.identity),
      ` (${roles || "no roles"}) `,
      signOut,
    ),
  );
}
