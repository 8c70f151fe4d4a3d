// An election followed by a browser's own EventSource (GET /v1/elections/{name}/events)
// across a server restart: Chromium reconnects by itself with Last-Event-ID, and the
// server resumes after it, so the page sees every change once, with no gap and no repeat.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ElectdProcess, expect, test } from "./fixtures.js";

test("EventSource resumes after a server restart with Last-Event-ID: every change once", async ({
  page,
  allowConsole,
}) => {
  // While the server is down Chromium logs each refused reconnection attempt.
  allowConsole(/ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|status of 503/);
  const dataDir = await mkdtemp(join(tmpdir(), "electd-e2e-events-"));
  const server = new ElectdProcess(["--store", "durable", "--data-dir", dataDir]);
  await server.start();
  try {
    await server.create("followed", []);
    await server.candidate("Enter", "followed", "a");
    await page.goto(server.url);
    await page.evaluate(() => {
      const seen: { id: string; type: string; cause: string | undefined }[] = [];
      (window as unknown as { seen: typeof seen }).seen = seen;
      const source = new EventSource("/v1/elections/followed/events?after=1");
      for (const type of ["change", "state"]) {
        source.addEventListener(type, (event) => {
          const data = JSON.parse((event as MessageEvent<string>).data) as {
            change?: { cause: string };
          };
          seen.push({ id: (event as MessageEvent).lastEventId, type, cause: data.change?.cause });
        });
      }
    });
    // Changes only: a stream that reconnects when nothing is new starts with the state the
    // page already has (`event: state`), which repeats no change.
    const seen = async () => (await everything()).filter((e) => e.type === "change");
    const everything = () =>
      page.evaluate(
        () =>
          (window as unknown as { seen: { id: string; type: string; cause: string | undefined }[] })
            .seen,
      );
    await expect.poll(seen).toEqual([{ id: "2", type: "change", cause: "CHANGE_CAUSE_ENTER" }]);
    await server.candidate("Enter", "followed", "b");
    await expect.poll(async () => (await seen()).length).toBe(2);

    await server.stop();
    await page.waitForTimeout(1500);
    await server.start();
    // Right after the restart, likely before Chromium reconnected: sent from history then.
    await server.candidate("Anoint", "followed", "b");
    await server.candidate("Withdraw", "followed", "a");
    await expect.poll(async () => (await seen()).length, { timeout: 10_000 }).toBe(4);
    expect(await seen()).toEqual([
      { id: "2", type: "change", cause: "CHANGE_CAUSE_ENTER" },
      { id: "3", type: "change", cause: "CHANGE_CAUSE_ENTER" },
      { id: "4", type: "change", cause: "CHANGE_CAUSE_ANOINT" },
      { id: "5", type: "change", cause: "CHANGE_CAUSE_WITHDRAW" },
    ]);
  } finally {
    await page.goto("about:blank");
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
