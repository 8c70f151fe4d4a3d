// Fixtures for the dashboard tests: a real electd process (one per worker, or one per test
// when a test needs its own), plain JSON calls to its API as "another client", and a page
// that fails the test on any console error or uncaught exception.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { test as base, expect, type Page } from "@playwright/test";
import { settings } from "../server/config.js";

/** `--store memory` where the server has a choice of store and the test made none. */
function storeFlags(flags: readonly string[]): string[] {
  const choice = Object.values(settings).some((s) => (s.flag as string) === "store");
  const chosen = flags.some((f) => f === "--store" || f.startsWith("--store="));
  return choice && !chosen ? ["--store", "memory"] : [];
}

// The server serves whatever `vite build` left in web/dist; without it every page test
// would fail on a 503 instead of saying what is wrong.
if (!existsSync("web/dist/index.html")) {
  throw new Error("web/dist is missing: run `npm run build` before the browser tests");
}

/** An electd server process that can be stopped and started again on the same port. */
export class ElectdProcess {
  private child: ChildProcess | undefined;
  url = "";
  port = 0;

  constructor(private readonly flags: readonly string[] = []) {}

  async start(): Promise<void> {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "server/main.ts",
        "--host",
        "127.0.0.1",
        "--port",
        String(this.port),
        "--log-level",
        "warn",
        ...storeFlags(this.flags),
        ...this.flags,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    let output = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    this.url = await new Promise<string>((resolve, reject) => {
      child.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        const found = /electd listening on (\S+)/.exec(output);
        if (found?.[1]) resolve(found[1]);
      });
      child.once("exit", (code) => reject(new Error(`electd exited (${code}):\n${output}`)));
    });
    this.port = Number(new URL(this.url).port);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    await exited;
    this.child = undefined;
  }

  /** A plain Connect JSON call, as curl or any HTTP client would make it. */
  async call(
    method: string,
    body: object,
    service = LEADER_ELECTION,
    headers: Record<string, string> = {},
  ): Promise<unknown> {
    const response = await fetch(`${this.url}/${service}/${method}`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = (await response.json()) as unknown;
    if (!response.ok) throw new Error(`${method} failed: ${JSON.stringify(json)}`);
    return json;
  }

  create(name: string, tags: string[] = []) {
    return this.call("Create", { id: { name }, tags });
  }

  /** Runs a candidate rpc (Enter, Withdraw, Anoint, ...) and returns the new term. */
  async candidate(method: string, name: string, candidate: string): Promise<JsonTerm> {
    const reply = (await this.call(method, { id: { name }, candidate })) as { term?: JsonTerm };
    return reply.term ?? {};
  }

  async term(name: string): Promise<JsonTerm> {
    const reply = (await this.call("GetTerm", { id: { name } })) as { term?: JsonTerm };
    return reply.term ?? {};
  }
}

/** A Term as Connect JSON writes it: zero values are left out, uint64 is a string. */
export interface JsonTerm {
  term?: string;
  leader?: string;
  candidates?: string[];
}

export const LEADER_ELECTION = "atomix.runtime.election.v1.LeaderElection";
export const SESSIONS = "electd.v1.SessionService";

interface Fixtures {
  /** Console messages a test expects (for example while the server is down). */
  allowConsole: (pattern: RegExp) => void;
}

interface WorkerFixtures {
  electd: ElectdProcess;
}

export const test = base.extend<Fixtures, WorkerFixtures>({
  electd: [
    // biome-ignore lint/correctness/noEmptyPattern: Playwright reads the fixture list from it.
    async ({}, use) => {
      const server = new ElectdProcess();
      await server.start();
      await use(server);
      await server.stop();
    },
    { scope: "worker" },
  ],
  allowConsole: [
    async ({ page }, use) => {
      const allowed: RegExp[] = [];
      const problems: string[] = [];
      page.on("console", (message) => {
        if (message.type() !== "error" && message.type() !== "warning") return;
        const text = message.text();
        if (!allowed.some((pattern) => pattern.test(text))) problems.push(text);
      });
      page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
      await use((pattern) => allowed.push(pattern));
      expect(problems, "console errors and warnings on the page").toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/** A unique election name per test, so tests sharing a server do not meet. */
export function uniqueName(label: string): string {
  return `${label}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The queue as shown on the election page, in order. */
export function queueOf(page: Page) {
  return page.locator("ol.queue > li .candidate");
}
