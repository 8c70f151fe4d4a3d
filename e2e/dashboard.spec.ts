// The dashboard in a real browser against a real server: deep links, live updates made by
// another client, every admin action, refusals, the not-found page, reconnecting after a
// server restart, keyboard use and a 360 px screen. Screenshots of both pages are saved
// under test-results/screenshots/ (and under docs/screenshots/ with UPDATE_SCREENSHOTS=1).
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Route } from "@playwright/test";
import Database from "better-sqlite3";
import { DATA_FILE } from "../server/store/durable.js";
import {
  ElectdProcess,
  expect,
  LEADER_ELECTION,
  queueOf,
  SESSIONS,
  test,
  uniqueName,
} from "./fixtures.js";

const LIVE = { timeout: 1000 };
const ADMIN = "electd.v1.ElectionAdminService";

async function screenshot(page: import("@playwright/test").Page, file: string): Promise<void> {
  const path = `test-results/screenshots/${file}`;
  await mkdir("test-results/screenshots", { recursive: true });
  await page.screenshot({ path, fullPage: true });
  await test.info().attach(file, { path, contentType: "image/png" });
  if (process.env.UPDATE_SCREENSHOTS) {
    await mkdir("docs/screenshots", { recursive: true });
    await copyFile(path, `docs/screenshots/${file}`);
  }
}

