// Responsiveness at scale: 1,000 elections on the list page and 1,000 candidates in one
// election, then the list page with 100,000 elections (the default MAX_ELECTIONS). Prints
// time-to-render, filter keystrokes and update latency (API call to the change on screen)
// and writes them to test-results/dashboard-scale.json. A benchmark, not a test: it judges
// no timing and runs only with `npm run bench:dashboard` (ELECTD_BENCH=1).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Page } from "@playwright/test";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectdProcess, expect, test } from "./fixtures.js";

const ELECTIONS = 1000;
const CANDIDATES = 1000;
const UPDATES = 20;
/** The server's default MAX_ELECTIONS: the most a dashboard can be asked to show. */
const MANY = 100_000;
const REPORT = "test-results/dashboard-scale.json";

// The figures of both scenarios go to one file; they run one after the other.
test.describe.configure({ mode: "serial" });

/** Runs `work` over `items` with at most `width` calls in flight. */
async function inParallel<T>(items: T[], width: number, work: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { median: Math.round(at(0.5)), p95: Math.round(at(0.95)), max: Math.round(at(1)) };
}

async function record(figures: Record<string, unknown>): Promise<void> {
  await mkdir("test-results", { recursive: true });
  const before = await readFile(REPORT, "utf8").then(
    (text) => JSON.parse(text) as Record<string, unknown>,
    () => ({}),
  );
  const report = { ...before, ...figures };
  console.log(`dashboard scale figures:\n${JSON.stringify(figures, null, 2)}`);
  await writeFile(REPORT, `${JSON.stringify(report, null, 2)}\n`);
  await test.info().attach("dashboard-scale.json", {
    body: JSON.stringify(figures, null, 2),
    contentType: "application/json",
  });
}

async function longestTask(page: Page): Promise<number> {
  return page.evaluate(() => (window as unknown as { longest: number }).longest);
}

async function watchLongTasks(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { longest: number };
    w.longest = 0;
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) w.longest = Math.max(w.longest, entry.duration);
    }).observe({ type: "longtask", buffered: false });
  });
}

interface Noted {
  firstRowAt?: number;
  loadedAt?: number;
}

/**
 * From the next navigation on, notes in the page the first frame that has an election row
 * on screen, and the first whose count says every election is held ("1,000 elections", not
 * "Loading…"). Installed before the page's own scripts, so it is not late the way a probe
 * sent from here after the navigation is.
 */
async function noteFirstRow(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const w = window as unknown as Noted;
    const check = () => {
      const box = document.querySelector("tbody tr[data-name]")?.getBoundingClientRect();
      if (w.firstRowAt === undefined && box && box.height > 0 && box.top < window.innerHeight) {
        w.firstRowAt = performance.now();
      }
      const count = document.querySelector(".count")?.textContent ?? "";
      if (w.loadedAt === undefined && /^[\d,]+ elections?$/.test(count)) {
        w.loadedAt = performance.now();
      }
      if (w.firstRowAt === undefined || w.loadedAt === undefined) requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
}

/** Milliseconds since navigation when the first election row was on screen. */
async function firstRowOnScreen(page: Page, timeout: number): Promise<number> {
  const at = await page.waitForFunction(() => (window as unknown as Noted).firstRowAt, null, {
    timeout,
  });
  return Math.round((await at.jsonValue()) as number);
}

/** Milliseconds since navigation when the page said it held all `n` elections. */
async function allLoaded(page: Page, n: number, timeout: number): Promise<number> {
  const at = await page.waitForFunction(() => (window as unknown as Noted).loadedAt, null, {
    timeout,
  });
  const text = (await page.locator(".count").textContent()) ?? "";
  expect(text.replaceAll(",", "")).toBe(`${n} elections`);
  return Math.round((await at.jsonValue()) as number);
}

/** From now on, collects the browser's measure of every key press (Event Timing). */
async function watchKeys(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { keys: Map<number, number> };
    w.keys = new Map();
    new PerformanceObserver((list) => {
      // interactionId groups a key's keydown and keyup (TypeScript's DOM types lack it).
      for (const entry of list.getEntries() as (PerformanceEntry & { interactionId: number })[]) {
        const id = entry.interactionId;
        if (id > 0) w.keys.set(id, Math.max(w.keys.get(id) ?? 0, entry.duration));
      }
    }).observe({ type: "event", durationThreshold: 16 } as PerformanceObserverInit);
  });
  await page.locator("#filter").focus();
}

