// The connection indicator in the header and the banner shown while the server is away.
// Pages report what their live stream is doing; this module only shows it.
import { h, setText } from "./dom.js";

export type ConnectionState =
  | { readonly kind: "connecting" }
  /** `note`: what to tell about the time away, shown in the banner for a while. */
  | { readonly kind: "live"; readonly note?: string }
  | { readonly kind: "offline"; readonly retryAt: number; readonly reason: string };

const indicator = document.getElementById("connection") as HTMLElement;
const indicatorText = indicator.querySelector(".text") as HTMLElement;
const banner = document.getElementById("banner") as HTMLElement;
const bannerText = h("span");
const bannerCountdown = h("span", { "aria-hidden": "true" });
banner.replaceChildren(bannerText, bannerCountdown);
let countdown: ReturnType<typeof setInterval> | undefined;
let noteShown: ReturnType<typeof setTimeout> | undefined;
/** How long a note about the time away stays up. */
const NOTE_MS = 10_000;
let lastState: ConnectionState["kind"] = "connecting";

export function showConnection(state: ConnectionState): void {
  clearInterval(countdown);
  countdown = undefined;
  clearTimeout(noteShown);
  noteShown = undefined;
  indicator.dataset.state = state.kind;
  switch (state.kind) {
    case "connecting":
      // While the server is away the indicator stays "Offline" (it is a live region: no
      // need to announce every attempt); the banner tells that one is under way.
      if (lastState === "offline") setText(bannerCountdown, " now…");
      else setText(indicatorText, "Connecting…");
      break;
    case "live":
      setText(indicatorText, "Live");
      if (state.note === undefined) {
        banner.hidden = true;
        break;
      }
      bannerText.textContent = state.note;
      setText(bannerCountdown, "");
      banner.hidden = false;
      noteShown = setTimeout(() => {
        banner.hidden = true;
      }, NOTE_MS);
      break;
    case "offline": {
      setText(indicatorText, "Offline");
      // The alert is announced once; the countdown beside it is for eyes only, so screen
      // readers are not interrupted twice a second.
      const message = `Lost connection to the server (${state.reason}). Showing the last known state; reconnecting`;
      if (bannerText.textContent !== message) bannerText.textContent = message;
      const tell = () => {
        const seconds = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
        setText(bannerCountdown, ` in ${seconds} s…`);
      };
      tell();
      banner.hidden = false;
      countdown = setInterval(tell, 500);
      break;
    }
  }
  // "connecting" after "offline" keeps the banner: the server is not back yet.
  if (state.kind !== "connecting") lastState = state.kind;
}
