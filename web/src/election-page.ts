// The election page: the term (the fencing token), the leader, the ordered queue and the
// tags, live; a leadership timeline; per-candidate actions
// and an Enter/Withdraw form, each reporting what the server answered; deleting the
// election, after a confirmation. A Watch that ends with not_found after showing the
// election means it was deleted (from here or by anyone else), and the page says so.
//
// One stream for all of it, shared with every other tab (feed-client.ts): the election's
// resumed watch, whose messages carry the state, the tags, which candidates are
// session-bound (by fingerprint; session ids are secrets the browser never sees) and why
// each change happened, so a leader replaced because its session expired is marked on
// the timeline. While any candidate is session-bound the page asks
// GetElectionSessions for the remaining TTLs once a second and counts down in between. A
// session that ended while its candidates' withdrawal is being retried (the store cannot
// commit) shows as EXPIRING or CLOSING until the withdrawal commits.
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Term } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ChangeCause } from "../../gen/electd/v1/directory_pb.js";
import type { Change, WatchElectionResponse } from "../../gen/electd/v1/history_pb.js";
import { SessionState } from "../../gen/electd/v1/session_pb.js";
import {
  admin,
  createCommand,
  describeError,
  describeTerm,
  directory,
  history,
  leaderElection,
} from "./api.js";
import { ChangeLog } from "./change-log.js";
import { showConnection } from "./connection.js";
import { h, setText, tagPath } from "./dom.js";
import { followElection } from "./feed-client.js";
import { mayAct } from "./sign-in.js";
import { type ReignCause, Timeline } from "./timeline.js";

type Action = "anoint" | "promote" | "demote" | "evict" | "enter" | "withdraw";

const verbs: Record<Action, string> = {
  anoint: "Anoint",
  promote: "Promote",
  demote: "Demote",
  evict: "Evict",
  enter: "Enter",
  withdraw: "Withdraw",
};

/** How often remaining TTLs are read while candidates are session-bound. */
const SESSION_POLL_MS = 1000;
/** How often the countdown between two reads is redrawn. */
const COUNTDOWN_MS = 200;

interface SessionTtl {
  readonly fingerprint: string;
  readonly ttlMs: number;
  readonly remainingMs: number;
  readonly state: SessionState;
  /** performance.now() when the server's answer arrived. */
  readonly at: number;
}

/** The badge of a session that ended and whose candidates are still being withdrawn. */
const endingBadges: ReadonlyMap<SessionState, string> = new Map([
  [SessionState.EXPIRING, "EXPIRING"],
  [SessionState.CLOSING, "CLOSING"],
]);

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

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

