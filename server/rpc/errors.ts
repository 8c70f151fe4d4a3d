// The one place where the domain's errors (server/errors.ts) become Connect codes
// (API.md section 4). Handlers and everything below them throw ElectdError; this
// interceptor turns it into a ConnectError on the way out, for unary calls and for
// errors raised in the middle of a stream.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ElectdError, type ErrorKind } from "../errors.js";

const codes: Record<ErrorKind, Code> = {
  invalid: Code.InvalidArgument,
  not_found: Code.NotFound,
  limit: Code.ResourceExhausted,
  precondition: Code.FailedPrecondition,
  unavailable: Code.Unavailable,
  unauthenticated: Code.Unauthenticated,
  permission: Code.PermissionDenied,
};

export function toConnectError(error: unknown): unknown {
  return error instanceof ElectdError ? new ConnectError(error.message, codes[error.kind]) : error;
}

async function* mapped<T>(messages: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    throw toConnectError(error);
  }
}

export const domainErrorInterceptor: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    return res.stream ? { ...res, message: mapped(res.message) } : res;
  } catch (error) {
    throw toConnectError(error);
  }
};
