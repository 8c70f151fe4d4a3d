// SessionService handlers (electd.v1): decode -> validate -> session registry -> encode.

import { type Duration, durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type SessionService, SessionState } from "../../gen/electd/v1/session_pb.js";
import { SessionQuota } from "../auth/quota.js";
import type { SessionSettings } from "../config.js";
import { ElectdError, invalid } from "../errors.js";
import type { Sessions, SessionState as State } from "../session/sessions.js";
import { callerOf } from "./auth.js";

/** Request header (gRPC metadata) that binds Enter and Close to a session. */
export const SESSION_HEADER = "electd-session";

/** A session's state as the API names it (GetSession, GetElectionSessions). */
export const sessionStates: Record<State, SessionState> = {
  active: SessionState.ACTIVE,
  expiring: SessionState.EXPIRING,
  closing: SessionState.CLOSING,
};

export interface SessionServiceOptions {
  readonly sessions: Sessions;
  readonly sessionSettings: SessionSettings;
  /** MAX_SESSIONS_PER_IDENTITY. */
  readonly sessionsPerIdentity: number;
}

/**
 * The session named by a request's `electd-session` header, or undefined without one. An
 * unknown, closed or expired session is refused (not_found), so nothing is entered for it.
 */
export type SessionOf = (ctx: HandlerContext) => Promise<string | undefined>;

export function sessionOf(sessions: Pick<Sessions, "bound">): SessionOf {
  return async (ctx) => {
    const id = ctx.requestHeader.get(SESSION_HEADER);
    if (id === null) return undefined;
    if (id === "") throw invalid(`${SESSION_HEADER} header`, "must not be empty");
    try {
      return await sessions.bound(id);
    } catch (error) {
      if (!(error instanceof ElectdError && error.kind === "not_found")) throw error;
      throw new ElectdError(
        "not_found",
        `session ${quote(id)} named by the ${SESSION_HEADER} header not found (it is unknown or was closed or expired)`,
      );
    }
  };
}

export function sessionService(options: SessionServiceOptions): ServiceImpl<typeof SessionService> {
  const { sessions, sessionSettings: settings } = options;
  const quota = new SessionQuota(options.sessionsPerIdentity, (id) => sessions.peek(id));
  return {
    async openSession(req, ctx) {
      const ttl = requestedTtl(req.ttl, settings);
      const identity = callerOf(ctx).name;
      quota.check(identity);
      const session = await sessions.open(ttl);
      quota.record(identity, session.id);
      return { sessionId: session.id, ttl: durationFromMs(session.ttlMs) };
    },
    async keepAlive(req) {
      return { ttl: durationFromMs(await sessions.keepAlive(sessionId(req.sessionId))) };
    },
    async closeSession(req) {
      await sessions.close(sessionId(req.sessionId));
      return {};
    },
    async getSession(req) {
      const session = await sessions.get(sessionId(req.sessionId));
      return {
        ttl: durationFromMs(session.ttlMs),
        remaining: durationFromMs(session.remainingMs),
        state: sessionStates[session.state],
      };
    },
  };
}

function sessionId(id: string): string {
  if (id === "") throw invalid("session_id", "must not be empty");
  return id;
}

/** The TTL asked for, in whole milliseconds (rounded up), within the configured bounds. */
function requestedTtl(ttl: Duration | undefined, settings: SessionSettings): number {
  if (ttl === undefined) return settings.ttlMs;
  const ms = Math.ceil(durationMs(ttl));
  if (!(ms >= settings.minTtlMs)) {
    throw invalid(
      "ttl",
      `is ${seconds(ms)} but the minimum is ${seconds(settings.minTtlMs)} (SESSION_TTL_MIN)`,
    );
  }
  if (ms > settings.maxTtlMs) {
    throw invalid(
      "ttl",
      `is ${seconds(ms)} but the maximum is ${seconds(settings.maxTtlMs)} (SESSION_TTL_MAX)`,
    );
  }
  return ms;
}

/** A client-supplied id for an error message: quoted, and short whatever was sent. */
function quote(id: string): string {
  return JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}...` : id);
}

function seconds(ms: number): string {
  return `${ms / 1000}s`;
}
