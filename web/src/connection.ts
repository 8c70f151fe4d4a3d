// The connection indicator in the header and the banner shown while the server is away.
// Pages report what their live stream is doing; this module only shows it.
import { setText } from "./dom.js";

export type ConnectionState =
  | { readonly kind: "connecting" }
  | { readonly kind: "live" }
  | { readonly kind: "offline"; readonly retryAt: number; readonly reason: string };

const indicator = document.getElementById("connection") as HTMLElement;
const indicatorText = indicator.querySelector(".text") as HTMLElement;
const banner = document.getElementById("banner") as HTMLElement;
let countdown: ReturnType<typeof setInterval> | undefined;
let lastState: ConnectionState["kind"] = "connecting";

export function showConnection(state: ConnectionState): void {
  clearInterval(countdown);
  countdown = undefined;
  indicator.dataset.state = state.kind;
  switch (state.kind) {
    case "connecting":
      setText(indicatorText, lastState === "offline" ? "Reconnecting…" : "Connecting…");
      break;
    case "live":
      setText(indicatorText, "Live");
      banner.hidden = true;
      break;
    case "offline": {
      setText(indicatorText, "Offline");
      const tell = () => {
        const seconds = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
        setText(
          banner,
          `Lost connection to the server (${state.reason}). Showing the last known state; ` +
            `reconnecting in ${seconds} s…`,
        );
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
