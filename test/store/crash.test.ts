// The durability guarantee (API.md section 6) against the real server process: drive many
// concurrent mutations through a Connect client, SIGKILL the server while they are in
// flight, restart it on the same directory, and check that every acknowledged state is
// there and that no term went backwards. Several kill/restart cycles in a row.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import {
  apply,
  type CandidateOperation,
  type ElectionState,
  emptyElection,
} from "../../server/election/rules.js";
import { type ServerProcess, spawnServer } from "../support/process.js";
import { tempDir } from "../support/tempdir.js";

const CYCLES = 4;
/** Elections driven by one client at a time: their state is known exactly. */
const EXACT = 24;
/** Elections driven by many clients at once: only term bounds can be checked. */
const CONTENDED = 4;
const WRITERS_PER_CONTENDED = 8;
const CANDIDATES = ["a", "b", "c", "d"];
const OPERATIONS: CandidateOperation[] = [
  "enter",
  "enter",
  "enter",
  "withdraw",
  "withdraw",
  "evict",
  "promote",
  "anoint",
  "demote",
];
const rules = { maxCandidates: 1000 };

interface Op {
  readonly kind: CandidateOperation;
  readonly candidate: string;
}

/** What the client knows about one exact election. */
interface Exact {
  /** The state of the last acknowledged mutation (or the last verified state). */
  acked: ElectionState;
  /** A request sent but never answered: it may or may not have been applied. */
  unanswered: Op | undefined;
}

function pick<T>(list: readonly T[]): T {
  return list[Math.floor(Math.random() * list.length)] as T;
}

function plain(state: ElectionState): ElectionState {
  return { term: state.term, leader: state.leader, candidates: [...state.candidates] };
}

describe("durable store under kill -9", () => {
  it("keeps every acknowledged state and never lowers a term across kill/restart cycles", async () => {
    const dataDir = tempDir("crash");
    const exact = new Map<string, Exact>();
    for (let i = 0; i < EXACT; i++) {
      exact.set(`exact-${i}`, { acked: emptyElection, unanswered: undefined });
    }
    /** Highest term acknowledged or observed per election: the floor after a restart. */
    const floor = new Map<string, bigint>();
    const contended = Array.from({ length: CONTENDED }, (_, i) => `contended-${i}`);
    let totalAcked = 0;
    let totalUnanswered = 0;

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const server = await startDurable(dataDir);
      // Alternate HTTP/2 and HTTP/1.1 cycles: both must only ever carry committed answers.
      const sessions = cycle % 2 === 0 ? new Http2SessionManager(server.url) : undefined;
      const client = createClient(
        LeaderElection,
        sessions
          ? createConnectTransport({
              baseUrl: server.url,
              httpVersion: "2",
              sessionManager: sessions,
            })
          : createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      );
      try {
        // After a restart: every acknowledged state is back, exactly where it can be known.
        for (const [name, known] of exact) {
          if (cycle === 0) {
            await client.create({ id: { name }, tags: [`cycle-${cycle}`] });
            continue;
          }
          const { term } = await client.getTerm({ id: { name } });
          assert.ok(term, `${name}: no term`);
          const found = plain(term);
          const options = [plain(known.acked)];
          if (known.unanswered) {
            const outcome = apply(known.acked, known.unanswered, rules);
            if (outcome.ok) options.push(plain(outcome.state));
          }
          assert.ok(
            options.some((o) => isDeepStrictEqual(o, found)),
            `${name} after restart ${cycle}: found ${show(found)}, expected one of ${options.map(show).join(" | ")}`,
          );
          known.acked = found;
          known.unanswered = undefined;
        }
        for (const name of contended) {
          if (cycle === 0) await client.create({ id: { name }, tags: [] });
        }
        for (const name of [...exact.keys(), ...contended]) {
          const { term } = await client.getTerm({ id: { name } });
          const value = term?.term ?? 0n;
          const least = floor.get(name) ?? 0n;
          assert.ok(value >= least, `${name}: term ${value} went below acknowledged ${least}`);
          floor.set(name, value);
        }

        // Load: every writer loops until the kill; acknowledged states are recorded.
        let killed = false;
        let acked = 0;
        const raise = (name: string, term: bigint) => {
          if (term > (floor.get(name) ?? 0n)) floor.set(name, term);
        };
        const call = (op: Op, name: string) =>
          client[op.kind]({ id: { name }, candidate: op.candidate });
        const exactWriter = async (name: string, known: Exact) => {
          while (!killed) {
            const op = { kind: pick(OPERATIONS), candidate: pick(CANDIDATES) };
            known.unanswered = op;
            try {
              const { term } = await call(op, name);
              assert.ok(term);
              const state = plain(term);
              // The server's answer must be the rules applied to the previous answer.
              const outcome = apply(known.acked, op, rules);
              assert.ok(outcome.ok);
              assert.deepEqual(state, plain(outcome.state), `${name}: answer to ${op.kind}`);
              known.acked = state;
              known.unanswered = undefined;
              raise(name, state.term);
              acked++;
            } catch (error) {
              if (!killed) throw error;
              return;
            }
          }
        };
        const contendedWriter = async (name: string) => {
          while (!killed) {
            try {
              const { term } = await call(
                { kind: pick(OPERATIONS), candidate: pick(CANDIDATES) },
                name,
              );
              raise(name, term?.term ?? 0n);
              acked++;
            } catch (error) {
              if (!killed) throw error;
              return;
            }
          }
        };
        const writers = [
          ...[...exact].map(([name, known]) => exactWriter(name, known)),
          ...contended.flatMap((name) =>
            Array.from({ length: WRITERS_PER_CONTENDED }, () => contendedWriter(name)),
          ),
        ];
        // Let the load run a random while, then kill in the middle of it.
        const deadline = Date.now() + 400 + Math.random() * 600;
        while (Date.now() < deadline || acked < 200) {
          await new Promise((r) => setTimeout(r, 20));
        }
        killed = true;
        await kill(server);
        await Promise.all(writers);
        const unanswered = [...exact.values()].filter((k) => k.unanswered).length;
        totalAcked += acked;
        totalUnanswered += unanswered;
      } finally {
        sessions?.abort();
        await kill(server);
      }
    }
    // The test means something only if the kills really hit writes in flight.
    assert.ok(totalAcked >= CYCLES * 200, `only ${totalAcked} acknowledged mutations`);
    assert.ok(totalUnanswered > 0, "no write was in flight at any kill");

    // A last restart: the final check of every election, then a clean stop.
    const server = await startDurable(dataDir);
    const sessions = new Http2SessionManager(server.url);
    try {
      const client = createClient(
        LeaderElection,
        createConnectTransport({ baseUrl: server.url, httpVersion: "2", sessionManager: sessions }),
      );
      for (const [name, least] of floor) {
        const { term } = await client.getTerm({ id: { name } });
        assert.ok((term?.term ?? 0n) >= least, `${name}: term below ${least} at the end`);
      }
    } finally {
      sessions.abort();
      server.child.kill("SIGTERM");
      assert.equal(await server.exited, 0);
    }
  });
});

function startDurable(dataDir: string): Promise<ServerProcess> {
  return spawnServer(["--port", "0", "--store", "durable", "--data-dir", dataDir]);
}

async function kill(server: ServerProcess): Promise<void> {
  server.child.kill("SIGKILL");
  await server.exited;
}

function show(s: ElectionState): string {
  return `term ${s.term} leader "${s.leader}" queue [${s.candidates.join(",")}]`;
}