/**
 * Presses `keys` one after the other in the filter box, checking after each that the first
 * row shown matches what the box holds, and returns the browser's own measure of each
 * (Event Timing: from the key press to the next frame painted after its handlers ran,
 * which shows the filtered rows: the input handler draws them). The browser does not
 * report keys answered within 16 ms; those count as 16.
 */
async function keystrokes(page: Page, keys: readonly string[]): Promise<number[]> {
  for (const key of keys) {
    await page.keyboard.press(key);
    const { ok, text } = await page.evaluate(async () => {
      await new Promise(requestAnimationFrame);
      const input = document.getElementById("filter") as HTMLInputElement;
      const text = input.value.trim().toLowerCase();
      const first = document.querySelector<HTMLElement>("tbody tr[data-name]:not([hidden])");
      return { ok: first !== null && (first.textContent ?? "").toLowerCase().includes(text), text };
    });
    expect(ok, `the first row shown matches "${text}"`).toBe(true);
  }
  const reported = await page.evaluate(async () => {
    // Entries are delivered some time after the frame they measure.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const w = window as unknown as { keys: Map<number, number> };
    const all = [...w.keys.values()];
    w.keys.clear();
    return all;
  });
  return [...reported, ...Array<number>(Math.max(0, keys.length - reported.length)).fill(16)];
}

/** Typing `text` one key at a time, then deleting it with as many Backspaces. */
function typeAndDelete(text: string): string[] {
  return [...text, ...Array<string>(text.length).fill("Backspace")];
}

/** The leader cell of election `name`, once its row is drawn, shows `leader`. */
async function leaderShown(page: Page, name: string, leader: string): Promise<void> {
  await page.waitForFunction(
    ([n, l]) =>
      document.querySelector(`tr[data-name="${n}"] td[data-label="Leader"]`)?.textContent === l,
    [name, leader],
    { polling: "raf", timeout: 60_000 },
  );
}

