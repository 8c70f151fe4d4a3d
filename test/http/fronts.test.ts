// h2c processes (`--h2c-processes`, server/http/fronts.ts and front.ts), beyond the answers
// themselves (direct.test.ts and rpc/election.test.ts compare those with a server without
// them): an h2c process that dies is replaced, the connections they hold are counted and
// capped, the request headers they number reach each call intact, and the flag is refused
// where it cannot work. Shutdown with them: shutdown.test.ts.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { type ClientHttp2Session, connect as h2connect } from "node:http2";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  CreateRequestSchema,
  EnterRequestSchema,
  GetTermRequestSchema,
} from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ListElectionsRequestSchema } from "../../gen/electd/v1/directory_pb.js";
import { start } from "../../server/electd.js";
import { grpcEnvelope as envelope } from "../support/grpc.js";
import { childrenOf, runMain } from "../support/process.js";
import { startServer, testConfig } from "../support/server.js";
import { tempDir } from "../support/tempdir.js";

const election = "/atomix.runtime.election.v1.LeaderElection/";
const PATIENCE_MS = 20_000;

const getTerm = (name: string) =>
  envelope(toBinary(GetTermRequestSchema, create(GetTermRequestSchema, { id: { name } })));
const createElection = (name: string) =>
  envelope(toBinary(CreateRequestSchema, create(CreateRequestSchema, { id: { name } })));
const enter = (name: string, candidate: string) =>
  envelope(toBinary(EnterRequestSchema, create(EnterRequestSchema, { id: { name }, candidate })));

interface Answer {
  readonly headers: Record<string, unknown>;
  readonly trailers: Record<string, unknown>;
  readonly body: Buffer;
}

/** One gRPC call on `session`. */
function call(
  session: ClientHttp2Session,
  path: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let head: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      head = { ...h };
    });
    stream.on("trailers", (t) => {
      trailers = { ...t };
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ headers: head, trailers, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    stream.end(body);
  });
}

async function connected(url: string): Promise<ClientHttp2Session> {
  const session = h2connect(url);
  session.on("error", () => {});
  await once(session, "connect");
  return session;
}

/** The processes whose parent is this one and that run an h2c process (from /proc). */
function h2cProcesses(): number[] {
  return childrenOf(process.pid)
    .filter((child) => /front\.(ts|js)/.test(child.command))
    .map((child) => child.pid);
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${PATIENCE_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("h2c processes", () => {
  it("replace one that dies, and serve on", async () => {
    const before = new Set(h2cProcesses());
    const server = await startServer(["--h2c-processes", "1"]);
    const started = h2cProcesses().filter((pid) => !before.has(pid));
    assert.equal(started.length, 1, "one h2c process");
    const [victim] = started as [number];
    const session = await connected(server.url);
    await call(session, `${election}Create`, createElection("k"));
    const ok = await call(session, `${election}GetTerm`, getTerm("k"));
    assert.equal(ok.trailers["grpc-status"], "0");
    const closed = once(session, "close");
    process.kill(victim, "SIGKILL");
    // Its connections go with it; a new one is served by the process started in its place.
    await closed;
    await until("another h2c process runs", () =>
      h2cProcesses().some((pid) => !before.has(pid) && pid !== victim),
    );
    let answered: Answer | undefined;
    await until("a new connection is answered", async () => {
      const again = await connected(server.url);
      try {
        answered = await call(again, `${election}GetTerm`, getTerm("k"));
        return true;
      } catch {
        return false;
      } finally {
        again.close();
      }
    });
    assert.equal(answered?.trailers["grpc-status"], "0");
  });

  it("count the connections they hold in /healthz, each keeping its share of the cap", async () => {
    // Two processes, a cap of 4: each holds 2, and connections go to them in turn.
    const server = await startServer(["--h2c-processes", "2", "--max-connections", "4"]);
    const connections = async () =>
      ((await (await fetch(`${server.url}/healthz`)).json()) as { connections: number })
        .connections;
    const sessions: ClientHttp2Session[] = [];
    after(() => {
      for (const s of sessions) s.destroy();
    });
    for (let i = 0; i < 4; i++) {
      const session = await connected(server.url);
      await call(session, `${election}GetTerm`, getTerm("none"));
      sessions.push(session);
    }
    // fetch's own connection is the main process's (HTTP/1.1): one more than those.
    await until("the four are counted", async () => (await connections()) === 5);
    const [first, second] = sessions as [ClientHttp2Session, ClientHttp2Session];
    const firstClosed = once(first, "close");
    // The fifth goes to the first process, which is at its share: its longest idle one
    // (the first) makes room, and the other process's are left alone.
    const fifth = await connected(server.url);
    sessions.push(fifth);
    await call(fifth, `${election}GetTerm`, getTerm("none"));
    await firstClosed;
    assert.equal(second.closed, false, "the other process's connections stay");
    assert.equal(
      (await call(second, `${election}GetTerm`, getTerm("none"))).trailers["grpc-status"],
      "5",
    );
  });

  it("give each call its own request headers, however many different sets arrive", async () => {
    const server = await startServer(["--h2c-processes", "1", "--compress-min-bytes", "1"]);
    const session = await connected(server.url);
    after(() => session.close());
    await call(session, `${election}Create`, createElection("l"));
    await call(session, `${election}Enter`, enter("l", "a"));
    const list = envelope(
      toBinary(ListElectionsRequestSchema, create(ListElectionsRequestSchema, {})),
    );
    // More distinct sets than an h2c process numbers at once (1,024), in batches: whether
    // the answer is gzipped says which set the main process saw.
    for (let from = 0; from < 1100; from += 100) {
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const n = from + i;
          const accept = n % 3 === 0 ? "gzip" : "identity";
          return call(session, "/electd.v1.ElectionDirectoryService/ListElections", list, {
            "grpc-accept-encoding": accept,
            "x-call": String(n),
          }).then((answer) => ({ accept, answer }));
        }),
      );
      for (const { accept, answer } of answers) {
        assert.equal(answer.trailers["grpc-status"], "0");
        assert.equal(answer.headers["grpc-encoding"], accept === "gzip" ? "gzip" : undefined);
      }
    }
  });
});

