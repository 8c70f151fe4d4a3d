// The LeaderElection service through every protocol our users speak: every rpc, every row
// of the rules table (API.md section 2) including the no-ops, Watch (section 3) and every
// error row (section 4). Each client runs the same scenarios against one real server, and
// their transcripts must be identical. The same scenarios run again against a server whose
// h2c connections are served by h2c processes (`--h2c-processes`, server/http/fronts.ts).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { allClients, codeOf, type ElectionClient, type TermView } from "../support/clients.js";
import { startServer } from "../support/server.js";

const t = (term: number, leader: string, candidates: string[] = []): TermView => ({
  term: BigInt(term),
  leader,
  candidates,
});

const { url } = await startServer();
const clients = allClients(url);
const fronted = allClients((await startServer(["--h2c-processes", "2"])).url);
after(() => {
  for (const client of [...clients, ...fronted]) client.dispose();
});
let counter = 0;
/** A fresh election name per scenario run, so protocols never share state. */
const fresh = (label: string) => `${label}-${++counter}`;

/** Collects a watch's states until `count` arrived (or times out). */
async function collect(
  client: ElectionClient,
  name: string,
  count: number,
  act: () => Promise<void>,
) {
  const controller = new AbortController();
  const seen: TermView[] = [];
  let first!: () => void;
  const started = new Promise<void>((resolve) => {
    first = resolve;
  });
  const done = (async () => {
    for await (const state of client.watch(name, controller.signal)) {
      seen.push(state);
      if (seen.length === 1) first();
      if (seen.length >= count) break;
    }
  })();
  await started;
  await act();
  const timeout = setTimeout(() => controller.abort(), 5000);
  await done;
  clearTimeout(timeout);
  controller.abort();
  return seen;
}

