// SIGTERM with every kind of client connected, against the real server process: it exits 0
// promptly, whatever is connected. Idle connections (a silent socket, HTTP/1.1 keep-alive,
// an HTTP/2 session, in cleartext and over TLS) are closed at once; open Watch streams on
// every protocol end with OK. The grace is 10 s and each exit must take under 2 s, so a
// client that makes the server wait out the grace fails the test. Exit times are printed.
// With h2c processes (`--h2c-processes`), the h2c clients are served by them: they end
// alike, and no h2c process outlives the server.
import assert from "node:assert/strict";
import { once } from "node:events";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { connect as http2Connect } from "node:http2";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { connect as netConnect } from "node:net";
import { before, describe, it } from "node:test";
import { createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { childrenOf, spawnServer } from "../support/process.js";
import { tempDir } from "../support/tempdir.js";
import { type Certificate, selfSignedCertificate } from "../support/tls.js";

const GRACE = "10s";
/** Well below the grace: a shutdown that waits for any client would take 10 s. */
const PROMPT_MS = 2000;
const PATIENCE_MS = 10_000;

/** A client connected to the server; `closed` settles when the server has ended it. */
interface Connected {
  readonly closed: Promise<void>;
}

type Connect = (url: string, ca: Buffer | undefined) => Promise<Connected>;

/** An HTTP/1.1 keep-alive connection after one request, idle now. */
const idleHttp1: Connect = async (url, ca) => {
  const agent = ca ? new HttpsAgent({ keepAlive: true, ca }) : new HttpAgent({ keepAlive: true });
  const request = ca ? httpsRequest : httpRequest;
  const res = await new Promise<IncomingMessage>((resolve, reject) =>
    request(`${url}/healthz`, { agent }, resolve).on("error", reject).end(),
  );
  const socket = res.socket;
  res.resume();
  await once(res, "end");
  const closed = once(socket, "close").then(() => agent.destroy());
  return { closed };
};

/** An HTTP/2 session (h2c, or h2 over TLS) after one request, idle now. */
const idleHttp2: Connect = async (url, ca) => {
  const session = http2Connect(url, ca ? { ca } : {});
  session.on("error", () => {});
  const stream = session.request({ ":path": "/healthz" });
  stream.resume();
  await once(stream, "close");
  return { closed: once(session, "close").then(() => {}) };
};

/** A TCP connection that never sends anything. */
const silent: Connect = async (url) => {
  const { hostname, port } = new URL(url);
  const socket = netConnect(Number(port), hostname);
  await once(socket, "connect");
  socket.on("error", () => {});
  return { closed: once(socket, "close").then(() => {}) };
};

/** An open Watch whose first state arrived; `closed` requires it to end without an error. */
function watching(transport: (url: string, ca: Buffer | undefined) => Transport): Connect {
  return async (url, ca) => {
    const client = createClient(LeaderElection, transport(url, ca));
    const id = { name: `e-${Math.random()}` };
    await client.create({ id });
    const it = client.watch({ id })[Symbol.asyncIterator]();
    assert.equal((await it.next()).done, false, "the current state arrives first");
    return {
      closed: it.next().then((end) => assert.equal(end.done, true, "the stream ends, OK")),
    };
  };
}

const nodeOptions = (ca: Buffer | undefined) => (ca ? { nodeOptions: { ca } } : {});
const kinds: readonly { name: string; tls: boolean; connect: Connect }[] = [
  { name: "silent TCP connection", tls: false, connect: silent },
  { name: "idle HTTP/1.1 keep-alive", tls: false, connect: idleHttp1 },
  { name: "idle h2c session", tls: false, connect: idleHttp2 },
  { name: "silent TCP connection to the TLS port", tls: true, connect: silent },
  { name: "idle HTTP/1.1 keep-alive over TLS", tls: true, connect: idleHttp1 },
  { name: "idle h2 session over TLS", tls: true, connect: idleHttp2 },
  {
    name: "Connect Watch over HTTP/1.1",
    tls: false,
    connect: watching((baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" })),
  },
  {
    name: "Connect Watch over h2c",
    tls: false,
    connect: watching((baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" })),
  },
  {
    name: "gRPC Watch over h2c",
    tls: false,
    connect: watching((baseUrl) => createGrpcTransport({ baseUrl })),
  },
  {
    name: "gRPC-Web Watch over HTTP/1.1",
    tls: false,
    connect: watching((baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })),
  },
  {
    name: "Connect Watch over TLS HTTP/1.1",
    tls: true,
    connect: watching((baseUrl, ca) =>
      createConnectTransport({ baseUrl, httpVersion: "1.1", ...nodeOptions(ca) }),
    ),
  },
  {
    name: "gRPC Watch over TLS h2",
    tls: true,
    connect: watching((baseUrl, ca) => createGrpcTransport({ baseUrl, ...nodeOptions(ca) })),
  },
  {
    name: "gRPC-Web Watch over TLS HTTP/1.1",
    tls: true,
    connect: watching((baseUrl, ca) =>
      createGrpcWebTransport({ baseUrl, httpVersion: "1.1", ...nodeOptions(ca) }),
    ),
  },
];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Fails if `promise` has not settled within PATIENCE_MS. */
function settled<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`within ${PATIENCE_MS} ms: ${what}`)), PATIENCE_MS);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe("SIGTERM with clients connected", () => {
  let certificate: Certificate;
  const dir = tempDir("tls");
  before(async () => {
    certificate = await selfSignedCertificate(dir);
  });
  const flags = (tls: boolean) => [
    "--port",
    "0",
    "--shutdown-grace",
    GRACE,
    ...(tls ? ["--tls-cert", certificate.cert, "--tls-key", certificate.key] : []),
  ];

  /** Starts a server, connects the clients, sends SIGTERM; returns the exit time in ms. */
  async function exitTime(
    tls: boolean,
    connects: readonly Connect[],
    more: readonly string[] = [],
    /** Told the server's process id, once the clients are connected. */
    connected: (pid: number) => void = () => {},
  ): Promise<number> {
    const server = await spawnServer([...flags(tls), ...more]);
    const ca = tls ? certificate.ca : undefined;
    let clients: Connected[];
    try {
      clients = [];
      for (const connect of connects) clients.push(await connect(server.url, ca));
    } catch (error) {
      server.child.kill("SIGKILL");
      throw error;
    }
    connected(server.child.pid ?? 0);
    const started = performance.now();
    server.child.kill("SIGTERM");
    const code = await settled(server.exited, "the server exits");
    const took = performance.now() - started;
    assert.equal(code, 0, server.output());
    await settled(Promise.all(clients.map((c) => c.closed)), "every client is ended");
    return took;
  }

  for (const kind of kinds) {
    it(`exits 0 promptly with a ${kind.name}`, async (t) => {
      const took = await exitTime(kind.tls, [kind.connect]);
      t.diagnostic(`${kind.name}: exited ${took.toFixed(0)} ms after SIGTERM (grace ${GRACE})`);
      assert.ok(took < PROMPT_MS, `exited after ${took.toFixed(0)} ms, not at once`);
    });
  }

  it("exits 0 promptly with every kind of cleartext client at once, through h2c processes", async (t) => {
    let helpers: number[] = [];
    const took = await exitTime(
      false,
      kinds.filter((k) => !k.tls).map((k) => k.connect),
      ["--h2c-processes", "2"],
      (pid) => {
        helpers = childrenOf(pid).map((child) => child.pid);
      },
    );
    t.diagnostic(
      `every cleartext client, 2 h2c processes: exited ${took.toFixed(0)} ms after SIGTERM`,
    );
    assert.ok(took < PROMPT_MS, `exited after ${took.toFixed(0)} ms, not at once`);
    assert.equal(helpers.length, 2, "two h2c processes ran");
    for (const pid of helpers) assert.equal(alive(pid), false, `h2c process ${pid} is gone`);
  });

  for (const tls of [false, true]) {
    it(`exits 0 promptly with every kind of ${tls ? "TLS" : "cleartext"} client at once`, async (t) => {
      const took = await exitTime(
        tls,
        kinds.filter((k) => k.tls === tls).map((k) => k.connect),
      );
      t.diagnostic(
        `all ${tls ? "TLS" : "cleartext"} clients: exited ${took.toFixed(0)} ms after SIGTERM`,
      );
      assert.ok(took < PROMPT_MS, `exited after ${took.toFixed(0)} ms, not at once`);
    });
  }
});
