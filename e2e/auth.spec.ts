// The dashboard with auth on, in Chromium: it asks for a token, keeps it for the tab,
// shows who is signed in and who made each change, offers operator moves to admins only,
// explains a 401 or 403 in words; and it cannot be framed by another page.
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ElectdProcess, expect, LEADER_ELECTION, test, uniqueName } from "./fixtures.js";

const tokens = new Map<string, string>();
const identities = [
  { name: "ops", grants: [{ role: "admin" }] },
  { name: "worker", grants: [{ role: "candidate", prefix: "orders/" }] },
  { name: "watcher", grants: [{ role: "viewer" }] },
].map((identity) => {
  const token = randomBytes(24).toString("base64url");
  tokens.set(identity.name, token);
  return { ...identity, token_sha256: createHash("sha256").update(token).digest("hex") };
});
const authFile = join(mkdtempSync(join(tmpdir(), "electd-e2e-auth-")), "auth.json");
writeFileSync(authFile, JSON.stringify({ identities }));

const server = new ElectdProcess(["--auth-file", authFile]);
const as = (who: string) => ({ authorization: `Bearer ${tokens.get(who)}` });

test.beforeAll(async () => {
  await server.start();
});
test.afterAll(async () => {
  await server.stop();
});

async function signIn(page: import("@playwright/test").Page, token: string) {
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

test("asks for a token, refuses a wrong one in words, and shows who is signed in", async ({
  page,
}) => {
  await page.goto(server.url);
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await signIn(page, "not-a-token");
  await expect(page.locator("#sign-in-problem")).toContainText(
    "The server did not accept that token (401 unauthenticated)",
  );
  await signIn(page, tokens.get("watcher") as string);
  await expect(page.locator("#identity")).toContainText("Signed in as watcher (viewer)");
  // Kept for the tab: a reload needs no new sign-in.
  await page.reload();
  await expect(page.locator("#identity")).toContainText("Signed in as watcher");
  // Gone from a new tab's storage (sessionStorage is per tab).
  const other = await page.context().newPage();
  await other.goto(server.url);
  await expect(other.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await other.close();
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
});

test("offers operator moves to admins only, and shows who made each change", async ({ page }) => {
  const name = uniqueName("orders/ops");
  await server.call("Create", { id: { name } }, LEADER_ELECTION, as("ops"));
  await server.call("Enter", { id: { name }, candidate: "a" }, LEADER_ELECTION, as("ops"));
  await server.call("Enter", { id: { name }, candidate: "b" }, LEADER_ELECTION, as("worker"));

  await page.goto(`${server.url}/elections/${encodeURIComponent(name)}`);
  await signIn(page, tokens.get("watcher") as string);
  await expect(page.locator("#leader")).toHaveText("a");
  const changes = page.locator("#changes li");
  await expect(changes).toHaveCount(3);
  await expect(changes.nth(0)).toContainText("Entered b");
  await expect(changes.nth(0).locator(".by")).toHaveText("worker");
  await expect(changes.nth(1).locator(".by")).toHaveText("ops");
  await expect(changes.nth(2)).toContainText("Created");
  // A viewer: no operator buttons, no enter form, no delete.
  await expect(page.locator("ol.queue .buttons button").first()).toBeHidden();
  await expect(page.locator("#delete")).toBeHidden();
  await expect(page.locator("#candidate")).toBeHidden();
  // A change made meanwhile arrives with its identity.
  await server.call("Evict", { id: { name }, candidate: "b" }, LEADER_ELECTION, as("ops"));
  await expect(changes.nth(0)).toContainText("Evicted b");
  await expect(changes.nth(0).locator(".by")).toHaveText("ops");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.goto(`${server.url}/elections/${encodeURIComponent(name)}`);
  await signIn(page, tokens.get("ops") as string);
  await expect(page.locator("#delete")).toBeVisible();
  await expect(page.locator(".leader .buttons button").first()).toBeVisible();
});

test("lists only the names an identity may view", async ({ page }) => {
  const mine = uniqueName("orders/listed");
  const theirs = uniqueName("payments/hidden");
  await server.call("Create", { id: { name: mine } }, LEADER_ELECTION, as("ops"));
  await server.call("Create", { id: { name: theirs } }, LEADER_ELECTION, as("ops"));
  await page.goto(server.url);
  await signIn(page, tokens.get("worker") as string);
  await expect(page).toHaveURL(/\?prefix=orders%2F$/);
  await expect(page.getByRole("link", { name: mine })).toBeVisible();
  await expect(page.getByRole("link", { name: theirs })).toHaveCount(0);
});

test("explains a refused move (403) in words and changes nothing", async ({ page }) => {
  const name = uniqueName("orders/mine");
  await server.call("Create", { id: { name } }, LEADER_ELECTION, as("ops"));
  await server.call("Enter", { id: { name }, candidate: "theirs" }, LEADER_ELECTION, as("ops"));
  await page.goto(`${server.url}/elections/${encodeURIComponent(name)}`);
  await signIn(page, tokens.get("worker") as string);
  await expect(page.locator("#identity")).toContainText("candidate on orders/…");
  await page.locator("#candidate").fill("theirs");
  await page.getByRole("button", { name: "Withdraw" }).click();
  await expect(page.locator("#feedback")).toContainText(
    "Not allowed for worker (403 permission denied)",
  );
  await expect(page.locator("#feedback")).toContainText("needs the admin role");
  await expect(page.locator("#leader")).toHaveText("theirs");
  await page.locator("#candidate").fill("mine");
  await page.getByRole("button", { name: "Enter" }).click();
  await expect(page.locator("ol.queue")).toContainText("mine");
});

test("does not render inside another site's frame", async ({ page, allowConsole }) => {
  allowConsole(/Refused to (frame|display)|frame-ancestors|X-Frame-Options/);
  // setContent waits for the load event, which waits for the frame's load (or refusal).
  await page.setContent(`<iframe id="f" src="${server.url}/" width="800" height="600"></iframe>`);
  const frame = page.frameLocator("#f");
  // The sign-in form (or any of the dashboard) never appears in the frame.
  await expect(frame.locator("header.bar")).toHaveCount(0);
  await expect(frame.getByRole("heading", { name: "Sign in" })).toHaveCount(0);
});