describe("h2c processes, with clients that misbehave", () => {
  it("stay up when a client resets a proxied stream while its body waits", async () => {
    const before = new Set(h2cProcesses());
    const server = await startServer(["--h2c-processes", "1"]);
    const [pid] = h2cProcesses().filter((p) => !before.has(p)) as [number];
    // A POST the main process answers 404 without reading its body: the client's stream is
    // reset (NO_ERROR) with data still buffered, as the answer comes back.
    for (let i = 0; i < 5; i++) {
      const session = await connected(server.url);
      const stream = session.request({ ":method": "POST", ":path": "/nope" }, { endStream: false });
      stream.on("error", () => {});
      await new Promise<void>((resolve) => {
        stream.write(Buffer.alloc(120_000, 1), () => resolve());
        setTimeout(resolve, 100);
      });
      stream.close(0);
      await new Promise((resolve) => setTimeout(resolve, 200));
      session.destroy();
    }
    assert.ok(h2cProcesses().includes(pid), "the same h2c process serves on");
    const session = await connected(server.url);
    after(() => session.close());
    assert.equal(
      (await call(session, `${election}GetTerm`, getTerm("none"))).trailers["grpc-status"],
      "5",
    );
  });

  it("do not let the main process stop under its own requests in progress", async () => {
    const server = await start(testConfig(["--h2c-processes", "1"]));
    // One connection handed to the h2c process, then an HTTP/1.1 request half sent to the
    // main process: stopping waits for it (here, until the grace cuts it).
    const session = await connected(server.url);
    await call(session, `${election}GetTerm`, getTerm("none"));
    session.close();
    const { hostname, port } = new URL(server.url);
    const socket = netConnect(Number(port), hostname);
    socket.on("error", () => {});
    await once(socket, "connect");
    let closed = false;
    socket.once("close", () => {
      closed = true;
    });
    socket.write(
      `POST ${election}GetTerm HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id":`,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Stopped, the server has cut it at the end of the grace (one that stopped without
    // waiting for it would leave it open, its request in progress).
    await server.stop(1000);
    await until("the connection in progress was cut as the server stopped", () => closed);
  });
});

/**
 * A client in a process of its own: one call, then "ready" on stdout, then `count` calls of
 * about 1 KB at once; writes `marker` at the first refused (REFUSED_STREAM), and prints how
 * many were refused, answered (with a gRPC status) and neither.
 */
const floodClient = `
const http2 = require("node:http2");
const fs = require("node:fs");
const [url, marker, count] = process.argv.slice(1);
const session = http2.connect(url);
const body = Buffer.alloc(1000);
body.writeUInt32BE(995, 1);
const call = (done) => {
  const stream = session.request({ ":method": "POST", ":path": "${election}GetTerm",
    "content-type": "application/grpc", te: "trailers" });
  let status;
  stream.on("error", () => {});
  stream.on("trailers", (t) => { status = t["grpc-status"]; });
  stream.on("close", () => done(stream.rstCode, status));
  stream.resume();
  stream.end(body);
};
call(() => {
  console.log("ready");
  const tally = { refused: 0, answered: 0, neither: 0 };
  let left = Number(count);
  for (let i = 0; i < Number(count); i++) {
    call((rstCode, status) => {
      if (rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
        if (++tally.refused === 1) fs.writeFileSync(marker, "");
      } else if (status !== undefined) tally.answered++;
      else tally.neither++;
      if (--left === 0) {
        console.log(JSON.stringify(tally));
        session.close();
      }
    });
  }
});
`;

describe("h2c processes, with a main process that falls behind", () => {
  it("refuse new calls past what it has yet to take, and answer the rest", async () => {
    // 64 requests of the largest size (1 KiB here) may wait: 300 calls of 1 KB are more.
    const server = await startServer(["--h2c-processes", "1", "--max-request-bytes", "1024"]);
    const marker = join(tempDir("flood"), "refused");
    const client = spawn(process.execPath, ["-e", floodClient, server.url, marker, "300"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    client.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    await until("the client is connected", () => out.includes("ready"));
    // The main process stops taking calls (its event loop held) until the h2c process has
    // refused one, or for at most 10 s.
    const deadline = Date.now() + 10_000;
    while (!existsSync(marker) && Date.now() < deadline) {
      // held
    }
    await once(client, "exit");
    const tally = JSON.parse(out.split("\n").find((l) => l.startsWith("{")) ?? "{}");
    assert.ok(tally.refused > 0, `some calls refused: ${out}`);
    assert.equal(tally.refused + tally.answered, 300, `every other call answered: ${out}`);
    assert.equal(tally.neither, 0);
  });
});

describe("--h2c-processes is refused", () => {
  for (const [flags, message] of [
    [["--access-log", "on"], /not with --access-log on/],
    [["--log-level", "debug"], /not with --access-log on or --log-level debug/],
    [["--tls-cert", "cert.pem", "--tls-key", "key.pem"], /every connection is TLS/],
    [[], /whole number from 0 to 64/],
  ] as const) {
    it(`with ${flags.join(" ") || "a count over 64"}`, async () => {
      const count = flags.length === 0 ? "65" : "2";
      const { code, stderr } = await runMain(["--h2c-processes", count, ...flags]);
      assert.equal(code, 2);
      assert.match(stderr, message);
    });
  }
});