const matrices = [
  ["LeaderElection through every protocol", clients],
  ["LeaderElection through every protocol, through h2c processes", fronted],
] as const;
for (const [title, clients] of matrices) {
  describe(title, () => {
    const protocols = [
      "Connect JSON (HTTP/1.1)",
      "Connect binary (HTTP/2)",
      "gRPC (HTTP/2)",
      "gRPC-Web (fetch)",
      "fetch + Connect JSON",
      "@grpc/grpc-js (runtime .proto)",
    ];
    const client = (protocol: string) => {
      const found = clients.find((c) => c.protocol === protocol);
      if (!found) throw new Error(`no client ${protocol}`);
      return found;
    };

    for (const protocol of protocols) {
      describe(protocol, () => {
        it("follows API.md's worked example step by step", async () => {
          const c = client(protocol);
          const e = fresh("worked");
          await c.create(e);
          assert.deepEqual(await c.getTerm(e), t(0, ""));
          assert.deepEqual(await c.call("enter", e, "a"), t(1, "a"));
          assert.deepEqual(await c.call("enter", e, "b"), t(1, "a", ["b"]));
          assert.deepEqual(await c.call("enter", e, "c"), t(1, "a", ["b", "c"]));
          assert.deepEqual(await c.call("promote", e, "c"), t(1, "a", ["c", "b"]));
          assert.deepEqual(await c.call("promote", e, "c"), t(2, "c", ["a", "b"]));
          assert.deepEqual(await c.call("anoint", e, "b"), t(3, "b", ["c", "a"]));
          assert.deepEqual(await c.call("withdraw", e, "b"), t(4, "c", ["a"]));
          assert.deepEqual(await c.call("evict", e, "c"), t(5, "a"));
          assert.deepEqual(await c.call("withdraw", e, "a"), t(5, ""));
          assert.deepEqual(await c.getTerm(e), t(5, ""));
        });

        it("answers every no-op with the current state and changes nothing", async () => {
          const c = client(protocol);
          const e = fresh("noop");
          await c.create(e, ["x"]);
          await c.call("enter", e, "a");
          await c.call("enter", e, "b");
          const state = t(1, "a", ["b"]);
          await c.create(e, ["ignored"]); // Create of an existing election
          assert.deepEqual(await c.call("enter", e, "a"), state, "Enter of the leader");
          assert.deepEqual(await c.call("enter", e, "b"), state, "Enter of a queued candidate");
          assert.deepEqual(await c.call("withdraw", e, "zz"), state, "Withdraw of an unknown name");
          assert.deepEqual(await c.call("evict", e, "zz"), state, "Evict of an unknown name");
          assert.deepEqual(await c.call("anoint", e, "a"), state, "Anoint of the leader");
          assert.deepEqual(await c.call("anoint", e, "zz"), state, "Anoint of an unknown name");
          assert.deepEqual(await c.call("promote", e, "a"), state, "Promote of the leader");
          assert.deepEqual(await c.call("promote", e, "zz"), state, "Promote of an unknown name");
          assert.deepEqual(await c.call("demote", e, "b"), state, "Demote of the last in queue");
          assert.deepEqual(await c.call("demote", e, "zz"), state, "Demote of an unknown name");
          await c.close(e); // Close without a session
          assert.deepEqual(await c.getTerm(e), state);
          const solo = fresh("solo");
          await c.create(solo);
          await c.call("enter", solo, "a");
          assert.deepEqual(await c.call("demote", solo, "a"), t(1, "a"), "Demote of a lone leader");
        });

        it("applies the remaining rows: queued Withdraw/Evict, Promote and Demote swaps, Demote of a leader", async () => {
          const c = client(protocol);
          const e = fresh("rows");
          await c.create(e);
          for (const name of ["a", "b", "c", "d"]) await c.call("enter", e, name);
          assert.deepEqual(
            await c.call("withdraw", e, "c"),
            t(1, "a", ["b", "d"]),
            "queued Withdraw",
          );
          assert.deepEqual(await c.call("enter", e, "c"), t(1, "a", ["b", "d", "c"]));
          assert.deepEqual(await c.call("evict", e, "d"), t(1, "a", ["b", "c"]), "queued Evict");
          assert.deepEqual(
            await c.call("demote", e, "b"),
            t(1, "a", ["c", "b"]),
            "Demote swaps back",
          );
          assert.deepEqual(
            await c.call("demote", e, "a"),
            t(2, "c", ["a", "b"]),
            "Demote of the leader",
          );
          assert.deepEqual(
            await c.call("anoint", e, "b"),
            t(3, "b", ["c", "a"]),
            "Anoint from the back",
          );
          assert.deepEqual(await c.call("evict", e, "b"), t(4, "c", ["a"]), "Evict of the leader");
        });

        it("watches: current state first, then each change once and in order, nothing for no-ops", async () => {
          const c = client(protocol);
          const e = fresh("watch");
          await c.create(e);
          await c.call("enter", e, "a");
          const expected = [
            t(1, "a"),
            t(1, "a", ["b"]),
            t(2, "b", ["a"]),
            t(2, "b"),
            t(2, ""),
            t(3, "c"),
          ];
          const seen = await collect(c, e, expected.length, async () => {
            await c.call("enter", e, "b");
            await c.call("enter", e, "b"); // no-op
            await c.call("promote", e, "b");
            await c.call("anoint", e, "b"); // no-op
            await c.call("withdraw", e, "a");
            await c.call("withdraw", e, "zz"); // no-op
            await c.call("withdraw", e, "b");
            await c.call("enter", e, "c");
          });
          assert.deepEqual(seen, expected);
        });

        it("refuses bad input with invalid_argument naming the field, and changes nothing", async () => {
          const c = client(protocol);
          const e = fresh("bad");
          await c.create(e);
          await c.call("enter", e, "a");
          const cases: [string, Record<string, unknown>, string][] = [
            ["enter", { candidate: "b" }, "id"],
            ["enter", { id: { name: "" }, candidate: "b" }, "id.name"],
            ["enter", { id: { name: e }, candidate: "" }, "candidate"],
            ["enter", { id: { name: e }, candidate: "x".repeat(257) }, "candidate"],
            ["enter", { id: { name: e }, candidate: "é".repeat(129) }, "candidate"],
            ["enter", { id: { name: e }, candidate: "tab\there" }, "candidate"],
            ["enter", { id: { name: e }, candidate: "nul\u0000" }, "candidate"],
            ["enter", { id: { name: e }, candidate: "\u0085next-line" }, "candidate"],
            ["enter", { id: { name: e }, candidate: "\u202egnp.exe\u202c-node-1" }, "candidate"],
            ["enter", { id: { name: e }, candidate: "zero\u200bwidth" }, "candidate"],
            ["enter", { id: { name: e }, candidate: "join\u200dme" }, "candidate"],
            ["enter", { id: { name: e }, candidate: "\u2066isolate\u2069" }, "candidate"],
            ["create", { id: { name: "\ufeffbom" } }, "id.name"],
            ["withdraw", { id: { name: e }, candidate: "" }, "candidate"],
            ["anoint", { id: { name: e }, candidate: "" }, "candidate"],
            ["promote", { id: { name: e }, candidate: "" }, "candidate"],
            ["demote", { id: { name: e }, candidate: "" }, "candidate"],
            ["evict", { id: { name: e }, candidate: "" }, "candidate"],
            ["getTerm", { id: { name: "" } }, "id.name"],
            ["close", {}, "id"],
            ["create", { id: { name: "n\n" } }, "id.name"],
            ["create", { id: { name: fresh("tags") }, tags: ["ok", ""] }, "tags[1]"],
            ["create", { id: { name: fresh("tags") }, tags: ["x".repeat(300)] }, "tags[0]"],
            [
              "create",
              { id: { name: fresh("tags") }, tags: Array.from({ length: 65 }, (_, i) => `t${i}`) },
              "tags",
            ],
          ];
          for (const [method, request, field] of cases) {
            const { code, message } = await codeOf(c.raw(method, request));
            assert.equal(
              code,
              Code.InvalidArgument,
              `${method} ${JSON.stringify(request).slice(0, 80)}`,
            );
            assert.ok(message.startsWith(`${field} `), `message "${message}" should name ${field}`);
          }
          assert.deepEqual(await c.getTerm(e), t(1, "a"), "nothing changed");
          for (const [, request] of cases.slice(-3)) {
            const name = (request.id as { name: string }).name;
            assert.equal(
              (await codeOf(c.getTerm(name))).code,
              Code.NotFound,
              "refused Create created nothing",
            );
          }
        });

        it("answers not_found for every rpc but Create on an election that does not exist", async () => {
          const c = client(protocol);
          const missing = fresh("missing");
          const calls: [string, () => Promise<unknown>][] = [
            ["Close", () => c.close(missing)],
            ["GetTerm", () => c.getTerm(missing)],
            ...(["enter", "withdraw", "anoint", "promote", "demote", "evict"] as const).map(
              (m) => [m, () => c.call(m, missing, "a")] as [string, () => Promise<unknown>],
            ),
            [
              "Watch",
              async () => {
                for await (const _ of c.watch(missing, new AbortController().signal)) break;
              },
            ],
          ];
          for (const [label, call] of calls) {
            const { code, message } = await codeOf(call());
            assert.equal(code, Code.NotFound, label);
            assert.match(message, new RegExp(missing), label);
          }
          await c.create(missing);
          assert.deepEqual(await c.getTerm(missing), t(0, ""), "the failed calls created nothing");
        });
      });
    }

    it("gives every protocol identical results for the same calls", async () => {
      const transcripts: unknown[] = [];
      for (const protocol of protocols) {
        const c = client(protocol);
        const e = fresh("same");
        const log: unknown[] = [];
        await c.create(e);
        for (const [m, cand] of [
          ["enter", "p"],
          ["enter", "q"],
          ["enter", "r"],
          ["demote", "p"],
          ["promote", "r"],
          ["promote", "r"],
          ["evict", "q"],
          ["withdraw", "r"],
        ] as const) {
          log.push(await c.call(m, e, cand));
        }
        log.push((await codeOf(c.call("enter", e, ""))).code);
        log.push((await codeOf(c.getTerm(`${e}-none`))).code);
        transcripts.push(log);
      }
      for (const [i, transcript] of transcripts.entries()) {
        assert.deepEqual(
          transcript,
          transcripts[0],
          `${protocols[i]} differs from ${protocols[0]}`,
        );
      }
    });
  });
}

