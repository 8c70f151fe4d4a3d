// SessionService handlers (electd.v1): decode -> validate -> session registry -> encode.

import { type Duration, durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type SessionService, SessionState } from "../../gen/electd/v1/session_pb.js";
import type { SessionSettings } from "../config.js";
import { invalid } from "../errors.js";
import type { SessionRegistry, SessionState as State } from "../session/registry.js";

/** A session's state as the API names it (GetSession, GetElectionSessions). */
export const sessionStates: Record<State, SessionState> = {
  active: SessionState.ACTIVE,
  expiring: SessionState.EXPIRING,
  closing: SessionState.CLOSING,
};

export interface SessionServiceOptions {
  readonly registry: SessionRegistry;
  readonly settings: SessionSettings;
}

export function sessionService(options: SessionServiceOptions): ServiceImpl<typeof SessionService> {
  const { registry, settings } = options;
  return {
    async openSession(req) {
      const session = await registry.open(requestedTtl(req.ttl, settings));
      return { sessionId: session.id, ttl: durationFromMs(session.ttlMs) };
    },
    async keepAlive(req) {
      return { ttl: durationFromMs(registry.keepAlive(sessionId(req.sessionId))) };
    },
    async closeSession(req) {
      await registry.close(sessionId(req.sessionId));
      return {};
    },
    async getSession(req) {
      const session = registry.get(sessionId(req.sessionId));
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

function seconds(ms: number): string {
  return `${ms / 1000}s`;
}
