// Many election tabs over plain HTTP/1.1, where Chromium opens at most six connections to
// one server and each open stream holds one: the tabs share one stream (a SharedWorker
// holding ElectionHistoryService.WatchElectionList), so eight tabs of eight elections all
// load and all follow live changes, and no page opens a stream of its own.
import type { Browser, Page, Request, Route } from "@playwright/test";
import { expect, queueOf, test, uniqueName } from "./fixtures.js";

const TABS = 8;
/** Every streaming rpc a page could follow an election with. */
const STREAMS =
  /\/(atomix\.runtime\.election\.v1\.LeaderElection\/Watch|electd\.v1\.ElectionHistoryService\/WatchElection(List)?|electd\.v1\.ElectionDirectoryService\/WatchElections)$/;

test(`${TABS} tabs of ${TABS} elections over plain HTTP/1.1 each show live changes, holding one stream between them`, async ({
  browser,
  electd,
}) => {
  expect(electd.url).toMatch(/^http:\/\//);
  const context = await browser.newContext();
  const problems: string[] = [];
  /** Streams each page opened itself. */
  const pageStreams = new Map<Page, string[]>();
  const isStream = (request: Request) => STREAMS.test(new URL(request.url()).pathname);
  const worker = await watchSharedWorkerStreams(browser);
  try {
    const names = Array.from({ length: TABS }, (_, i) => uniqueName(`tab${i}`));
    for (const name of names) {
      await electd.create(name);
      await electd.candidate("Enter", name, "a");
    }
    const tabs = await Promise.all(names.map(() => context.newPage()));
    const loaded = (tab: Page, i: number) =>
      tab
        .goto(`${electd.url}/elections/${names[i]}`)
        .then(() => expect(tab.locator("#leader")).toHaveText("a", { timeout: 10_000 }));
    for (const tab of tabs) {
      const opened: string[] = [];
      pageStreams.set(tab, opened);
      tab.on("request", (request) => {
        if (isStream(request)) opened.push(request.url());
      });
      tab.on("console", (message) => {
        if (message.type() === "error") problems.push(message.text());
      });
      tab.on("pageerror", (error) => problems.push(error.message));
    }
    // One tab first, so that the shared worker's requests are watched from then on; then
    // the seven others at once.
    const [first, ...others] = tabs;
    if (!first) throw new Error("no tabs");
    await loaded(first, 0);
    // (A page that opens streams itself has no shared worker to wait for.)
    const ownStreams = () => pageStreams.get(first)?.length ?? 0;
    await expect.poll(() => worker.watching || ownStreams() > 0, { timeout: 5_000 }).toBe(true);
    await Promise.all(others.map((tab, i) => loaded(tab, i + 1)));
    for (const tab of tabs) await expect(tab.locator("#connection")).toHaveText("Live");
    // The feed opened its stream again as tabs joined, each time with one election more.
    expect(worker.opened, "streams the shared worker opened as tabs joined").toBeGreaterThan(0);
    await expect.poll(() => worker.open, { message: "streams the shared worker holds" }).toBe(1);
    // Plain HTTP/1.1 for the page and everything it loaded (a request still under way has
    // no protocol yet).
    for (const tab of tabs) {
      const protocols = await tab.evaluate(() =>
        performance
          .getEntriesByType("navigation")
          .concat(performance.getEntriesByType("resource"))
          .map((e) => (e as PerformanceResourceTiming).nextHopProtocol)
          .filter((p) => p !== ""),
      );
      expect(new Set(protocols)).toEqual(new Set(["http/1.1"]));
    }
    // Changes made after every tab opened reach every tab.
    for (const name of names) {
      await electd.candidate("Enter", name, "b");
      await electd.candidate("Anoint", name, "b");
    }
    for (const tab of tabs) {
      await expect(tab.locator("#leader")).toHaveText("b", { timeout: 5_000 });
      await expect(tab.locator("#term")).toHaveText("2");
      await expect(queueOf(tab)).toHaveText(["a"]);
    }
    // Then one more, in the reverse order.
    for (const name of names.toReversed()) await electd.candidate("Withdraw", name, "b");
    for (const tab of tabs) {
      await expect(tab.locator("#leader")).toHaveText("a", { timeout: 5_000 });
      await expect(tab.locator("#term")).toHaveText("3");
    }
    for (const [i, tab] of tabs.entries()) {
      expect(pageStreams.get(tab)?.length ?? 0, `streams opened by tab ${i}`).toBeLessThanOrEqual(
        1,
      );
    }
    // The changes came over the one stream the shared worker holds.
    expect(worker.open, "streams the shared worker holds").toBe(1);
    expect(problems, "console errors in the tabs").toEqual([]);
  } finally {
    await context.close();
    await worker.detach();
  }
});

/**
 * The streaming requests of the browser's shared workers, through the DevTools protocol
 * (Playwright reports no requests of a SharedWorker): how many are open now, and how many
 * were opened. Requests sent before `watching` turns true are not seen. An aborted request
 * is reported ended a few milliseconds after the request that replaces it is sent (the
 * network service cancels it asynchronously), so the count is read when nothing changes.
 */
async function watchSharedWorkerStreams(browser: Browser) {
  const cdp = await browser.newBrowserCDPSession();
  const open = new Set<string>();
  const seen = { watching: false, open: 0, opened: 0, detach: () => cdp.detach() };
  cdp.on("Target.targetCreated", async ({ targetInfo }) => {
    if (targetInfo.type !== "shared_worker") return;
    const { targetId } = targetInfo;
    const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: false });
    const message = JSON.stringify({ id: 1, method: "Network.enable", params: {} });
    await cdp.send("Target.sendMessageToTarget", { sessionId, message });
  });
  cdp.on("Target.receivedMessageFromTarget", ({ message }) => {
    const m = JSON.parse(message) as {
      id?: number;
      method?: string;
      params?: { requestId: string; request?: { url: string } };
    };
    if (m.id === 1) seen.watching = true;
    const id = m.params?.requestId ?? "";
    if (m.method === "Network.requestWillBeSent") {
      if (!STREAMS.test(new URL(m.params?.request?.url ?? "http://x/").pathname)) return;
      open.add(id);
      seen.opened++;
    } else if (m.method === "Network.loadingFinished" || m.method === "Network.loadingFailed") {
      open.delete(id);
    } else return;
    seen.open = open.size;
  });
  await cdp.send("Target.setDiscoverTargets", { discover: true });
  return seen;
}

