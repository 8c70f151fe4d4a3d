// The domain's own errors (API.md section 4). Everything below rpc/ (validation, rules,
// stores, sessions, watches) raises these, never a transport's error type; rpc/errors.ts
// is the one place that maps each kind to a Connect code, as etcd's v3rpc/util.go maps its
// sentinel errors to gRPC status.

export type ErrorKind =
  /** The request is malformed or a name is not acceptable; retrying it cannot help. */
  | "invalid"
  /** The election or session named does not exist (any more). */
  | "not_found"
  /** A configured limit is reached. */
  | "limit"
  /** The call's condition (an expected term) no longer holds. */
  | "precondition"
  /** Nothing was committed now (store failing or locked, shutting down); a retry may work. */
  | "unavailable"
  /** No credentials, or credentials no identity of the auth file has. */
  | "unauthenticated"
  /** The caller's grants do not cover the call; the message names the role it needs. */
  | "permission";

export class ElectdError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "ElectdError";
  }
}

/** A field or header whose value is not acceptable; the message starts with its name. */
export function invalid(field: string, problem: string): ElectdError {
  return new ElectdError("invalid", `${field} ${problem}`);
}

export function electionNotFound(name: string): ElectdError {
  return new ElectdError("not_found", `election ${JSON.stringify(name)} not found`);
}

export function limitReached(message: string): ElectdError {
  return new ElectdError("limit", `limit reached with ${message}`);
}

export function unavailable(message: string): ElectdError {
  return new ElectdError("unavailable", message);
}

export function shuttingDown(): ElectdError {
  return unavailable("server is shutting down");
}

export function unauthenticated(message: string): ElectdError {
  return new ElectdError("unauthenticated", message);
}

export function permissionDenied(message: string): ElectdError {
  return new ElectdError("permission", message);
}