test.describe("list page", () => {
  test("an empty server shows a curl line that creates an election, which then appears without reload", async ({
    page,
  }) => {
    const server = new ElectdProcess();
    await server.start();
    try {
      await page.goto(server.url);
      await expect(page.getByRole("heading", { name: "No elections yet" })).toBeVisible();
      const command = (await page.locator(".empty code").textContent()) ?? "";
      expect(command).toContain(
        `curl ${server.url}/atomix.runtime.election.v1.LeaderElection/Create`,
      );
      await promisify(execFile)("sh", ["-c", command]);
      const row = page.locator("tr[data-name='my-election']");
      await expect(row).toBeVisible(LIVE);
      await expect(row.locator("td[data-label='Tags']")).toHaveText("demo");
      await expect(page.getByRole("heading", { name: "No elections yet" })).toBeHidden();
    } finally {
      await page.goto("about:blank");
      await server.stop();
    }
  });

  test("elections created and changed by plain API calls appear within a second, without reload", async ({
    page,
    electd,
  }) => {
    const name = uniqueName("orders");
    await page.goto(electd.url);
    await expect(page.locator("#connection")).toHaveText("Live");
    await page.evaluate(() => {
      (window as unknown as { loadedOnce: boolean }).loadedOnce = true;
    });

    await electd.create(name, ["prod", "eu-west"]);
    const row = page.locator(`tr[data-name='${name}']`);
    await expect(row).toBeVisible(LIVE);
    await expect(row.locator("td[data-label='Term']")).toHaveText("0");
    await expect(row.locator("td[data-label='Leader']")).toHaveText("—");

    await electd.candidate("Enter", name, "node-1");
    await expect(row.locator("td[data-label='Leader']")).toHaveText("node-1", LIVE);
    await expect(row.locator("td[data-label='Term']")).toHaveText("1");
    await electd.candidate("Enter", name, "node-2");
    await electd.candidate("Enter", name, "node-3");
    await expect(row.locator("td[data-label='Waiting']")).toHaveText("2", LIVE);
    await electd.candidate("Withdraw", name, "node-1");
    await expect(row.locator("td[data-label='Leader']")).toHaveText("node-2", LIVE);
    await expect(row.locator("td[data-label='Term']")).toHaveText("2");

    expect(
      await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce),
    ).toBe(true);
  });

  test("the filter box narrows the list by name, tag or leader, and says when nothing matches", async ({
    page,
    electd,
  }) => {
    const prefix = uniqueName("filter");
    await electd.create(`${prefix}-alpha`, ["blue"]);
    await electd.create(`${prefix}-beta`, ["green"]);
    await electd.candidate("Enter", `${prefix}-beta`, "leader-zed");
    await page.goto(electd.url);
    const filter = page.getByLabel("Filter");
    await filter.fill(prefix);
    await expect(page.locator("tbody tr:visible")).toHaveCount(2);
    await filter.fill(`${prefix}-alpha`);
    await expect(page.locator("tbody tr:visible")).toHaveCount(1);
    await filter.fill("leader-zed");
    await expect(page.locator("tbody tr:visible")).toHaveText([new RegExp(`${prefix}-beta`)]);
    await filter.fill("no-such-thing-at-all");
    await expect(page.getByText("No election matches the filter.")).toBeVisible();
    await filter.fill(prefix);
    await electd.create(`${prefix}-gamma`, []);
    await expect(page.locator("tbody tr:visible")).toHaveCount(3, LIVE);
  });

  test("is usable with the keyboard: tab to an election and open it with Enter", async ({
    page,
    electd,
  }) => {
    const name = uniqueName("keyboard");
    await electd.create(name, []);
    await page.goto(electd.url);
    await page.getByLabel("Filter").fill(name);
    await page.keyboard.press("Tab");
    await expect(page.getByRole("link", { name })).toBeFocused();
    await page.keyboard.press("Enter");
    await expect(page).toHaveURL(`${electd.url}/elections/${name}`);
    await expect(page.getByRole("heading", { level: 1, name })).toBeFocused();
    await page.goBack();
    await expect(page.getByRole("heading", { level: 1, name: "Elections" })).toBeVisible();
  });
  test("a long list draws only the rows on screen; scrolling shows the others, kept live", async ({
    page,
    electd,
  }) => {
    const prefix = uniqueName("window");
    const names = Array.from({ length: 200 }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`);
    await Promise.all(names.map((name) => electd.create(name, ["windowed"])));
    await page.setViewportSize({ width: 1100, height: 700 });
    // The prefix view: only these elections, whatever else the shared server holds.
    await page.goto(`${electd.url}/?prefix=${prefix}`);
    await expect(page.locator(".count")).toHaveText("200 elections");
    const rows = page.locator("tbody tr[data-name]");
    await expect(rows.first()).toHaveAttribute("data-name", names[0] as string);
    expect(await rows.count()).toBeLessThan(60);

    // An election far below the screen changes while it is not drawn.
    await electd.candidate("Enter", names[120] as string, "off-screen");
    await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    const last = page.locator(`tr[data-name='${names[199]}']`);
    await expect(last).toBeInViewport();
    expect(await rows.count()).toBeLessThan(60);
    await electd.candidate("Enter", names[199] as string, "on-screen");
    await expect(last.locator("td[data-label='Leader']")).toHaveText("on-screen", LIVE);
    await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight * 0.55));
    const middle = page.locator(`tr[data-name='${names[120]}']`);
    await expect(middle.locator("td[data-label='Leader']")).toHaveText("off-screen");

    // Filtering from down there starts the shorter list at its top.
    await page.getByLabel("Filter").fill(`${prefix}-05`);
    await expect(page.locator(".count")).toHaveText("10 of 200 elections match");
    await expect(page.locator(`tr[data-name='${prefix}-050']`)).toBeInViewport();
    await expect(rows).toHaveCount(10);
  });

  test("a tag links to the elections carrying it, filtered by the server and kept live", async ({
    page,
    electd,
  }) => {
    const tag = uniqueName("team");
    const tagged = [uniqueName("tagged"), uniqueName("tagged")];
    for (const name of tagged) await electd.create(name, [tag, "shared"]);
    await electd.create(uniqueName("untagged"), ["shared"]);
    await page.goto(electd.url);
    await page.getByLabel("Filter").fill(tagged[0] as string);
    await page.getByRole("link", { name: tag }).click();
    await expect(page).toHaveURL(`${electd.url}/?tag=${tag}`);
    await expect(page.getByText(`Elections tagged ${tag}`)).toBeVisible();
    // The server sent only the tagged ones: the page holds two elections in all.
    await expect(page.locator(".count")).toHaveText("2 elections");
    await expect(page.locator("tbody tr[data-name]")).toHaveCount(2);
    const later = uniqueName("tagged-later");
    await electd.create(later, [tag]);
    await electd.create(uniqueName("untagged-later"), ["shared"]);
    await expect(page.locator(`tr[data-name='${later}']`)).toBeVisible(LIVE);
    await expect(page.locator(".count")).toHaveText("3 elections");
    await page.getByRole("link", { name: "All elections" }).click();
    await expect(page).toHaveURL(`${electd.url}/`);
    await expect(page.locator(".count")).not.toHaveText("3 elections");
  });

  test("long names and tags are cut short with the whole text in a title, never widening the table", async ({
    page,
    electd,
  }) => {
    const tag = `t${"x".repeat(255)}`;
    const name = `${uniqueName("long")}-${"n".repeat(200)}`;
    await electd.create(name, [tag, "short"]);
    await electd.candidate("Enter", name, `leader-${"l".repeat(240)}`);
    for (const width of [1100, 360]) {
      await page.setViewportSize({ width, height: 700 });
      await page.goto(`${electd.url}/?tag=${tag}`);
      const row = page.locator(`tr[data-name='${name}']`);
      await expect(row.locator("td[data-label='Leader']")).toHaveText(/^leader-l+$/);
      const overflow = await page.evaluate(() => {
        const table = document.querySelector("table.elections") as HTMLElement;
        const main = document.querySelector("main") as HTMLElement;
        const cells = [...table.querySelectorAll("tr[data-name] > *")];
        // Content past its cell's edge is fine only where the cell cuts it off.
        const beyond = cells.flatMap((cell) => {
          const box = cell.getBoundingClientRect();
          if (getComputedStyle(cell).overflowX !== "visible") return [];
          return [...cell.querySelectorAll("*")]
            .filter((child) => child.getBoundingClientRect().right > box.right + 0.5)
            .map((child) => child.textContent?.slice(0, 20));
        });
        return {
          page: document.documentElement.scrollWidth - window.innerWidth,
          table: table.getBoundingClientRect().right - main.getBoundingClientRect().right,
          tableScroll: table.scrollWidth - table.clientWidth,
          beyond,
        };
      });
      expect(overflow.page, `page at ${width} px`).toBeLessThanOrEqual(0);
      expect(overflow.table, `table at ${width} px`).toBeLessThanOrEqual(0);
      expect(overflow.tableScroll, `table at ${width} px`).toBeLessThanOrEqual(0);
      expect(overflow.beyond, `content spilling out of its cell at ${width} px`).toEqual([]);
      await expect(row.getByRole("link", { name })).toHaveAttribute("title", name);
      await expect(row.locator("td[data-label='Tags'] .tag").first()).toHaveAttribute("title", tag);
    }
  });
});

test.describe("election page", () => {
  test("a deep link opens the election, and a reload of that URL keeps it", async ({
    page,
    electd,
  }) => {
    const name = uniqueName("payments/primary");
    await electd.create(name, ["prod", "payments"]);
    for (const c of ["api-1", "api-2", "api-3"]) await electd.candidate("Enter", name, c);
    await page.goto(`${electd.url}/elections/${encodeURIComponent(name)}`);
    await expect(page.getByRole("heading", { level: 1, name })).toBeVisible();
    await expect(page.locator("#term")).toHaveText("1");
    await expect(page.getByText("Fencing token (term)")).toBeVisible();
    await expect(page.locator("#leader")).toHaveText("api-1");
    await expect(queueOf(page)).toHaveText(["api-2", "api-3"]);
    await expect(page.getByRole("list", { name: "Tags" })).toHaveText(/prod\s*payments/);
    await page.reload();
    await expect(page.locator("#leader")).toHaveText("api-1");
    await expect(queueOf(page)).toHaveText(["api-2", "api-3"]);
  });

  test("changes by another client appear within a second and are drawn on the timeline", async ({
    page,
    electd,
  }) => {
    const name = uniqueName("watch");
    await electd.create(name, []);
    await page.goto(`${electd.url}/elections/${name}`);
    await expect(page.locator("#leader")).toHaveText("No leader");
    await electd.candidate("Enter", name, "a");
    await expect(page.locator("#leader")).toHaveText("a", LIVE);
    await electd.candidate("Enter", name, "b");
    await expect(queueOf(page)).toHaveText(["b"], LIVE);
    await electd.candidate("Anoint", name, "b");
    await expect(page.locator("#leader")).toHaveText("b", LIVE);
    await expect(page.locator("#term")).toHaveText("2");
    await expect(queueOf(page)).toHaveText(["a"]);
    // One reign per leader since the page opened: none, a (term 1), b (term 2).
    const reigns = page.locator("svg.timeline g.reign title");
    await expect(reigns).toHaveCount(3);
    await expect(reigns.nth(1)).toHaveText(/^a, term 1: .* to /);
    await expect(reigns.nth(2)).toHaveText(/^b, term 2: .* to now$/);
  });

  test("the timeline shows the election's past from its history, not only what happened since the page opened", async ({
    page,
    electd,
  }) => {
    const name = uniqueName("past");
    await electd.create(name, []);
    await electd.candidate("Enter", name, "a");
    await electd.candidate("Enter", name, "b");
    await electd.candidate("Withdraw", name, "a");
    await page.goto(`${electd.url}/elections/${name}`);
    await expect(page.locator("#leader")).toHaveText("b");
    // Reigns from before the page opened: none (term 0), a (term 1), b (term 2), then live.
    const reigns = page.locator("svg.timeline g.reign title");
    await expect(reigns).toHaveCount(3);
    await expect(reigns.nth(0)).toHaveText(/^no leader, term 0: .* to /);
    await expect(reigns.nth(1)).toHaveText(/^a, term 1: .* to /);
    await expect(reigns.nth(2)).toHaveText(/^b, term 2: .* to now$/);
    await electd.candidate("Enter", name, "c");
    await electd.candidate("Withdraw", name, "b");
    await expect(reigns).toHaveCount(4, LIVE);
    await expect(reigns.nth(3)).toHaveText(/^c, term 3: .* to now$/);
  });

  test("every admin action works from the page and reports the result", async ({
    page,
    electd,
  }) => {
    const name = uniqueName("admin");
    await electd.create(name, ["demo"]);
    await page.goto(`${electd.url}/elections/${name}`);
    const feedback = page.locator("#feedback");
    const input = page.getByLabel("Candidate", { exact: true });
    // Enter from the form, with the keyboard.
    for (const c of ["a", "b", "c"]) {
      await input.fill(c);
      await input.press("Enter");
      await expect(feedback).toContainText(`Enter ${c}: done`);
    }
    await expect(page.locator("#leader")).toHaveText("a");
    await expect(queueOf(page)).toHaveText(["b", "c"]);

    // The worked example of API.md, clicked.
    // From the keyboard: the focus stays on the button while its candidate moves.
    await page.getByRole("button", { name: "Promote c" }).focus();
    await page.keyboard.press("Enter");
    await expect(feedback).toHaveText("Promote c: done, term 1, leader a, 2 waiting.");
    await expect(queueOf(page)).toHaveText(["c", "b"]);
    await expect(page.getByRole("button", { name: "Promote c" })).toBeFocused();
    await page.getByRole("button", { name: "Promote c" }).click();
    await expect(page.locator("#leader")).toHaveText("c");
    await expect(page.locator("#term")).toHaveText("2");
    await expect(queueOf(page)).toHaveText(["a", "b"]);
    await page.getByRole("button", { name: "Anoint b" }).click();
    await expect(feedback).toHaveText("Anoint b: done, term 3, leader b, 2 waiting.");
    await expect(queueOf(page)).toHaveText(["c", "a"]);
    await input.fill("b");
    await page.getByRole("button", { name: "Withdraw", exact: true }).click();
    await expect(feedback).toHaveText("Withdraw b: done, term 4, leader c, 1 waiting.");
    await page.getByRole("button", { name: "Evict c" }).click();
    await expect(feedback).toHaveText("Evict c: done, term 5, leader a, 0 waiting.");
    await expect(page.locator("#leader")).toHaveText("a");
    await input.fill("d");
    await input.press("Enter");
    await expect(queueOf(page)).toHaveText(["d"]);
    await page.getByRole("button", { name: "Demote a" }).click();
    await expect(feedback).toHaveText("Demote a: done, term 6, leader d, 1 waiting.");
    await expect(queueOf(page)).toHaveText(["a"]);
    await page.getByRole("button", { name: "Demote a" }).click();
    await expect(feedback).toHaveText("Demote a: nothing to change (term 6, leader d, 1 waiting).");

    expect(await electd.term(name)).toEqual({ term: "6", leader: "d", candidates: ["a"] });
  });

  test("an operator's move is made on the term the page shows, and refused if the election moved on meanwhile", async ({
    page,
    electd,
  }) => {
    const name = uniqueName("stale");
    await electd.create(name, []);
    for (const c of ["a", "b", "c"]) await electd.candidate("Enter", name, c);
    await page.goto(`${electd.url}/elections/${name}`);
    await expect(page.locator("#term")).toHaveText("1");
    // Hold the click's call until another operator has anointed someone else.
    let sent = false;
    await page.route(`**/${ADMIN}/Anoint`, async (route) => {
      if (!sent) {
        sent = true;
        await electd.candidate("Anoint", name, "c");
      }
      await route.continue();
    });
    await page.getByRole("button", { name: "Anoint b" }).click();
    const feedback = page.locator("#feedback");
    await expect(feedback).toContainText(
      "Anoint b was not done: the election changed since this page showed term 1",
    );
    await expect(feedback).toContainText('at term 2 with leader "c"');
    expect(await electd.term(name)).toEqual({ term: "2", leader: "c", candidates: ["a", "b"] });
    // On the term it now shows, the same click goes through.
    await expect(page.locator("#term")).toHaveText("2");
    await page.getByRole("button", { name: "Anoint b" }).click();
    await expect(feedback).toHaveText("Anoint b: done, term 3, leader b, 2 waiting.");
  });

  test("a refused action shows the server's message, with no console error", async ({
    page,
    electd,
  }) => {
    const name = uniqueName("refused");
    await electd.create(name, []);
    await page.goto(`${electd.url}/elections/${name}`);
    await expect(page.locator("#leader")).toHaveText("No leader");
    await page.getByRole("button", { name: "Enter", exact: true }).click();
    const feedback = page.locator("#feedback");
    await expect(feedback).toHaveText(
      "The server refused Enter (no name): candidate must not be empty (invalid_argument)",
    );
    await page.getByLabel("Candidate", { exact: true }).fill("bad\u0007name");
    await page.getByRole("button", { name: "Withdraw", exact: true }).click();
    await expect(feedback).toContainText("candidate must not contain control characters");
  });

  test("an unknown election gets a helpful not-found page", async ({ page, electd }) => {
    const name = uniqueName("missing");
    await page.goto(`${electd.url}/elections/${name}`);
    await expect(page.getByRole("heading", { name: "No such election" })).toBeVisible();
    await expect(page.getByText(`This server has no election named ${name}.`)).toBeVisible();
    await expect(page.locator(".not-found code")).toContainText(`"name":"${name}"`);
    await electd.create(name, []);
    await page.getByRole("button", { name: "Check again" }).click();
    await expect(page.getByRole("heading", { level: 1, name })).toBeVisible();
    await page.goto(`${electd.url}/elections/${"x".repeat(300)}`);
    await expect(page.getByRole("heading", { name: "Not a valid election name" })).toBeVisible();
    await expect(page.getByText("name is 300 bytes of UTF-8")).toBeVisible();
    await page.goto(`${electd.url}/elections/${uniqueName("missing")}`);
    await page.getByRole("link", { name: "All elections" }).last().click();
    await expect(page.getByRole("heading", { level: 1, name: "Elections" })).toBeVisible();
  });
});

test.describe("election page, follows and deletes", () => {
  test("follows its own election only: elections whose names start with its name send it nothing", async ({
    page,
    electd,
  }) => {
    const name = uniqueName("spam");
    await electd.create(name, ["solo"]);
    // 300 elections named `<name>0` to `<name>299`, about 70 KB of directory entries.
    const others = Array.from({ length: 300 }, (_, i) => `${name}${i}`);
    await Promise.all(others.map((other) => electd.create(other, ["noise", "n".repeat(200)])));
    // The page's stream in the page itself, as without SharedWorker: the shared one carries
    // what every tab follows; this one only what this page does.
    await page.addInitScript(() => {
      delete (window as { SharedWorker?: unknown }).SharedWorker;
    });
    // Bytes of stream responses, as the browser's network layer counts them.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");
    const streams = new Set<string>();
    let received = 0;
    cdp.on("Network.requestWillBeSent", (event) => {
      if (event.request.url.endsWith("/electd.v1.ElectionHistoryService/WatchElectionList")) {
        streams.add(event.requestId);
      }
    });
    cdp.on("Network.dataReceived", (event) => {
      if (streams.has(event.requestId)) received += event.dataLength;
    });

    await page.goto(`${electd.url}/elections/${name}`);
    await expect(page.getByRole("list", { name: "Tags" })).toHaveText("solo");
    await Promise.all(others.slice(0, 100).map((other) => electd.candidate("Enter", other, "x")));
    // A session-bound leader: once its badge shows, the stream has delivered everything
    // sent before it. Named __proto__, because names are data.
    const { sessionId } = (await electd.call("OpenSession", { ttl: "60s" }, SESSIONS)) as {
      sessionId: string;
    };
    await electd.call("Enter", { id: { name }, candidate: "__proto__" }, LEADER_ELECTION, {
      "electd-session": sessionId,
    });
    await expect(page.locator("#leader")).toHaveText("__proto__", LIVE);
    await expect(page.locator("#leader-session")).toHaveText(/^session [0-9a-f]{12}/, LIVE);
    expect(streams.size).toBeGreaterThan(0);
    // This election's own two states weigh a few hundred bytes.
    expect(received).toBeLessThan(2000);
    await electd.call("CloseSession", { sessionId }, SESSIONS);
  });

  test("Delete, after a confirmation, deletes the election: its page says so and the list drops the row live", async ({
    page,
    electd,
    context,
  }) => {
    const name = uniqueName("doomed");
    await electd.create(name, ["temp"]);
    for (const c of ["a", "b"]) await electd.candidate("Enter", name, c);
    await electd.candidate("Anoint", name, "b");
    const list = await context.newPage();
    await list.goto(electd.url);
    await list.getByLabel("Filter").fill("doomed-");
    await expect(list.locator(`tr[data-name='${name}']`)).toBeVisible();

    await page.goto(`${electd.url}/elections/${name}`);
    await expect(page.locator("#term")).toHaveText("2");
    // Cancel keeps it, and the focus goes back where it was.
    await page.getByRole("button", { name: "Delete election…" }).click();
    await expect(page.getByRole("group")).toContainText(`Delete ${name} for every client?`);
    await expect(page.getByRole("button", { name: "Cancel" })).toBeFocused();
    await page.getByRole("button", { name: "Cancel" }).click();
    await expect(page.getByRole("button", { name: "Delete election…" })).toBeFocused();
    expect(await electd.term(name)).toEqual({ term: "2", leader: "b", candidates: ["a"] });

    await page.getByRole("button", { name: "Delete election…" }).click();
    await page.getByRole("button", { name: "Yes, delete it" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Election deleted" })).toBeFocused();
    await expect(page.getByText(`The election ${name} was deleted from this page.`)).toBeVisible();
    await expect(page.locator(".last-term")).toHaveText(
      "Its last term (fencing token) was 2. Created again under this name, it continues from term 2, so no fencing token is handed out twice.",
    );
    await expect(list.locator(`tr[data-name='${name}']`)).toHaveCount(0, LIVE);
    await expect(electd.term(name)).rejects.toThrow(/not_found/);

    // Deleted by another client while its page is open.
    const other = uniqueName("doomed");
    await electd.create(other, []);
    await electd.candidate("Enter", other, "x");
    await page.goto(`${electd.url}/elections/${other}`);
    await expect(page.locator("#leader")).toHaveText("x");
    await expect(list.locator(`tr[data-name='${other}']`)).toBeVisible(LIVE);
    await electd.call("DeleteElection", { name: other }, ADMIN);
    await expect(page.getByRole("heading", { level: 1, name: "Election deleted" })).toBeVisible(
      LIVE,
    );
    await expect(page.getByText(`The election ${other} was deleted.`)).toBeVisible();
    await expect(list.locator(`tr[data-name='${other}']`)).toHaveCount(0, LIVE);
    await expect(list.getByText("No election matches the filter.")).toBeVisible();

    // Created again, it continues from its last term, and "Check again" opens it.
    await electd.create(other, []);
    await page.getByRole("button", { name: "Check again" }).click();
    await expect(page.getByRole("heading", { level: 1, name: other })).toBeVisible();
    await expect(page.locator("#term")).toHaveText("1");
    await expect(list.locator(`tr[data-name='${other}']`)).toBeVisible(LIVE);
    await list.close();
  });

  test("a malformed address says so instead of showing a blank page", async ({ page, electd }) => {
    await page.goto(`${electd.url}/elections/%E0%A4%A`);
    await expect(
      page.getByRole("heading", { level: 1, name: "Not a valid election address" }),
    ).toBeVisible();
    await expect(page.locator(".not-found code")).toHaveText("%E0%A4%A");
    await page.getByRole("link", { name: "All elections" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Elections" })).toBeVisible();
    // The same from a link inside the app.
    await page.evaluate(() => {
      window.history.pushState(null, "", "/elections/%ZZ");
      window.dispatchEvent(new PopStateEvent("popstate"));
    });
    await expect(
      page.getByRole("heading", { level: 1, name: "Not a valid election address" }),
    ).toBeVisible();
  });
});

test.describe("sessions", () => {
  test("session-bound candidates show their session and remaining TTL; when the leader's session expires the next leads with term+1 within TTL + 1 s, marked on the timeline", async ({
    page,
  }) => {
    // Its own server: the TTL minimum is lowered so the leader's session can be short.
    const server = new ElectdProcess(["--session-ttl-min", "500ms"]);
    await server.start();
    let keeping: ReturnType<typeof setInterval> | undefined;
    try {
      const name = "sessions/primary";
      const open = async (ttl: string) =>
        ((await server.call("OpenSession", { ttl }, SESSIONS)) as { sessionId: string }).sessionId;
      const enter = (candidate: string, session: string) =>
        server.call("Enter", { id: { name }, candidate }, LEADER_ELECTION, {
          "electd-session": session,
        });
      await server.create(name, ["prod"]);
      const leaderSession = await open("2s");
      const standbySession = await open("60s");
      // The leader's client keeps its session alive until it "crashes" below.
      let lastKeepAlive = Promise.resolve(Date.now());
      keeping = setInterval(() => {
        lastKeepAlive = server
          .call("KeepAlive", { sessionId: leaderSession }, SESSIONS)
          .then(() => Date.now());
      }, 400);
      await enter("worker-a", leaderSession);
      await enter("worker-b", standbySession);
      await server.candidate("Enter", name, "worker-c");

      await page.setViewportSize({ width: 1100, height: 760 });
      await page.goto(`${server.url}/elections/${encodeURIComponent(name)}`);
      await expect(page.locator("#leader")).toHaveText("worker-a");
      await expect(page.locator("#term")).toHaveText("1");
      const badge = page.locator("#leader-session");
      await expect(badge).toHaveText(/^session [0-9a-f]{12} · [0-2]\.\d s left of 2\.0 s$/);
      const standby = page.locator("ol.queue > li[data-candidate='worker-b'] .session");
      await expect(standby).toHaveText(/^session [0-9a-f]{12} · \d+\.\d s left of 60\.0 s$/);
      await expect(page.locator("ol.queue > li[data-candidate='worker-c'] .session")).toBeHidden();
      const leaderPrint = (await badge.textContent())?.slice(8, 20);
      expect((await standby.textContent())?.slice(8, 20)).not.toBe(leaderPrint);
      // Let the timeline show worker-a's reign for a while.
      await page.waitForTimeout(2500);

      // The leader's client stops keeping alive: the countdown runs down.
      clearInterval(keeping);
      keeping = undefined;
      const stoppedAt = await lastKeepAlive;
      await expect(badge).toHaveText(/· [01]\.\d s left of 2\.0 s$/);
      await expect(page.locator("#leader")).toHaveText("worker-b", {
        timeout: Math.max(2000 + 1000 - (Date.now() - stoppedAt), 0),
      });
      await expect(page.locator("#term")).toHaveText("2");
      await expect(queueOf(page)).toHaveText(["worker-c"]);
      await expect(badge).toHaveText(/ left of 60\.0 s$/);
      await expect(page.locator("#leader-cause")).toHaveText(
        "Took over because worker-a's session expired.",
        LIVE,
      );
      const marked = page.locator("svg.timeline g.after-session-end");
      await expect(marked).toHaveCount(1);
      await expect(marked).toHaveAttribute("data-cause", "session expired");
      await expect(marked.locator("title")).toHaveText(
        /^worker-b, term 2: .* to now \(took over because worker-a's session expired\)$/,
      );
      await expect(page.locator("svg.timeline")).toHaveAttribute(
        "aria-label",
        /1 begun because a leader's session ended; now worker-b, term 2, since .*, took over because worker-a's session expired$/,
      );
      await expect(page.locator(".timeline-legend")).toBeVisible();
      await expect(page.locator(".timeline-legend")).toContainText("session expired");
      await page.waitForTimeout(1500);
      await screenshot(page, "sessions.png");
      // A leader entered without a session wears no badge.
      await server.candidate("Anoint", name, "worker-c");
      await expect(page.locator("#leader")).toHaveText("worker-c", LIVE);
      await expect(badge).toBeHidden();
      await expect(page.locator("#leader-cause")).toBeHidden();
    } finally {
      if (keeping) clearInterval(keeping);
      await page.goto("about:blank");
      await server.stop();
    }
  });
});

test.describe("sessions whose candidates cannot be withdrawn yet", () => {
  test("an ended session shows CLOSING or EXPIRING while the store cannot commit its withdrawal, and its badge goes once it commits", async ({
    page,
  }) => {
    // Another process holds the data file's write lock, as the sqlite3 shell would: the
    // server retries each withdrawal until the lock is gone.
    const dataDir = await mkdtemp(join(tmpdir(), "electd-e2e-"));
    const server = new ElectdProcess([
      "--store",
      "durable",
      "--data-dir",
      dataDir,
      "--session-ttl-min",
      "500ms",
    ]);
    await server.start();
    let keeping: ReturnType<typeof setInterval> | undefined;
    let lock: Database.Database | undefined;
    try {
      const name = "sessions/ending";
      const open = async (ttl: string) =>
        ((await server.call("OpenSession", { ttl }, SESSIONS)) as { sessionId: string }).sessionId;
      const enter = (candidate: string, session: string) =>
        server.call("Enter", { id: { name }, candidate }, LEADER_ELECTION, {
          "electd-session": session,
        });
      await server.create(name, []);
      const closed = await open("60s");
      const expired = await open("1s");
      keeping = setInterval(() => {
        server.call("KeepAlive", { sessionId: expired }, SESSIONS).catch(() => {});
      }, 250);
      await enter("worker-a", closed);
      await enter("worker-b", expired);

      await page.goto(`${server.url}/elections/${encodeURIComponent(name)}`);
      const leaderBadge = page.locator("#leader-session");
      const standbyBadge = page.locator("ol.queue > li[data-candidate='worker-b'] .session");
      await expect(leaderBadge).toHaveText(/ s left of 60\.0 s$/);
      await expect(standbyBadge).toHaveText(/ s left of 1\.0 s$/);
      await expect(leaderBadge).not.toHaveClass(/ending/);

      lock = new Database(join(dataDir, DATA_FILE));
      lock.exec("BEGIN IMMEDIATE");
      await expect(server.call("CloseSession", { sessionId: closed }, SESSIONS)).rejects.toThrow(
        /could not be saved/,
      );
      clearInterval(keeping);
      keeping = undefined;
      await expect(leaderBadge).toHaveText(/^session [0-9a-f]{12} · CLOSING$/, { timeout: 3000 });
      await expect(leaderBadge).toHaveClass(/ending/);
      await expect(standbyBadge).toHaveText(/^session [0-9a-f]{12} · EXPIRING$/, {
        timeout: 3000,
      });
      await expect(standbyBadge).toHaveClass(/ending/);
      // Nothing was withdrawn meanwhile.
      await expect(page.locator("#leader")).toHaveText("worker-a");
      await screenshot(page, "sessions-ending.png");

      lock.exec("ROLLBACK");
      lock.close();
      lock = undefined;
      await expect(page.locator("#leader")).not.toHaveText("worker-a", { timeout: 5000 });
      await expect(queueOf(page)).toHaveCount(0, { timeout: 5000 });
      await expect(leaderBadge).toBeHidden();
    } finally {
      if (keeping) clearInterval(keeping);
      if (lock) {
        lock.exec("ROLLBACK");
        lock.close();
      }
      await page.goto("about:blank");
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

for (const store of ["durable", "memory"] as const) {
  test(`after a server restart (${store} store) the page says so, reconnects and resumes live updates without reload`, async ({
    page,
    allowConsole,
  }) => {
    // While the server is down Chromium logs each refused connection attempt, and a server
    // that is shutting down answers 503.
    allowConsole(/ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|status of 503/);
    const dataDir = await mkdtemp(join(tmpdir(), "electd-e2e-"));
    const server = new ElectdProcess(
      store === "durable" ? ["--store", "durable", "--data-dir", dataDir] : ["--store", "memory"],
    );
    await server.start();
    try {
      await server.create("before-restart", []);
      await server.candidate("Enter", "before-restart", "kept");
      await page.goto(server.url);
      const before = page.locator("tr[data-name='before-restart']");
      await expect(before.locator("td[data-label='Leader']")).toHaveText("kept");
      await expect(page.locator("#connection")).toHaveText("Live");
      await page.evaluate(() => {
        (window as unknown as { loadedOnce: boolean }).loadedOnce = true;
      });

      await server.stop();
      await expect(page.locator("#connection")).toHaveText("Offline");
      await expect(page.locator("#banner")).toContainText("Lost connection to the server");
      await page.waitForTimeout(1500);
      await server.start();

      await expect(page.locator("#connection")).toHaveText("Live", { timeout: 6000 });
      await expect(page.locator("#banner")).toBeHidden();
      if (store === "durable") {
        await expect(before.locator("td[data-label='Leader']")).toHaveText("kept");
        await server.candidate("Withdraw", "before-restart", "kept");
        await expect(before.locator("td[data-label='Leader']")).toHaveText("—", LIVE);
      } else {
        // Nothing survived: the fresh snapshot replaces the list shown before.
        await expect(before).toHaveCount(0);
      }
      await server.create("after-restart", ["new"]);
      await expect(page.locator("tr[data-name='after-restart']")).toBeVisible(LIVE);
      expect(
        await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce),
      ).toBe(true);
    } finally {
      await page.goto("about:blank");
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
}

test.describe("at 360 px wide", () => {
  test.use({ viewport: { width: 360, height: 740 } });

  test("both pages fit without sideways scrolling", async ({ page, electd }) => {
    const name = uniqueName("narrow-election-with-a-rather-long-name");
    await electd.create(name, ["mobile", "check"]);
    for (const c of ["first-candidate", "second-candidate"])
      await electd.candidate("Enter", name, c);
    await page.goto(electd.url);
    await expect(page.locator(`tr[data-name='${name}']`)).toBeVisible();
    const scrollWidth = () => page.evaluate(() => document.documentElement.scrollWidth);
    expect(await scrollWidth()).toBeLessThanOrEqual(360);
    await page.goto(`${electd.url}/elections/${name}`);
    await expect(page.locator("#leader")).toHaveText("first-candidate");
    expect(await scrollWidth()).toBeLessThanOrEqual(360);
    await page.getByRole("button", { name: "Promote second-candidate" }).click();
    await expect(page.locator("#leader")).toHaveText("second-candidate");
  });
});

test("after a reconnect the election page gets exactly the changes made while it was away, and says how many", async ({
  page,
  allowConsole,
}) => {
  allowConsole(/ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|status of 503/);
  const dataDir = await mkdtemp(join(tmpdir(), "electd-e2e-away-"));
  const server = new ElectdProcess(["--store", "durable", "--data-dir", dataDir]);
  await server.start();
  try {
    await server.create("away", []);
    await server.candidate("Enter", "away", "a");
    // The page's stream in the page itself, where page.route() can hold it (Playwright sees
    // no request of a SharedWorker): the shared stream resumes the same way.
    await page.addInitScript(() => {
      delete (window as { SharedWorker?: unknown }).SharedWorker;
    });
    await page.goto(`${server.url}/elections/away`);
    await expect(page.locator("#leader")).toHaveText("a");
    await expect(page.locator("#connection")).toHaveText("Live");

    await server.stop();
    await expect(page.locator("#connection")).toHaveText("Offline");
    // The page's next stream waits until two changes were made without it.
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    await page.route("**/electd.v1.ElectionHistoryService/WatchElectionList", async (route) => {
      await held;
      await route.continue();
    });
    await server.start();
    await server.candidate("Enter", "away", "b");
    await server.candidate("Withdraw", "away", "a");
    release();

    await expect(page.locator("#leader")).toHaveText("b", { timeout: 10_000 });
    await expect(page.locator("#banner")).toHaveText(
      "Back online. 2 changes arrived while this page was away.",
    );
    // The reign of b began while the page was away: drawn all the same.
    const reigns = page.locator("svg.timeline g.reign title");
    await expect(reigns.last()).toHaveText(/^b, term 2: .* to now$/);
    await server.candidate("Enter", "away", "c");
    await expect(queueOf(page)).toHaveText(["c"], LIVE);
  } finally {
    await page.goto("about:blank");
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("eight tabs acting on the same term at once over TLS (HTTP/2): one move goes through, seven are refused, and every tab ends on the same state", async ({
  browser,
}) => {
  // Served over TLS, where browsers speak HTTP/2 (eight tabs over plain HTTP/1.1, sharing
  // one stream, are e2e/tabs.spec.ts).
  const dir = await mkdtemp(join(tmpdir(), "electd-e2e-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  await promisify(execFile)("openssl", [
    ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
    ...["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
  ]);
  const server = new ElectdProcess(["--tls-cert", cert, "--tls-key", key]);
  await server.start();
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const name = uniqueName("tabs");
    const call = (method: string, body: object) =>
      context.request.post(`${server.url}/${LEADER_ELECTION}/${method}`, { data: body });
    await call("Create", { id: { name } });
    for (let i = 0; i < 9; i++) await call("Enter", { id: { name }, candidate: `c${i}` });
    const tabs = await Promise.all(Array.from({ length: 8 }, () => context.newPage()));
    await Promise.all(tabs.map((tab) => tab.goto(`${server.url}/elections/${name}`)));
    for (const tab of tabs) await expect(tab.locator("#term")).toHaveText("1");
    // Each tab anoints a different candidate on the term 1 it shows; the calls are held
    // until all eight are sent, then let go together.
    const held: Route[] = [];
    let allSent: () => void = () => {};
    const sent = new Promise<void>((resolve) => {
      allSent = resolve;
    });
    await context.route("**/electd.v1.ElectionAdminService/Anoint", async (route) => {
      held.push(route);
      if (held.length === tabs.length) allSent();
    });
    await Promise.all(
      tabs.map((tab, i) => tab.getByRole("button", { name: `Anoint c${i + 1}` }).click()),
    );
    await sent;
    await Promise.all(held.map((route) => route.continue()));
    const outcomes = await Promise.all(
      tabs.map(async (tab) => {
        const feedback = tab.locator("#feedback");
        await expect(feedback).not.toHaveText(/…$/);
        return (await feedback.textContent()) ?? "";
      }),
    );
    expect(outcomes.filter((o) => / done, term 2, /.test(o))).toHaveLength(1);
    expect(outcomes.filter((o) => /was not done: the election changed/.test(o))).toHaveLength(7);
    const term = (await (await call("GetTerm", { id: { name } })).json()) as {
      term: { term: string; leader: string };
    };
    expect(term.term.term).toBe("2");
    for (const tab of tabs) {
      await expect(tab.locator("#term")).toHaveText("2", LIVE);
      await expect(tab.locator("#leader")).toHaveText(term.term.leader, LIVE);
    }
  } finally {
    await context.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test("every control has a label and the screenshots of both pages are saved", async ({ page }) => {
  const server = new ElectdProcess();
  await server.start();
  try {
    const seed: [string, string[], string[]][] = [
      ["billing/primary", ["prod", "eu-west-1"], ["billing-7d9f", "billing-2c1a", "billing-9e4b"]],
      ["inventory/writer", ["prod"], ["inv-0", "inv-1"]],
      ["jobs/scheduler", ["staging"], []],
      ["search/indexer", ["prod", "batch"], ["idx-a", "idx-b", "idx-c", "idx-d"]],
    ];
    for (const [name, tags, candidates] of seed) {
      await server.create(name, tags);
      for (const c of candidates) await server.candidate("Enter", name, c);
    }
    await page.setViewportSize({ width: 1100, height: 640 });
    await page.goto(server.url);
    await expect(page.locator("tbody tr[data-name]")).toHaveCount(4);
    await expect(page.locator("#connection")).toHaveText("Live");
    await screenshot(page, "list.png");

    await page.goto(`${server.url}/elections/${encodeURIComponent("billing/primary")}`);
    await expect(page.locator("#leader")).toHaveText("billing-7d9f");
    await server.candidate("Promote", "billing/primary", "billing-2c1a");
    await expect(page.locator("#leader")).toHaveText("billing-2c1a");
    await page.waitForTimeout(1200);
    await server.candidate("Evict", "billing/primary", "billing-2c1a");
    await expect(page.locator("#leader")).toHaveText("billing-7d9f");
    await page.waitForTimeout(1200);
    const unlabelled = await page
      .locator("button, input, a")
      .evaluateAll((elements) =>
        elements
          .filter((e) =>
            e instanceof HTMLInputElement
              ? (e.labels?.length ?? 0) === 0 && !e.getAttribute("aria-label")
              : (e.getAttribute("aria-label") ?? e.textContent ?? "").trim() === "",
          )
          .map((e) => e.outerHTML),
      );
    expect(unlabelled).toEqual([]);
    await screenshot(page, "election.png");
  } finally {
    await page.goto("about:blank");
    await server.stop();
  }
});
