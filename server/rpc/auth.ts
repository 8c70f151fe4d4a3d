// Authentication and authorization of every rpc, in one place: the Fastify request's
// credentials become the call's caller (contextValues), and one interceptor asks
// auth/access.ts whether the caller may make the call on the election names its request
// carries, before the handler runs. A refusal changes nothing and is logged. Health and
// reflection stay open: probes and schema tools carry no credentials, and they reveal no
// election.

import type { IncomingHttpHeaders } from "node:http";
import type { DescMethod } from "@bufbuild/protobuf";
import {
  type ContextValues,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { FastifyRequest } from "fastify";
import type { IdentityService } from "../../gen/electd/v1/identity_pb.js";
import { anonymous, type Caller, decide, holds, refusal, type Scope } from "../auth/access.js";
import { type Authentication, type Authenticator, isCaller } from "../auth/authenticate.js";
import type { WatchQuota } from "../auth/quota.js";
import type { Actor } from "../election/change.js";
import { permissionDenied, unauthenticated } from "../errors.js";

const authentication = createContextKey<Authentication>(anonymous);

/** A call's context values (Connect's `contextValues`): who sent this request. */
export function authenticateRequest(authenticator: Authenticator) {
  return (req: { readonly headers: IncomingHttpHeaders; readonly socket: unknown }) =>
    createContextValues().set(
      authentication,
      authenticator.authenticate(req.headers.authorization, req.socket),
    );
}

/** The caller making a change to election `name`, as the rules need to know it. */
export function actorOf(ctx: HandlerContext, name: string): Actor {
  const caller = callerOf(ctx);
  return { name: caller.name, admin: holds(caller, "admin", { kind: "name", name }) };
}

/** The caller of a call that passed the interceptor. */
export function callerOf(ctx: HandlerContext): Caller {
  const found = ctx.values.get(authentication);
  return isCaller(found) ? found : anonymous;
}

const openServices = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/** The election names a request touches, read from the fields every request names them by. */
export function scopeOf(message: unknown): Scope {
  const m = message as {
    id?: { name?: unknown };
    name?: unknown;
    namePrefix?: unknown;
    elections?: readonly { name?: unknown }[];
  };
  if (Array.isArray(m.elections)) {
    return { kind: "names", names: m.elections.map((e) => String(e.name ?? "")) };
  }
  const name = m.id !== undefined ? m.id.name : m.name;
  if (typeof name === "string" && (name !== "" || m.namePrefix === undefined)) {
    return { kind: "name", name };
  }
  if (typeof m.namePrefix === "string") return { kind: "prefix", prefix: m.namePrefix };
  return { kind: "none" };
}

/** What a refused call is logged with. */
export interface Refused {
  readonly identity: string;
  readonly operation: string;
  readonly election?: string;
  readonly code: "unauthenticated" | "permission_denied";
  readonly reason: string;
}

/**
 * The caller, when `found` may make the call `rpc` on `scope`; otherwise the refusal is
 * reported and thrown (unauthenticated, or permission denied naming the role needed).
 */
export function admit(
  found: Authentication,
  rpc: string,
  scope: Scope,
  onRefused: (refused: Refused) => void,
): Caller {
  const operation = rpc.slice(rpc.lastIndexOf("/") + 1);
  const election = scope.kind === "name" ? { election: scope.name } : {};
  if (!isCaller(found)) {
    const reason = found.unauthenticated;
    onRefused({ identity: "unknown", operation, ...election, code: "unauthenticated", reason });
    throw unauthenticated(reason);
  }
  const decision = decide(found, rpc, scope);
  if (!decision.ok) {
    const reason = refusal(found, rpc, decision);
    onRefused({ identity: found.name, operation, ...election, code: "permission_denied", reason });
    throw permissionDenied(reason);
  }
  return found;
}

/** The same check for a plain HTTP route: who sent `request`, and may they call `rpc`. */
export function admitRequest(authenticator: Authenticator, onRefused: (refused: Refused) => void) {
  return (request: FastifyRequest, rpc: string, scope: Scope): Caller =>
    admit(
      authenticator.authenticate(request.headers.authorization, request.raw.socket),
      rpc,
      scope,
      onRefused,
    );
}

/**
 * Admits a server stream's request (admit) and holds a slot of the caller's
 * MAX_WATCHES_PER_IDENTITY for it until `signal` aborts or the returned release is called:
 * what the interceptor below does for every stream, and the direct path (http/direct.ts)
 * for the watches it sends as they come.
 */
export type AdmitStream = (
  method: DescMethod,
  values: ContextValues,
  signal: AbortSignal | undefined,
  message: unknown,
) => () => void;

export function streamAdmission(
  onRefused: (refused: Refused) => void,
  watches: WatchQuota,
): AdmitStream {
  return (method, values, signal, message) => {
    if (openServices.has(method.parent.typeName)) return () => {};
    const rpc = `${method.parent.typeName}/${method.name}`;
    const caller = admit(values.get(authentication), rpc, scopeOf(message), onRefused);
    return watches.acquire(caller.name, signal);
  };
}

/**
 * Admits each call (admit), and holds a slot of the caller's MAX_WATCHES_PER_IDENTITY for
 * each stream it opens (admitStream), given back when the stream ends or its client goes.
 */
export function authorization(
  onRefused: (refused: Refused) => void,
  admitStream: AdmitStream,
): Interceptor {
  return (next) => async (req) => {
    if (openServices.has(req.service.typeName)) return next(req);
    if (!req.stream) {
      const rpc = `${req.service.typeName}/${req.method.name}`;
      admit(req.contextValues.get(authentication), rpc, scopeOf(req.message), onRefused);
      return next(req);
    }
    // Server streams: the one request message is checked as the handler reads it, before
    // anything is sent.
    const messages = req.message;
    let release = () => {};
    async function* checked() {
      for await (const message of messages) {
        release = admitStream(req.method, req.contextValues, req.signal, message);
        yield message;
      }
    }
    const res = await next({ ...req, message: checked() }).catch((error: unknown) => {
      release();
      throw error;
    });
    if (!res.stream) {
      release();
      return res;
    }
    const sent = res.message;
    async function* held() {
      try {
        yield* sent;
      } finally {
        release();
      }
    }
    return { ...res, message: held() };
  };
}

/** IdentityService: the caller as the server sees it. */
export function identityService(authenticator: Authenticator): ServiceImpl<typeof IdentityService> {
  return {
    async whoAmI(_req, ctx) {
      const caller = callerOf(ctx);
      return {
        identity: caller.name,
        grants: caller.grants.map((g) => ({ role: g.role, prefix: g.prefix })),
        authEnabled: authenticator.enabled,
      };
    },
  };
}