export function electionPage(root: HTMLElement, name: string, page: AbortSignal): void {
  // Everything this page follows stops when the page closes, or when the election turns
  // out to be gone.
  const stop = new AbortController();
  const signal = stop.signal;
  page.addEventListener("abort", () => stop.abort(), { once: true });
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
  const leaderSession = h("span", { class: "session", id: "leader-session", hidden: true });
  const leaderCause = h("p", { class: "leader-cause", id: "leader-cause", hidden: true });
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
  const changeLog = new ChangeLog();
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
  const deleteButton = h("button", { type: "button", id: "delete" }, "Delete election…");
  const confirmDelete = h("button", { type: "button", class: "danger" }, "Yes, delete it");
  const cancelDelete = h("button", { type: "button" }, "Cancel");
  const confirmation = h(
    "div",
    { class: "confirm", role: "group", "aria-labelledby": "confirm-question", hidden: true },
    h(
      "p",
      { id: "confirm-question" },
      "Delete ",
      h("strong", {}, name),
      " for every client? This cannot be undone.",
    ),
    h("p", { class: "buttons" }, confirmDelete, cancelDelete),
  );
  const deleteFeedback = h("p", {
    class: "feedback",
    id: "delete-feedback",
    role: "status",
    "aria-live": "polite",
  });
  const content = h(
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
        leaderSession,
        leaderCause,
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
      timeline.legend,
    ),
    h(
      "section",
      { "aria-labelledby": "changes-heading" },
      h("h2", { id: "changes-heading" }, "Recent changes and who made them"),
      changeLog.element,
    ),
    h(
      "section",
      { "aria-labelledby": "form-heading", hidden: !mayAct("candidate", name) },
      h("h2", { id: "form-heading" }, "Enter or withdraw a candidate"),
      form,
    ),
    h(
      "section",
      { class: "delete", "aria-labelledby": "delete-heading", hidden: !mayAct("admin", name) },
      h("h2", { id: "delete-heading" }, "Delete this election"),
      h(
        "p",
        {},
        "Drops the leader and every candidate and ends every watch of it. The server keeps " +
          "its last term: created again, it continues from there, so no fencing token is " +
          "handed out twice.",
      ),
      deleteButton,
      confirmation,
      deleteFeedback,
    ),
  );
  termValue.setAttribute("aria-describedby", "term-label");
  // Operator moves (Anoint, Promote, Demote, Evict) are offered to admins only.
  content.classList.toggle("viewer-only", !mayAct("admin", name));

  let current: Term | undefined;
  let shown = false;
  const items = new Map<string, HTMLLIElement>();
  /** Session-bound candidates (candidate -> session fingerprint), live. */
  let bound = new Map<string, string>();
  /** The remaining TTLs last read, per candidate. */
  let ttls = new Map<string, SessionTtl>();
  let polling = false;

  /**
   * "session 1a2b3c4d5e6f · 1.4 s left of 2.0 s", "session 1a2b3c4d5e6f · CLOSING", or
   * undefined without a session.
   */
  function sessionText(candidate: string, now: number): string | undefined {
    const fingerprint = bound.get(candidate);
    if (fingerprint === undefined) return undefined;
    const ttl = ttls.get(candidate);
    if (ttl?.fingerprint !== fingerprint) return `session ${fingerprint}`;
    const ending = endingBadges.get(ttl.state);
    if (ending !== undefined) return `session ${fingerprint} · ${ending}`;
    const left = Math.max(0, ttl.remainingMs - (now - ttl.at));
    return left === 0
      ? `session ${fingerprint} · expiring`
      : `session ${fingerprint} · ${seconds(left)} s left of ${seconds(ttl.ttlMs)} s`;
  }

  function showSession(element: HTMLElement, candidate: string, now: number): void {
    const text = sessionText(candidate, now);
    element.hidden = text === undefined;
    setText(element, text ?? "");
    const ttl = ttls.get(candidate);
    const ending = ttl !== undefined && text !== undefined && endingBadges.has(ttl.state);
    element.classList.toggle("ending", ending);
  }

  /** Queued candidates whose badge shows: with a thousand candidates, few have one. */
  const badged = new Set<string>();

  /** Badges of the leader and of every queued candidate that has (or had) one. */
  function renderSessions(): void {
    const now = performance.now();
    showSession(leaderSession, current?.leader ?? "", now);
    for (const candidate of new Set([...badged, ...bound.keys()])) {
      const badge = items.get(candidate)?.querySelector<HTMLElement>(".session");
      if (!badge) {
        badged.delete(candidate);
        continue;
      }
      showSession(badge, candidate, now);
      if (badge.hidden) badged.delete(candidate);
      else badged.add(candidate);
    }
  }

  function renderCause(): void {
    const why = current && timeline.causeOf(current.leader, current.term);
    leaderCause.hidden = why === undefined;
    setText(leaderCause, why === undefined ? "" : `Took over because ${why}.`);
  }

  async function pollSessions(): Promise<void> {
    if (polling) return;
    polling = true;
    try {
      while (!signal.aborted && bound.size > 0) {
        try {
          const reply = await directory.getElectionSessions({ name }, { signal });
          const at = performance.now();
          ttls = new Map(
            reply.candidates.map((c) => [
              c.candidate,
              {
                fingerprint: c.sessionFingerprint,
                ttlMs: c.ttl ? durationMs(c.ttl) : 0,
                remainingMs: c.remaining ? durationMs(c.remaining) : 0,
                state: c.state,
                at,
              },
            ]),
          );
          renderSessions();
        } catch (error) {
          // The watch reports connection problems; the next read tries again. An election
          // gone (a memory store restarted) has no sessions to read any more.
          if (ConnectError.from(error).code === Code.NotFound) {
            bound = new Map();
            renderSessions();
          }
        }
        await new Promise((resolve) => setTimeout(resolve, SESSION_POLL_MS));
      }
    } finally {
      polling = false;
    }
  }

  /** A reign begun by a session's end is marked so on the timeline. */
  function markCause(change: Change): void {
    const why: ReignCause | undefined =
      change.cause === ChangeCause.SESSION_EXPIRED
        ? "session expired"
        : change.cause === ChangeCause.SESSION_CLOSED
          ? "session closed"
          : undefined;
    if (why === undefined) return;
    if (change.leader === change.leaderBefore && change.term === change.termBefore) return;
    timeline.markCause(change.leader, change.term, why, change.leaderBefore);
  }

  /** What a message with the whole state says besides the term: tags and sessions. */
  function onState(response: WatchElectionResponse): void {
    if (tags.childElementCount === 0) {
      tags.replaceChildren(
        ...response.tags.map((tag) =>
          h("li", {}, h("a", { class: "tag", href: tagPath(tag), "data-link": true }, tag)),
        ),
      );
      if (response.tags.length === 0) tags.append(h("li", { class: "muted" }, "no tags"));
    }
    // `bindings` is a list: a candidate named __proto__ is a name like any other.
    bound = new Map(response.bindings.map((b) => [b.candidate, b.sessionFingerprint]));
    if (bound.size > 0) void pollSessions();
  }

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
          h("span", { class: "session", hidden: true }),
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

  /** Draws the election's kept past on the timeline, before what the page saw live. */
  async function restoreTimeline(): Promise<void> {
    try {
      const { changes } = await history.listHistory({ name, pageSize: 200 }, { signal });
      changeLog.add(changes);
      const why = (cause: ChangeCause): ReignCause | undefined =>
        cause === ChangeCause.SESSION_EXPIRED
          ? "session expired"
          : cause === ChangeCause.SESSION_CLOSED
            ? "session closed"
            : undefined;
      timeline.restore(
        changes.toReversed().map((change) => {
          const cause = why(change.cause);
          return {
            at: change.time ? timestampMs(change.time) : Date.now(),
            term: change.term,
            leader: change.leader,
            cause: cause && { why: cause, after: change.leaderBefore },
          };
        }),
      );
    } catch {
      // The timeline then starts when the page opened, as it would without history.
    }
  }

  function render(term: Term): void {
    if (!shown) {
      shown = true;
      body.replaceChildren(content);
      void restoreTimeline();
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
    renderSessions();
    renderCause();
  }

  /** Replaces the page with an explanation of why there is no election to show. */
  function gone(title: string, explanation: Node[], retryLabel: string | undefined): void {
    stop.abort();
    document.title = `${title} · electd`;
    const retry = retryLabel && h("button", { type: "button" }, retryLabel);
    // The router answers popstate by opening the page for the current URL afresh.
    if (retry) {
      retry.addEventListener("click", () => window.dispatchEvent(new PopStateEvent("popstate")));
    }
    root.replaceChildren(
      back,
      h(
        "section",
        { class: "not-found" },
        h("h1", { tabindex: "-1" }, title),
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

  function notFound(message: string, invalidName: boolean): void {
    if (invalidName) {
      gone(
        "Not a valid election name",
        [h("p", {}, `The server refused the name: ${message}`)],
        "Check again",
      );
      return;
    }
    gone(
      "No such election",
      [
        h("p", {}, "This server has no election named ", h("strong", {}, name), "."),
        h(
          "p",
          {},
          "Check the spelling, or pick one from the list of all elections. To create it, run:",
        ),
        h("pre", {}, h("code", {}, createCommand(name))),
        h("p", {}, "then check again."),
      ],
      "Check again",
    );
  }

  /** The election was deleted while this page showed it: here, or by another client. */
  function deleted(): void {
    if (signal.aborted) return;
    const term = current?.term ?? 0n;
    gone(
      "Election deleted",
      [
        h(
          "p",
          {},
          "The election ",
          h("strong", {}, name),
          deleting ? " was deleted from this page." : " was deleted.",
        ),
        h(
          "p",
          { class: "last-term" },
          `Its last term (fencing token) was ${term}. Created again under this name, it ` +
            `continues from term ${term}, so no fencing token is handed out twice.`,
        ),
      ],
      "Check again",
    );
  }

  /** Set once the person confirmed: the page it leaves for says who deleted it. */
  let deleting = false;

  deleteButton.addEventListener("click", () => {
    deleteButton.hidden = true;
    confirmation.hidden = false;
    setText(deleteFeedback, "");
    // The safe choice under the keyboard first.
    cancelDelete.focus();
  });
  cancelDelete.addEventListener("click", () => {
    confirmation.hidden = true;
    deleteButton.hidden = false;
    deleteButton.focus();
  });
  confirmDelete.addEventListener("click", async () => {
    if (confirmDelete.getAttribute("aria-busy") === "true") return;
    confirmDelete.setAttribute("aria-busy", "true");
    deleteFeedback.dataset.kind = "pending";
    setText(deleteFeedback, `Deleting ${name}…`);
    deleting = true;
    try {
      // Not cancelled when the watch reports the deletion first: this call made it.
      const { term } = await admin.deleteElection({ name }, { signal: page });
      // The watch ending with not_found usually told already; if not, this does.
      if (term) current = term;
      deleted();
    } catch (error) {
      if (page.aborted) return;
      deleting = false;
      deleteFeedback.dataset.kind = "error";
      setText(deleteFeedback, `The server refused Delete ${name}: ${describeError(error)}`);
      confirmation.hidden = true;
      deleteButton.hidden = false;
    } finally {
      confirmDelete.removeAttribute("aria-busy");
    }
  });

  async function act(action: Action, candidate: string, button: HTMLButtonElement | null) {
    const verb = verbs[action];
    const subject = candidate === "" ? "(no name)" : candidate;
    feedback.dataset.kind = "pending";
    setText(feedback, `${verb} ${subject}…`);
    button?.setAttribute("aria-busy", "true");
    const before = current;
    try {
      // An operator's move is made on the term this page shows: if the election moved on
      // meanwhile (another operator, a failover), the server refuses it and says so.
      const { term } =
        action === "enter" || action === "withdraw"
          ? await leaderElection[action]({ id: { name }, candidate })
          : await admin[action]({
              name,
              candidate,
              ...(before === undefined ? {} : { expectedTerm: before.term }),
            });
      feedback.dataset.kind = "ok";
      setText(
        feedback,
        sameTerm(before, term)
          ? `${verb} ${subject}: nothing to change (${describeTerm(term)}).`
          : `${verb} ${subject}: done, ${describeTerm(term)}.`,
      );
    } catch (error) {
      feedback.dataset.kind = "error";
      setText(
        feedback,
        error instanceof ConnectError && error.code === Code.FailedPrecondition
          ? `${verb} ${subject} was not done: the election changed since this page showed term ${before?.term ?? 0n} (${describeError(error)})`
          : `The server refused ${verb} ${subject}: ${describeError(error)}`,
      );
    } finally {
      button?.removeAttribute("aria-busy");
    }
  }

  // One listener for every candidate's buttons: a thousand candidates add no listeners.
  content.addEventListener("click", (event) => {
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
  const countdown = setInterval(() => {
    if (bound.size > 0 || !leaderSession.hidden) renderSessions();
  }, COUNTDOWN_MS);
  signal.addEventListener(
    "abort",
    () => {
      clearInterval(tick);
      clearInterval(countdown);
    },
    { once: true },
  );

  /** Whether this page has had a message of its election yet. */
  let streaming = false;
  /** The last version shown: a stream opened again resumes after it. */
  let version = 0n;
  /** While a stream opened again catches up: the changes it brought so far. */
  let away: { changes: number; reset: boolean } | undefined;
  followElection(
    name,
    version,
    {
      connection: showConnection,
      // The shared stream was lost and is back: what follows, up to the next message with
      // the whole state, is exactly what changed while this page was away.
      resumed() {
        away = version === 0n ? undefined : { changes: 0, reset: false };
      },
      message(response) {
        streaming = true;
        if (away) {
          if (response.change) away.changes++;
          if (response.reset) away.reset = true;
        }
        const { change } = response;
        if (change) changeLog.add([change]);
        if (change) markCause(change);
        if (change && !response.term) {
          // Replayed from history: drawn at the time it was made.
          const at = change.time ? timestampMs(change.time) : Date.now();
          timeline.record(change.leader, change.term, at);
        }
        if (response.term) {
          onState(response);
          render(response.term);
        }
        version = response.version;
        if (away && response.term) {
          // Caught up: say what happened meanwhile.
          const { changes, reset } = away;
          away = undefined;
          showConnection({
            kind: "live",
            note: reset
              ? "Back online. Changes were made while this page was away, more than the server keeps: showing the current state."
              : changes === 0
                ? "Back online. Nothing changed while this page was away."
                : `Back online. ${changes} ${changes === 1 ? "change" : "changes"} arrived while this page was away.`,
          });
        }
      },
      ended({ code, message }) {
        // Ended after showing the election: it was deleted. Ended before anything (after a
        // restart that lost it, say): it never existed as far as this server knows.
        if (code === "not_found" && streaming) deleted();
        else notFound(message, code === "invalid_argument");
      },
    },
    signal,
  );
}