test("stays responsive with 1,000 elections and 1,000 candidates", async ({ page }) => {
  test.setTimeout(180_000);
  const server = new ElectdProcess(["--max-candidates", String(CANDIDATES)]);
  await server.start();
  const figures: Record<string, unknown> = {};
  try {
    const names = Array.from({ length: ELECTIONS }, (_, i) => `svc-${String(i).padStart(4, "0")}`);
    await inParallel(names, 32, async (name) => {
      await server.create(name, ["scale", `shard-${name.slice(-1)}`]);
      await server.candidate("Enter", name, `${name}-a`);
      await server.candidate("Enter", name, `${name}-b`);
    });

    // List page: the first screen, then every election held (rows are drawn only on screen).
    await noteFirstRow(page);
    await page.goto(server.url);
    figures.listFirstScreenMs = await firstRowOnScreen(page, 20_000);
    figures.listRenderMs = await allLoaded(page, ELECTIONS, 20_000);
    await watchLongTasks(page);

    // List page: a change made through the API, until its row shows it. The filter brings
    // the row on screen first (not timed).
    const listLatency: number[] = [];
    for (let i = 0; i < UPDATES; i++) {
      const name = names[(i * 37) % ELECTIONS] as string;
      await page.getByLabel("Filter").fill(name);
      await expect(page.locator(`tr[data-name="${name}"]`)).toBeVisible();
      const started = performance.now();
      await server.candidate("Withdraw", name, `${name}-${i % 2 === 0 ? "a" : "b"}`);
      await server.candidate("Enter", name, `${name}-${i % 2 === 0 ? "a" : "b"}`);
      await leaderShown(page, name, `${name}-${i % 2 === 0 ? "b" : "a"}`);
      listLatency.push(performance.now() - started);
    }
    figures.listUpdateMs = stats(listLatency);
    await page.getByLabel("Filter").fill("");

    // A burst: one change to every election at once, issued in name order. Timed until the
    // last screen of the list, the last elections changed, shows all of them changed.
    await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    await expect(page.locator(`tr[data-name="${names.at(-1)}"]`)).toBeVisible();
    const burstStarted = performance.now();
    await inParallel(names, 32, (name) => server.candidate("Enter", name, `${name}-c`));
    await page.waitForFunction(
      () => {
        const cells = [...document.querySelectorAll('tr[data-name] td[data-label="Waiting"]')];
        return cells.length > 0 && cells.every((td) => td.textContent === "2");
      },
      null,
      { polling: "raf", timeout: 20_000 },
    );
    figures.listBurstOf1000ChangesMs = Math.round(performance.now() - burstStarted);
    await page.evaluate(() => window.scrollTo(0, 0));

    // Filter box over 1,000 elections: each key to the frame painted after it.
    await watchKeys(page);
    figures.listFilterMs = stats(await keystrokes(page, [..."svc-09"]));
    await expect(page.locator(".count")).toHaveText(/^100 of 1,?000 elections match$/);
    figures.listLongestTaskMs = Math.round(await longestTask(page));

    // Election page with 1,000 candidates.
    const big = "big-election";
    await server.create(big, ["scale"]);
    const candidates = Array.from(
      { length: CANDIDATES },
      (_, i) => `c${String(i).padStart(4, "0")}`,
    );
    for (const c of candidates) await server.candidate("Enter", big, c);
    const opened = performance.now();
    await page.goto(`${server.url}/elections/${big}`);
    await page.waitForFunction(
      (n) => document.querySelectorAll("ol.queue > li").length === n,
      CANDIDATES - 1,
      { polling: "raf", timeout: 20_000 },
    );
    figures.electionRenderMs = Math.round(await page.evaluate(() => performance.now()));
    figures.electionRenderFromTestMs = Math.round(performance.now() - opened);
    await watchLongTasks(page);

    // Promote the last candidate: two items swap places at the end of a 999-long queue.
    const promoteLatency: number[] = [];
    let queue = candidates.slice(1);
    for (let i = 0; i < UPDATES; i++) {
      const mover = queue[queue.length - 1 - i] as string;
      const started = performance.now();
      await server.candidate("Promote", big, mover);
      const at = queue.indexOf(mover);
      queue = [...queue];
      [queue[at - 1], queue[at]] = [queue[at] as string, queue[at - 1] as string];
      await page.waitForFunction(
        ([m, index]) =>
          document
            .querySelectorAll("ol.queue > li")
            [index as number]?.getAttribute("data-candidate") === m,
        [mover, at - 1],
        { polling: "raf", timeout: 10_000 },
      );
      promoteLatency.push(performance.now() - started);
    }
    figures.electionPromoteMs = stats(promoteLatency);

    // Evict the leader: the head of the queue leads and every item moves up one place.
    const evictLatency: number[] = [];
    for (let i = 0; i < UPDATES; i++) {
      const term = await server.term(big);
      const next = term.candidates?.[0] ?? "";
      const started = performance.now();
      await server.candidate("Evict", big, term.leader ?? "");
      await page.waitForFunction(
        ([leader, head]) =>
          document.getElementById("leader")?.textContent === leader &&
          document.querySelector("ol.queue > li")?.getAttribute("data-candidate") === head,
        [next, term.candidates?.[1] ?? ""],
        { polling: "raf", timeout: 10_000 },
      );
      evictLatency.push(performance.now() - started);
    }
    figures.electionEvictLeaderMs = stats(evictLatency);
    figures.electionLongestTaskMs = Math.round(await longestTask(page));

    await record({
      elections: ELECTIONS,
      candidates: CANDIDATES,
      updatesPerSample: UPDATES,
      ...figures,
    });
  } finally {
    // After a timeout the page is closed already; the server must stop all the same.
    await page.goto("about:blank").catch(() => {});
    await server.stop();
  }
});

