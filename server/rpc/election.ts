// LeaderElection handlers: decode -> validate -> store -> encode. The rules decide; the
// store serialises and persists; these functions only translate.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type GetTermResponse,
  GetTermResponseSchema,
  type LeaderElection,
  type Term,
  TermSchema,
  type WatchRequest,
  type WatchResponse,
  WatchResponseSchema,
} from "../../gen/atomix/runtime/election/v1/election_pb.js";
import {
  type Decision,
  type Denied,
  decideCandidate,
  decideRelease,
  type Moved,
} from "../election/change.js";
import type { CandidateOperation, ElectionState, RuleLimits } from "../election/rules.js";
import { candidateName, electionName, type InputLimits, tagList } from "../election/validate.js";
import { ElectdError, electionNotFound, limitReached, permissionDenied } from "../errors.js";
import type { Sessions } from "../session/sessions.js";
import type { ElectionStore } from "../store/store.js";
import type { ElectionFeed, WatchedState, WatchHub } from "../watch/hub.js";
import { actorOf, callerOf } from "./auth.js";
import type { MessageFeed, PushedStream } from "./pushed.js";
import { sessionOf as sessionFromHeader } from "./session.js";

export interface ElectionServiceOptions {
  readonly store: ElectionStore;
  readonly hub: WatchHub;
  readonly limits: InputLimits & RuleLimits;
  /** Where the session an Enter or Close names is checked (API.md section 5). */
  readonly sessions: Pick<Sessions, "bound">;
}

export function toTerm(state: ElectionState): Term {
  return create(TermSchema, {
    term: state.term,
    leader: state.leader,
    candidates: [...state.candidates],
  });
}

const limitNames = {
  candidates: "candidates per election (MAX_CANDIDATES)",
  candidatesTotal: "candidates in all elections on this server (MAX_CANDIDATES_TOTAL)",
  elections: "elections per server (MAX_ELECTIONS)",
} as const;

/** A store's or the rules' refusal, as the error the caller gets. */
export function refused(
  refusal: { limit: keyof typeof limitNames; max: number } | Moved | Denied,
): ElectdError {
  if ("denied" in refusal) {
    const { candidate, entrant } = refusal.denied;
    return permissionDenied(
      `candidate ${JSON.stringify(candidate)} was entered by ${entrant === undefined ? "another identity" : JSON.stringify(entrant)}: changing it needs the admin role`,
    );
  }
  if ("moved" in refusal) {
    const { name, term, leader } = refusal.moved;
    return new ElectdError(
      "precondition",
      `election ${JSON.stringify(name)} has moved on: it is at term ${term} with leader ${leader === "" ? "none" : JSON.stringify(leader)}`,
    );
  }
  return limitReached(`${refusal.max} ${limitNames[refusal.limit]}`);
}

type CandidateRequest = { id?: { name: string } | undefined; candidate: string };

export function electionService(
  options: ElectionServiceOptions,
  watch = electionWatch(options),
): ServiceImpl<typeof LeaderElection> {
  const { store, limits } = options;
  const sessionOf = sessionFromHeader(options.sessions);
  /**
   * One GetTerm response per state, whichever callers ask: the direct path frames a
   * message once however many calls answer it (http/direct.ts).
   */
  const termResponses = new WeakMap<object, GetTermResponse>();

  async function update(
    name: string,
    decide: (e: Parameters<Parameters<ElectionStore["update"]>[1]>[0]) => Decision,
  ) {
    const result = await store.update(name, decide);
    if (result === undefined) throw electionNotFound(name);
    if (!result.ok) throw refused(result);
    return { term: toTerm(result.election.state) };
  }

  /** One handler per candidate rpc: all of them differ only in the rule they apply. */
  function candidateCall(kind: CandidateOperation) {
    return async (req: CandidateRequest, ctx: HandlerContext) => {
      const name = electionName(req.id, limits);
      const candidate = candidateName(req.candidate, limits);
      const session = kind === "enter" ? await sessionOf(ctx) : undefined;
      const actor = actorOf(ctx, name);
      return update(name, (election) =>
        decideCandidate(election, kind, candidate, limits, session, actor),
      );
    };
  }

  return {
    async create(req, ctx) {
      const name = electionName(req.id, limits);
      const tags = tagList(req.tags, limits);
      const result = await store.create(name, tags, callerOf(ctx).name);
      if (!result.ok) throw refused(result);
      return {};
    },
    async close(req, ctx) {
      const name = electionName(req.id, limits);
      const session = await sessionOf(ctx);
      const actor = actorOf(ctx, name);
      await update(name, (election) => decideRelease(election, session, limits, undefined, actor));
      return {};
    },
    enter: candidateCall("enter"),
    withdraw: candidateCall("withdraw"),
    anoint: candidateCall("anoint"),
    promote: candidateCall("promote"),
    demote: candidateCall("demote"),
    evict: candidateCall("evict"),
    async getTerm(req) {
      const name = electionName(req.id, limits);
      const election = await store.get(name);
      if (!election) throw electionNotFound(name);
      let response = termResponses.get(election);
      if (response === undefined) {
        response = create(GetTermResponseSchema, { term: toTerm(election.state) });
        termResponses.set(election, response);
      }
      return response;
    },
    watch: watch.watch,
  };
}

/**
 * LeaderElection.Watch, as Connect reads it (an async generator) and as the direct path
 * sends it (pushed). Both hand every watcher the same response for a state: the direct path
 * encodes a message once however many streams send it (http/direct.ts).
 */
export function electionWatch(options: Pick<ElectionServiceOptions, "hub" | "limits">) {
  const { hub, limits } = options;
  const responses = new WeakMap<object, WatchResponse>();
  const responseOf = (election: WatchedState) => {
    let response = responses.get(election);
    if (response === undefined) {
      response = create(WatchResponseSchema, { term: toTerm(election.state) });
      responses.set(election, response);
    }
    return response;
  };
  const pushed: PushedStream = {
    async open(input, reader) {
      const name = electionName((input as WatchRequest).id, limits);
      return new WatchFeed(await hub.follow(name, undefined, reader), responseOf);
    },
  };
  return {
    async *watch(req: WatchRequest, ctx: HandlerContext) {
      const name = electionName(req.id, limits);
      for await (const election of hub.election(name, ctx.signal)) yield responseOf(election);
    },
    pushed,
  };
}

/** An election's feed as Watch responses. */
class WatchFeed implements MessageFeed {
  constructor(
    private readonly feed: ElectionFeed,
    private readonly responseOf: (state: WatchedState) => WatchResponse,
  ) {}

  poll(): WatchResponse | undefined {
    const next = this.feed.poll();
    return next && this.responseOf(next);
  }

  get ended(): boolean {
    return this.feed.ended;
  }

  close(): void {
    this.feed.close();
  }
}
