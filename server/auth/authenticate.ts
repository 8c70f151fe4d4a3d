// Finds out who a request comes from: a bearer token of the auth file (the `authorization`
// header, which Connect, gRPC metadata and gRPC-Web all carry), or a client certificate
// verified against --tls-client-ca. Without an auth file every request is `anonymous`, with
// every grant (the open development default, said at start-up).
import type { TLSSocket } from "node:tls";
import { anonymous, type Caller } from "./access.js";
import { Credentials } from "./credentials.js";

/** Why a request has no identity: what an `unauthenticated` error tells the caller. */
export interface Unauthenticated {
  readonly unauthenticated: string;
}

export type Authentication = Caller | Unauthenticated;

export function isCaller(value: Authentication): value is Caller {
  return "grants" in value;
}

export class Authenticator {
  private credentials: Credentials | undefined;

  /** `authFile` undefined: no auth, every request is anonymous. */
  constructor(private readonly authFile: string | undefined) {
    this.credentials = authFile === undefined ? undefined : Credentials.read(authFile);
  }

  get enabled(): boolean {
    return this.credentials !== undefined;
  }

  /** Identities in the file in force. */
  get size(): number {
    return this.credentials?.size ?? 0;
  }

  /**
   * Reads the auth file again (SIGHUP). Connections and calls in progress are untouched;
   * each later call is checked against the new file. A file that cannot be read or parsed
   * throws (AuthFileError) and the one in force stays.
   */
  reload(): void {
    if (this.authFile !== undefined) this.credentials = Credentials.read(this.authFile);
  }

  /** The caller of a request with this `authorization` header over this socket. */
  authenticate(authorization: string | undefined, socket: unknown): Authentication {
    const credentials = this.credentials;
    if (credentials === undefined) return anonymous;
    if (authorization !== undefined) {
      const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
      if (!match?.[1]) {
        return { unauthenticated: `the authorization header is not "Bearer <token>"` };
      }
      return (
        credentials.byToken(match[1]) ?? {
          unauthenticated: "the bearer token is not one the server knows",
        }
      );
    }
    const subject = verifiedSubject(socket);
    if (subject !== undefined) return credentials.bySubject(subject);
    return {
      unauthenticated:
        "no credentials: send authorization: Bearer <token> (or a client certificate)",
    };
  }
}

/**
 * The subject of the client certificate the TLS handshake verified ("CN=worker-1, O=acme"),
 * or undefined when there is none or it did not verify. HTTP/2's compatibility sockets
 * pass these calls on to the TLS socket.
 */
function verifiedSubject(socket: unknown): string | undefined {
  const tls = socket as Partial<TLSSocket> | undefined;
  if (!tls?.authorized || typeof tls.getPeerX509Certificate !== "function") return undefined;
  const subject = tls.getPeerX509Certificate()?.subject;
  return subject === undefined || subject === "" ? undefined : subject.split("\n").join(", ");
}
