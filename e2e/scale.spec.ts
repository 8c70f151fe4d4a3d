// Responsiveness at scale: 1,000 elections on the list page and 1,000 candidates in one
// election. Prints time-to-render and update latency (API call to the change on screen)
// and writes them to test-results/dashboard-scale.json. A benchmark, not a test: it judges
// no timing and runs only with `npm run bench:dashboard` (ELECTD_BENCH=1).
import { mkdir, writeFile } from "node:fs/promises";
import type { Page } from "@playwright/test";
import { ElectdProcess, expect, test } from "./fixtures.js";

const ELECTIONS = 1000;
const CANDIDATES = 1000;
const UPDATES = 20;

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

    // List page: first render of every election.
    await page.goto(server.url);
    await page.waitForFunction(
      (n) => document.querySelectorAll("tbody tr").length === n,
      ELECTIONS,
      {
        polling: "raf",
        timeout: 20_000,
      },
    );
    figures.listRenderMs = Math.round(await page.evaluate(() => performance.now()));
    await watchLongTasks(page);

    // List page: a change made through the API, until its row shows it.
    const listLatency: number[] = [];
    for (let i = 0; i < UPDATES; i++) {
      const name = names[(i * 37) % ELECTIONS] as string;
      const started = performance.now();
      await server.candidate("Withdraw", name, `${name}-${i % 2 === 0 ? "a" : "b"}`);
      await server.candidate("Enter", name, `${name}-${i % 2 === 0 ? "a" : "b"}`);
      const leader = `${name}-${i % 2 === 0 ? "b" : "a"}`;
      await page.waitForFunction(
        ([n, l]) =>
          document.querySelector(`tr[data-name="${n}"] td[data-label="Leader"]`)?.textContent === l,
        [name, leader],
        { polling: "raf", timeout: 10_000 },
      );
      listLatency.push(performance.now() - started);
    }
    figures.listUpdateMs = stats(listLatency);

    // A burst: one change to every election at once.
    const burstStarted = performance.now();
    await inParallel(names, 32, (name) => server.candidate("Enter", name, `${name}-c`));
    await page.waitForFunction(
      (n) =>
        [...document.querySelectorAll('td[data-label="Waiting"]')].filter(
          (td) => td.textContent === "2",
        ).length === n,
      ELECTIONS,
      { polling: "raf", timeout: 20_000 },
    );
    figures.listBurstOf1000ChangesMs = Math.round(performance.now() - burstStarted);

    // Filter box over 1,000 rows: typing to the next painted frame.
    figures.listFilterMs = Math.round(
      await page.evaluate(async () => {
        const input = document.getElementById("filter") as HTMLInputElement;
        const started = performance.now();
        input.value = "svc-09";
        input.dispatchEvent(new Event("input"));
        await new Promise(requestAnimationFrame);
        return performance.now() - started;
      }),
    );
    await expect(page.locator("tbody tr:visible")).toHaveCount(100);
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

    const report = {
      elections: ELECTIONS,
      candidates: CANDIDATES,
      updatesPerSample: UPDATES,
      ...figures,
    };
    console.log(`dashboard scale figures:\n${JSON.stringify(report, null, 2)}`);
    await mkdir("test-results", { recursive: true });
    await writeFile("test-results/dashboard-scale.json", `${JSON.stringify(report, null, 2)}\n`);
    await test.info().attach("dashboard-scale.json", {
      body: JSON.stringify(report, null, 2),
      contentType: "application/json",
    });
  } finally {
    await page.goto("about:blank");
    await server.stop();
  }
});
