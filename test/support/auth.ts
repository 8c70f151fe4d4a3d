// An auth file for a test server (README, "Authentication and roles"), with a fresh random
// token per identity, and transports that present a token on every protocol.
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { tempDir } from "./tempdir.js";

export interface TestIdentity {
  readonly name: string;
  readonly grants: readonly { readonly role: string; readonly prefix?: string }[];
}

export function sha256Hex(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Writes the file; returns its path and each identity's token by name. */
export function writeAuthFile(
  identities: readonly TestIdentity[],
  path = join(tempDir("auth"), "auth.json"),
): { path: string; tokens: Map<string, string> } {
  const tokens = new Map<string, string>();
  const entries = identities.map((identity) => {
    const token = randomBytes(24).toString("base64url");
    tokens.set(identity.name, token);
    return { name: identity.name, token_sha256: sha256Hex(token), grants: identity.grants };
  });
  writeFileSync(path, JSON.stringify({ identities: entries }, null, 2));
  return { path, tokens };
}

/** Sends `authorization: Bearer <token>` (nothing when token is undefined). */
export function bearer(token: string | undefined): Interceptor {
  return (next) => (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** One transport per protocol, each presenting `token`. */
export function transportsWith(
  baseUrl: string,
  token: string | undefined,
): Record<string, Transport> {
  const interceptors = [bearer(token)];
  return {
    "Connect JSON over HTTP/1.1": createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      interceptors,
    }),
    "gRPC over h2c": createGrpcTransport({ baseUrl, interceptors }),
    "gRPC-Web (fetch)": createGrpcWebTransport({ baseUrl, interceptors }),
  };
}
