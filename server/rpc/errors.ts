// ConnectErrors for the outcomes the store and the rules report (API.md section 4).
import { Code, ConnectError } from "@connectrpc/connect";

export function notFound(name: string): ConnectError {
  return new ConnectError(`election "${name}" not found`, Code.NotFound);
}

const limitNames = {
  candidates: "candidates per election (MAX_CANDIDATES)",
  elections: "elections per server (MAX_ELECTIONS)",
} as const;

export function limitReached(refusal: {
  limit: keyof typeof limitNames;
  max: number;
}): ConnectError {
  return new ConnectError(
    `limit reached with ${refusal.max} ${limitNames[refusal.limit]}`,
    Code.ResourceExhausted,
  );
}
