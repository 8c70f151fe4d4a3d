// The election page: the term (the fencing token), the leader, the ordered queue and the
// tags, live through LeaderElection.Watch; a leadership timeline; per-candidate actions
// and an Enter/Withdraw form, each reporting what the server answered.
import { Code } from "@connectrpc/connect";
import type { Term } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { createCommand, describeError, describeTerm, directory, leaderElection } from "./api.js";
import { h, setText } from "./dom.js";
import { follow } from "./live.js";
import { Timeline } from "./timeline.js";

type Action = "anoint" | "promote" | "demote" | "evict" | "enter" | "withdraw";

const verbs: Record<Action, string> = {
  anoint: "Anoint",
  promote: "Promote",
  demote: "Demote",
  evict: "Evict",
  enter: "Enter",
  withdraw: "Withdraw",
};

const queueActions: readonly Action[] = ["anoint", "promote", "demote", "evict"];
const leaderActions: readonly Action[] = ["demote", "evict"];

function actionButton(action: Action, candidate: string): HTMLButtonElement {
  return h(
    "button",
    {
      type: "button",
      class: `action ${action}`,
      "data-action": action,
      "data-candidate": candidate,
      "aria-label": `${verbs[action]} ${candidate}`,
    },
    verbs[action],
  );
}

function sameTerm(a: Term | undefined, b: Term | undefined): boolean {
  return (
    a !== undefined &&
    b !== undefined &&
    a.term === b.term &&
    a.leader === b.leader &&
    a.candidates.length === b.candidates.length &&
    a.candidates.every((c, i) => c === b.candidates[i])
  );
}

