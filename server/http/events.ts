// An election over plain HTTP, for curl and a browser's EventSource:
//
//   GET /v1/elections/{name}         the current state as JSON
//   GET /v1/elections/{name}/events  Server-Sent Events: one event per change, `id:` the
//                                    version, resumed after Last-Event-ID (or ?after=)
//
// The events are what ElectionHistoryService.WatchElection sends (watch/resume.ts), each
// as its Connect JSON in `data:`: `event: change` for a change, `event: state` for the
// state a stream starts from (its data says `"reset": true` when changes were missed), and
// a last `event: deleted` before the stream ends when the election is deleted. Names
// with `/` are sent with it escaped (%2F).
import { toJson } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { WatchElectionResponseSchema } from "../../gen/electd/v1/history_pb.js";
import type { Caller, Scope } from "../auth/access.js";
import type { WatchQuota } from "../auth/quota.js";
import { type InputLimits, text } from "../election/validate.js";
import { ElectdError, electionNotFound } from "../errors.js";
import { toTerm } from "../rpc/election.js";
import { toConnectError } from "../rpc/errors.js";
import { toWatchResponse } from "../rpc/history.js";
import type { ElectionStore } from "../store/store.js";
import type { WatchHub } from "../watch/hub.js";
import { resume } from "../watch/resume.js";

export interface EventsOptions {
  readonly store: ElectionStore;
  readonly hub: WatchHub;
  readonly limits: InputLimits;
  /** Who may read which election: throws an unauthenticated or permission error. */
  readonly admit: (request: FastifyRequest, rpc: string, scope: Scope) => Caller;
  /** Each stream holds one of its caller's MAX_WATCHES_PER_IDENTITY slots. */
  readonly watches: WatchQuota;
  /** A comment line this often keeps proxies and idle timeouts from closing a quiet stream. */
  readonly heartbeatMs?: number;
}

/** A domain error as the RPCs answer it: Connect's HTTP status and JSON error body. */
function fail(reply: FastifyReply, error: unknown) {
  const mapped = toConnectError(error);
  if (!(mapped instanceof ConnectError)) throw error;
  return reply.code(codeToHttpStatus(mapped.code)).send(errorToJson(mapped, undefined));
}

/** The rpcs these routes answer as, for who may use them. */
const GET_TERM = "atomix.runtime.election.v1.LeaderElection/GetTerm";
const WATCH_ELECTION = "electd.v1.ElectionHistoryService/WatchElection";

export async function events(fastify: FastifyInstance, options: EventsOptions) {
  const { store, hub, limits } = options;
  const heartbeatMs = options.heartbeatMs ?? 15_000;

  fastify.get<{ Params: { name: string } }>("/v1/elections/:name", async (request, reply) => {
    try {
      options.admit(request, GET_TERM, { kind: "name", name: request.params.name });
      const name = text("name", request.params.name, limits);
      const election = await store.get(name);
      if (!election) throw electionNotFound(name);
      const { term, leader, candidates } = toTerm(election.state);
      return {
        name,
        tags: election.tags,
        term: term.toString(),
        leader,
        candidates,
        version: String(election.version),
      };
    } catch (error) {
      return fail(reply, error);
    }
  });

  fastify.get<{ Params: { name: string }; Querystring: { after?: string } }>(
    "/v1/elections/:name/events",
    async (request, reply) => {
      let name: string;
      let after: number;
      const stop = new AbortController();
      let release: () => void;
      try {
        const caller = options.admit(request, WATCH_ELECTION, {
          kind: "name",
          name: request.params.name,
        });
        name = text("name", request.params.name, limits);
        const cursor = request.headers["last-event-id"] ?? request.query.after ?? "0";
        after = Number(cursor);
        if (typeof cursor !== "string" || !/^\d+$/.test(cursor) || !Number.isSafeInteger(after)) {
          throw new ElectdError(
            "invalid",
            `Last-Event-ID (or after) "${String(cursor)}" is not a version`,
          );
        }
        // Answered as an error while it still can be: before the stream starts.
        if (!(await store.get(name))) {
          throw electionNotFound(name);
        }
        release = options.watches.acquire(caller.name, stop.signal);
      } catch (error) {
        return fail(reply, error);
      }
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      });
      // Tells EventSource how long to wait before it reconnects (with Last-Event-ID).
      raw.write("retry: 1000\n\n");
      raw.on("close", () => stop.abort());
      const heartbeat = setInterval(() => raw.write(": still here\n\n"), heartbeatMs).unref();
      try {
        for await (const step of resume(store, hub, name, after, stop.signal)) {
          const message = toWatchResponse(step);
          const data = JSON.stringify(toJson(WatchElectionResponseSchema, message));
          raw.write(
            `id: ${message.version}\nevent: ${step.kind === "start" ? "state" : "change"}\ndata: ${data}\n\n`,
          );
        }
      } catch (error) {
        if (error instanceof ElectdError && error.kind === "not_found") {
          raw.write(`event: deleted\ndata: ${JSON.stringify({ message: error.message })}\n\n`);
        } else if (!stop.signal.aborted) {
          request.log.error({ err: error }, "an events stream failed");
        }
      } finally {
        release();
        clearInterval(heartbeat);
        raw.end();
      }
    },
  );
}
