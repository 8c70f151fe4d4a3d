// The auth file (--auth-file): who may connect and what each identity was granted. Tokens
// are kept only as SHA-256 hashes and compared in constant time; client certificates are
// matched by their subject. Read at start and again on SIGHUP (main.ts); a file that does
// not parse is refused whole and the previous one stays in force.
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { type Caller, type Grant, isRole } from "./access.js";

/** One identity of the auth file, as read. */
interface Entry {
  readonly caller: Caller;
  /** SHA-256 of the bearer token, when the identity signs in with one. */
  readonly tokenHash?: Buffer;
  /** Subject of the client certificate, when the identity signs in with one. */
  readonly subject?: string;
}

export class AuthFileError extends Error {}

/** The identities of one version of the auth file. */
export class Credentials {
  private constructor(
    private readonly entries: readonly Entry[],
    private readonly subjects: ReadonlyMap<string, Caller>,
  ) {}

  get size(): number {
    return this.entries.length;
  }

  /** The caller a bearer token belongs to, if any. */
  byToken(token: string): Caller | undefined {
    const hash = sha256(token);
    let found: Caller | undefined;
    // Every hash is compared, whatever matched, so the time taken says nothing of which.
    for (const entry of this.entries) {
      if (entry.tokenHash && timingSafeEqual(entry.tokenHash, hash)) found ??= entry.caller;
    }
    return found;
  }

  /** The caller a verified client certificate's subject names; no grants if not listed. */
  bySubject(subject: string): Caller {
    return this.subjects.get(subject) ?? { name: subject, grants: [] };
  }

  static read(path: string): Credentials {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      throw new AuthFileError(`cannot read ${path}: ${(error as Error).message}`);
    }
    try {
      return Credentials.parse(text);
    } catch (error) {
      throw new AuthFileError(`${path}: ${(error as Error).message}`);
    }
  }

  /** Parses the file's JSON (README, "Authentication and roles"), trusting nothing. */
  static parse(text: string): Credentials {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new Error(`not JSON: ${(error as Error).message}`);
    }
    const identities = (json as { identities?: unknown } | null)?.identities;
    if (!Array.isArray(identities)) throw new Error(`needs an "identities" list`);
    const entries: Entry[] = [];
    const subjects = new Map<string, Caller>();
    const names = new Set<string>();
    identities.forEach((raw: unknown, i) => {
      const at = `identities[${i}]`;
      if (typeof raw !== "object" || raw === null) throw new Error(`${at} is not an object`);
      const item = raw as Record<string, unknown>;
      const token = item.token_sha256;
      const subject = item.certificate_subject;
      if ((token === undefined) === (subject === undefined)) {
        throw new Error(`${at} needs one of "token_sha256" or "certificate_subject"`);
      }
      const name = subject ?? item.name;
      if (typeof name !== "string" || name === "") {
        throw new Error(`${at} needs a "name" (or a "certificate_subject", its name)`);
      }
      if (names.has(name)) throw new Error(`${at}: the name ${JSON.stringify(name)} is repeated`);
      names.add(name);
      const caller: Caller = { name, grants: grants(item.grants, at) };
      if (typeof subject === "string") {
        subjects.set(subject, caller);
        entries.push({ caller, subject });
      } else {
        if (typeof token !== "string" || !/^[0-9a-f]{64}$/i.test(token)) {
          throw new Error(`${at}.token_sha256 is not 64 hexadecimal digits`);
        }
        entries.push({ caller, tokenHash: Buffer.from(token, "hex") });
      }
    });
    return new Credentials(entries, subjects);
  }
}

function grants(value: unknown, at: string): Grant[] {
  if (!Array.isArray(value)) throw new Error(`${at}.grants is not a list`);
  return value.map((raw: unknown, i) => {
    const grant = raw as { role?: unknown; prefix?: unknown } | null;
    if (!isRole(grant?.role)) {
      throw new Error(`${at}.grants[${i}].role is not viewer, candidate or admin`);
    }
    const prefix = grant.prefix ?? "";
    if (typeof prefix !== "string") throw new Error(`${at}.grants[${i}].prefix is not a string`);
    return { role: grant.role, prefix };
  });
}

export function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