export function electionPage(root: HTMLElement, name: string, signal: AbortSignal): void {
  document.title = `${name} · electd`;
  const back = h(
    "nav",
    { class: "crumbs" },
    h("a", { href: "/", "data-link": true }, "← All elections"),
  );
  const heading = h("h1", { tabindex: "-1", class: "election-name" }, name);
  // Swapped from "Loading…" to the page in place, so a focused heading keeps its focus.
  const body = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  root.replaceChildren(back, heading, body);

  const tags = h("ul", { class: "tag-list", "aria-label": "Tags" });
  const termValue = h("span", { class: "value", id: "term" }, "…");
  const leaderValue = h("span", { class: "value", id: "leader" }, "…");
  const leaderButtons = h("div", { class: "buttons" });
  const feedback = h("p", {
    class: "feedback",
    id: "feedback",
    role: "status",
    "aria-live": "polite",
    "aria-label": "Result of the last action",
  });
  const queueHeading = h("h2", { id: "queue-heading" }, "Queue");
  const queue = h("ol", { class: "queue", "aria-labelledby": "queue-heading" });
  const emptyQueue = h("p", { class: "muted" }, "No candidates waiting.");
  const timeline = new Timeline();
  const candidateInput = h("input", {
    id: "candidate",
    name: "candidate",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "candidate name",
  });
  const form = h(
    "form",
    { class: "enter-form", "aria-labelledby": "form-heading" },
    h("label", { for: "candidate" }, "Candidate"),
    candidateInput,
    h("button", { type: "submit", "data-action": "enter" }, "Enter"),
    h("button", { type: "button", "data-action": "withdraw" }, "Withdraw"),
  );
  const page = h(
    "div",
    { class: "election" },
    tags,
    h(
      "section",
      { class: "summary", "aria-label": "Current term" },
      h(
        "div",
        { class: "card token" },
        h("span", { class: "label", id: "term-label" }, "Fencing token (term)"),
        termValue,
      ),
      h(
        "div",
        { class: "card leader" },
        h("span", { class: "label" }, "Leader"),
        leaderValue,
        leaderButtons,
      ),
    ),
    feedback,
    h("section", { class: "queue-section" }, queueHeading, queue, emptyQueue),
    h(
      "section",
      { "aria-labelledby": "timeline-heading" },
      h("h2", { id: "timeline-heading" }, "Leadership since this page opened"),
      timeline.element,
    ),
    h(
      "section",
      { "aria-labelledby": "form-heading" },
      h("h2", { id: "form-heading" }, "Enter or withdraw a candidate"),
      form,
    ),
  );
  termValue.setAttribute("aria-describedby", "term-label");

  let current: Term | undefined;
  let shown = false;
  const items = new Map<string, HTMLLIElement>();

  function renderQueue(candidates: readonly string[]): void {
    // Moving or removing a focused button drops the focus to <body>; keyboard users keep it.
    const focused = document.activeElement;
    const focusedItem = focused instanceof HTMLButtonElement ? focused.closest("li") : null;
    const focusAt =
      focusedItem?.parentElement === queue ? [...queue.children].indexOf(focusedItem) : -1;
    const wanted = new Set(candidates);
    for (const [candidate, li] of items) {
      if (wanted.has(candidate)) continue;
      li.remove();
      items.delete(candidate);
    }
    // Keyed reorder: a promote or demote moves two items, not the whole list.
    const children = queue.children;
    candidates.forEach((candidate, i) => {
      let li = items.get(candidate);
      if (!li) {
        li = h(
          "li",
          { "data-candidate": candidate },
          h("span", { class: "candidate" }, candidate),
          h("span", { class: "buttons" }, ...queueActions.map((a) => actionButton(a, candidate))),
        );
        items.set(candidate, li);
      }
      if (children[i] !== li) queue.insertBefore(li, children[i] ?? null);
    });
    setText(queueHeading, `Queue (${candidates.length} waiting)`);
    emptyQueue.hidden = candidates.length > 0;
    if (focusAt >= 0 && document.activeElement !== focused) {
      const button = focused as HTMLButtonElement;
      // Still listed: focus it where it went. Gone: the same action on whoever took its place.
      const target = button.isConnected
        ? button
        : queue.children[Math.min(focusAt, queue.children.length - 1)]?.querySelector<HTMLElement>(
            `button[data-action="${button.dataset.action}"]`,
          );
      (target ?? candidateInput).focus({ preventScroll: true });
    }
  }

  // Tags never change after Create; the directory has them, Watch does not. Asked once the
  // watch has shown that the election exists.
  function loadTags(): void {
    void directory.listElections({ namePrefix: name, pageSize: 1 }, { signal }).then(
      (page) => {
        const found = page.elections[0];
        if (found?.name !== name) return;
        tags.replaceChildren(...found.tags.map((tag) => h("li", { class: "tag" }, tag)));
        if (found.tags.length === 0) tags.append(h("li", { class: "muted" }, "no tags"));
      },
      () => {
        // The watch reports connection problems; the tags come with the next visit.
      },
    );
  }

  function render(term: Term): void {
    if (!shown) {
      shown = true;
      body.replaceChildren(page);
      loadTags();
    }
    current = term;
    setText(termValue, String(term.term));
    const leader = term.leader;
    setText(leaderValue, leader === "" ? "No leader" : leader);
    leaderValue.classList.toggle("none", leader === "");
    if (leaderButtons.dataset.candidate !== leader) {
      leaderButtons.dataset.candidate = leader;
      leaderButtons.replaceChildren(
        ...(leader === "" ? [] : leaderActions.map((a) => actionButton(a, leader))),
      );
    }
    renderQueue(term.candidates);
    timeline.record(leader, term.term);
  }

  function notFound(message: string, invalidName: boolean): void {
    document.title = "Not found · electd";
    const retry = h("button", { type: "button" }, "Check again");
    // The router answers popstate by opening the page for the current URL afresh.
    retry.addEventListener("click", () => window.dispatchEvent(new PopStateEvent("popstate")));
    const explanation = invalidName
      ? [
          h("h1", { tabindex: "-1" }, "Not a valid election name"),
          h("p", {}, `The server refused the name: ${message}`),
        ]
      : [
          h("h1", { tabindex: "-1" }, "No such election"),
          h("p", {}, "This server has no election named ", h("strong", {}, name), "."),
          h(
            "p",
            {},
            "Check the spelling, or pick one from the list of all elections. To create it, run:",
          ),
          h("pre", {}, h("code", {}, createCommand(name))),
          h("p", {}, "then check again."),
        ];
    root.replaceChildren(
      back,
      h(
        "section",
        { class: "not-found" },
        ...explanation,
        h(
          "p",
          { class: "buttons" },
          h("a", { href: "/", "data-link": true, class: "button" }, "All elections"),
          retry,
        ),
      ),
    );
    (root.querySelector("h1") as HTMLElement).focus();
  }

  async function act(action: Action, candidate: string, button: HTMLButtonElement | null) {
    const verb = verbs[action];
    const subject = candidate === "" ? "(no name)" : candidate;
    feedback.dataset.kind = "pending";
    setText(feedback, `${verb} ${subject}…`);
    button?.setAttribute("aria-busy", "true");
    const before = current;
    try {
      const { term } = await leaderElection[action]({ id: { name }, candidate });
      feedback.dataset.kind = "ok";
      setText(
        feedback,
        sameTerm(before, term)
          ? `${verb} ${subject}: nothing to change (${describeTerm(term)}).`
          : `${verb} ${subject}: done, ${describeTerm(term)}.`,
      );
    } catch (error) {
      feedback.dataset.kind = "error";
      setText(feedback, `The server refused ${verb} ${subject}: ${describeError(error)}`);
    } finally {
      button?.removeAttribute("aria-busy");
    }
  }

  // One listener for every candidate's buttons: a thousand candidates add no listeners.
  page.addEventListener("click", (event) => {
    const button = (event.target as Element).closest<HTMLButtonElement>("button[data-action]");
    if (!button || button.type === "submit") return;
    const action = button.dataset.action as Action;
    const candidate = button.dataset.candidate ?? candidateInput.value.trim();
    void act(action, candidate, button);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act("enter", candidateInput.value.trim(), form.querySelector("button[type=submit]"));
  });

  const tick = setInterval(() => {
    if (shown) timeline.draw();
  }, 1000);
  signal.addEventListener("abort", () => clearInterval(tick), { once: true });

  follow(
    {
      open: (s) => leaderElection.watch({ id: { name } }, { signal: s }),
      onMessage(response) {
        if (response.term) render(response.term);
      },
      onRefused(error) {
        if (error.code === Code.NotFound || error.code === Code.InvalidArgument) {
          notFound(error.rawMessage, error.code === Code.InvalidArgument);
          return true;
        }
        return false;
      },
    },
    signal,
  );
}