describe("GetTerm over HTTP GET", () => {
  it("answers a Connect GET (no side effects, cacheable) like the POST", async () => {
    const c = clients[0];
    assert.ok(c);
    const e = fresh("get");
    await c.create(e);
    await c.call("enter", e, "a");
    const message = encodeURIComponent(JSON.stringify({ id: { name: e } }));
    const res = await fetch(
      `${url}/atomix.runtime.election.v1.LeaderElection/GetTerm?connect=v1&encoding=json&message=${message}`,
    );
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { term: { term: "1", leader: "a" } });
  });
});

describe("malformed requests", () => {
  const path = "/atomix.runtime.election.v1.LeaderElection/Enter";
  const send = (body: BodyInit, contentType: string) =>
    fetch(`${url}${path}`, { method: "POST", headers: { "content-type": contentType }, body });

  it("refuses malformed JSON with invalid_argument", async () => {
    const res = await send("{not json", "application/json");
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { code: string }).code, "invalid_argument");
  });

  it("refuses a malformed protobuf body with invalid_argument", async () => {
    const res = await send(new Uint8Array([0x0a, 0xff, 0xff, 0xff]), "application/proto");
    assert.equal(((await res.json()) as { code: string }).code, "invalid_argument");
  });

  it("refuses a malformed protobuf message in a Connect GET query with invalid_argument", async () => {
    const message = Buffer.from([0x0a, 0xff, 0xff, 0xff]).toString("base64url");
    const res = await fetch(
      `${url}/atomix.runtime.election.v1.LeaderElection/GetTerm?connect=v1&encoding=proto&base64=1&message=${message}`,
    );
    assert.equal(res.status, 400);
    const json = (await res.json()) as { code: string; message: string };
    assert.equal(json.code, "invalid_argument");
    assert.match(json.message, /^request is not a valid protobuf message \(/);
  });

  it("refuses a malformed gRPC-Web message to Watch with invalid_argument in the trailers", async () => {
    // One uncompressed envelope whose payload is a truncated field (tag 1, length 9, 1 byte).
    const body = new Uint8Array([0, 0, 0, 0, 3, 0x0a, 0x09, 0x0a]);
    const res = await fetch(`${url}/atomix.runtime.election.v1.LeaderElection/Watch`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body,
    });
    const text = Buffer.from(await res.arrayBuffer()).toString("latin1");
    assert.match(text, /grpc-status: ?3\b/);
    assert.match(text, /grpc-message: ?request%20is%20not%20a%20valid%20protobuf/);
  });

  it("refuses a name that is not valid UTF-8 in a protobuf body, naming the field", async () => {
    // EnterRequest{id: PrimitiveId{name: 0xC3 0x28}, candidate: "a"}: 0xC3 0x28 is not UTF-8.
    const body = new Uint8Array([0x0a, 0x04, 0x0a, 0x02, 0xc3, 0x28, 0x12, 0x01, 0x61]);
    const res = await send(body, "application/proto");
    const json = (await res.json()) as { code: string; message: string };
    assert.equal(json.code, "invalid_argument");
    assert.match(json.message, /id\.name/);
  });

  it("refuses a name with an unpaired surrogate in JSON as not valid UTF-8, naming the field", async () => {
    const res = await send('{"id":{"name":"\\ud800"},"candidate":"a"}', "application/json");
    const json = (await res.json()) as { code: string; message: string };
    assert.equal(json.code, "invalid_argument");
    assert.match(json.message, /name/);
  });
});
