// What every client subcommand of `electd` shares: its arguments parsed by node:util
// parseArgs, --help, usage errors (exit 2), --server URLs and the clients for them, and
// how a refused call is reported (exit 1).
import { type ParseArgsConfig, parseArgs } from "node:util";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  LeaderElection,
  type Term,
  TermSchema,
} from "../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionDirectoryService } from "../gen/electd/v1/directory_pb.js";

export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** A usage error: printed with the subcommand's usage, exit code 2. */
export class UsageError extends Error {}

export const serverOption = {
  server: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

export const serverHelp = `  --server URL   an electd server (default: ${DEFAULT_SERVER})`;

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses `argv` for a subcommand; "help" when --help is given. Throws UsageError for an
 * unknown flag, a missing value or a wrong number of positionals.
 */
export function parse<const O extends Options>(
  argv: readonly string[],
  options: O,
  positionals: { readonly min: number; readonly max: number },
) {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if ((parsed.values as { help?: boolean }).help) return "help" as const;
  const count = parsed.positionals.length;
  if (count < positionals.min) throw new UsageError("missing arguments");
  if (count > positionals.max) {
    throw new UsageError(`unexpected argument "${parsed.positionals[positionals.max]}"`);
  }
  return parsed;
}

/** The --server values, checked, or the default. */
export function serverUrls(values: { readonly server?: readonly string[] | undefined }): string[] {
  const urls = values.server?.length ? [...values.server] : [DEFAULT_SERVER];
  for (const url of urls) {
    if (!/^https?:\/\/[^/]+\/?$/.test(url)) {
      throw new UsageError(`--server "${url}" is not a URL such as ${DEFAULT_SERVER}`);
    }
  }
  return urls;
}

/** Calls `call` on each server in turn until one can be reached. */
export async function onServers<T>(
  urls: readonly string[],
  call: (url: string) => Promise<T>,
): Promise<T> {
  for (const [i, url] of urls.entries()) {
    try {
      return await call(url);
    } catch (error) {
      const code = ConnectError.from(error).code;
      const unreachable = code === Code.Unavailable || code === Code.DeadlineExceeded;
      if (!unreachable || i === urls.length - 1) throw error;
    }
  }
  throw new UsageError("no --server");
}

/**
 * Connect over HTTP/1.1 (cleartext or TLS), which every electd serves; with the bearer
 * token in ELECTD_TOKEN, if set, for a server with an auth file (from the environment,
 * not a flag, which every user of `ps` could read).
 */
export function transportTo(url: string): Transport {
  const token = process.env.ELECTD_TOKEN;
  return createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    interceptors:
      token === undefined || token === ""
        ? []
        : [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${token}`);
              return next(req);
            },
          ],
  });
}

export function electionClient(url: string) {
  return createClient(LeaderElection, transportTo(url));
}

export function directoryClient(url: string) {
  return createClient(ElectionDirectoryService, transportTo(url));
}

/**
 * An election's state as one line of JSON, every field present:
 * {"term":"5","leader":"node-3","candidates":["node-1"]} (the term is a uint64, a string).
 */
export function termLine(term: Term | undefined): string {
  return toJsonString(
    TermSchema,
    term ?? { $typeName: TermSchema.typeName, term: 0n, leader: "", candidates: [] },
    {
      alwaysEmitImplicit: true,
    },
  );
}

/** How a failed call reads on stderr: `electd <command>: <code>: <message>`. */
export function describeError(error: unknown): string {
  if (error instanceof ConnectError) return `${codeName(error)}: ${error.rawMessage}`;
  return error instanceof Error ? error.message : String(error);
}

/** The code as Connect names it on the wire: not_found, invalid_argument, ... */
function codeName(error: ConnectError): string {
  return Code[error.code].replace(/[A-Z]/g, (c, i: number) => `${i ? "_" : ""}${c.toLowerCase()}`);
}