test("the list page stays usable with 100,000 elections", async ({ page }) => {
  test.setTimeout(1_200_000);
  const server = new ElectdProcess();
  await server.start();
  // Printed as they come: a slow dashboard takes minutes to get through them all.
  const figures = new Proxy({} as Record<string, unknown>, {
    set(target, key, value) {
      console.log(`  ${String(key)}: ${JSON.stringify(value)}`);
      return Reflect.set(target, key, value);
    },
  });
  try {
    // Binary gRPC over one HTTP/2 connection, many calls in flight: the cheapest way to
    // make 110,000 calls. One election in ten gets a leader, so leaders can be searched.
    const api = createClient(LeaderElection, createGrpcTransport({ baseUrl: server.url }));
    const names = Array.from({ length: MANY }, (_, i) => `svc-${String(i).padStart(6, "0")}`);
    const setupStarted = performance.now();
    await inParallel(
      names.map((name, i) => ({ name, i })),
      128,
      async ({ name, i }) => {
        await api.create({ id: { name }, tags: ["scale", `shard-${i % 100}`] });
        if (i % 10 === 0) await api.enter({ id: { name }, candidate: `node-${i % 977}` });
      },
    );
    figures.setupMs = Math.round(performance.now() - setupStarted);

    await noteFirstRow(page);
    await page.goto(server.url);
    figures.firstScreenMs = await firstRowOnScreen(page, 120_000);
    figures.allLoadedMs = await allLoaded(page, MANY, 120_000);
    figures.heapMB = await page.evaluate(() =>
      Math.round(
        ((performance as unknown as { memory?: { usedJSHeapSize: number } }).memory
          ?.usedJSHeapSize ?? 0) / 1e6,
      ),
    );
    figures.rowsInDom = await page.locator("tbody tr[data-name]").count();
    await watchLongTasks(page);

    // Typing a name one key at a time and deleting it again; then a leader and a tag.
    await watchKeys(page);
    const typing = await keystrokes(page, [
      ...typeAndDelete("svc-04207"),
      ...typeAndDelete("node-9"),
      ...typeAndDelete("shard-42"),
    ]);
    figures.filterKeystrokeMs = stats(typing);
    figures.filterKeystrokeSamples = typing;

    // A change to an election on screen, from the API call until its row shows it.
    const latency: number[] = [];
    for (let i = 0; i < UPDATES; i++) {
      const name = names[i] as string;
      const candidate = `bench-${i}`;
      const started = performance.now();
      await api.enter({ id: { name }, candidate });
      await api.anoint({ id: { name }, candidate });
      await leaderShown(page, name, candidate);
      latency.push(performance.now() - started);
    }
    figures.updateOnScreenMs = stats(latency);

    // Jumping to the middle of the list: until its rows are drawn.
    figures.scrollJumpMs = Math.round(
      await page.evaluate(async () => {
        const started = performance.now();
        window.scrollTo(0, document.documentElement.scrollHeight / 2);
        await new Promise<void>((resolve) => {
          const check = () => {
            const rows = document.querySelectorAll("tbody tr[data-name]");
            const visible = [...rows].some((tr) => {
              const box = tr.getBoundingClientRect();
              return box.bottom > 0 && box.top < window.innerHeight;
            });
            if (visible) resolve();
            else requestAnimationFrame(check);
          };
          requestAnimationFrame(check);
        });
        return performance.now() - started;
      }),
    );
    figures.longestTaskMs = Math.round(await longestTask(page));

    // Typing from the moment the first screen shows, while the rest is still arriving.
    await page.goto("about:blank");
    await page.goto(server.url);
    await firstRowOnScreen(page, 120_000);
    await watchKeys(page);
    const early = await keystrokes(page, [..."svc-0000"]);
    figures.filterWhileLoadingMs = stats(early);
    figures.filterWhileLoadingSamples = early;
    figures.stillLoadingAfterTyping = await page.evaluate(
      () => (window as unknown as Noted).loadedAt === undefined,
    );

    await record({ manyElections: MANY, many: { ...figures } });
  } finally {
    // After a timeout the page is closed already; the server must stop all the same.
    await page.goto("about:blank").catch(() => {});
    await server.stop();
  }
});