test("without SharedWorker a tab follows its election over one stream of its own", async ({
  page,
  electd,
}) => {
  await page.addInitScript(() => {
    // As in browsers without it (Chrome on Android).
    delete (window as { SharedWorker?: unknown }).SharedWorker;
  });
  const streams: string[] = [];
  page.on("request", (request) => {
    if (STREAMS.test(new URL(request.url()).pathname)) streams.push(request.url());
  });
  const name = uniqueName("alone");
  await electd.create(name, ["solo"]);
  await electd.candidate("Enter", name, "a");
  await page.goto(`${electd.url}/elections/${name}`);
  await expect(page.locator("#leader")).toHaveText("a");
  await expect(page.locator(".tag-list")).toHaveText("solo");
  await electd.candidate("Enter", name, "b");
  await electd.candidate("Anoint", name, "b");
  await expect(page.locator("#leader")).toHaveText("b");
  await expect(page.locator("#term")).toHaveText("2");
  expect(streams.map((url) => new URL(url).pathname)).toEqual([
    "/electd.v1.ElectionHistoryService/WatchElectionList",
  ]);
});

// A worker that cannot start should say so by its "error" event; when the browser does not
// deliver it, the tab stops waiting for the worker after 3 s (feed-client.ts). Either way
// the tab follows on its own.
for (const { worker, prefix, answer } of [
  {
    worker: "never says it started",
    prefix: "stalled",
    // The script never arrives: no "error" event, and no word from the worker.
    answer: () => new Promise<void>(() => {}),
  },
  {
    worker: "cannot start",
    prefix: "orphan",
    answer: (route: Route) => route.fulfill({ status: 404 }),
  },
]) {
  test(`a tab whose shared worker ${worker} follows its election on its own`, async ({
    page,
    electd,
  }) => {
    await page.route("**/assets/feed-worker-*.js", answer);
    const name = uniqueName(prefix);
    await electd.create(name);
    await electd.candidate("Enter", name, "a");
    await page.goto(`${electd.url}/elections/${name}`);
    await expect(page.locator("#leader")).toHaveText("a", { timeout: 15_000 });
    await electd.candidate("Enter", name, "b");
    await electd.candidate("Anoint", name, "b");
    await expect(page.locator("#leader")).toHaveText("b");
  });
}
