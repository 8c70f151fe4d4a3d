// One election client per way our users reach electd, behind one interface, so every
// scenario runs unchanged through each protocol:
// - Connect JSON over HTTP/1.1, Connect binary over HTTP/2 (connect-node)
// - gRPC over HTTP/2 (connect-node)
// - gRPC-Web over fetch, as a browser sends it (connect-web)
// - plain fetch with Connect JSON, as curl users send it (hand-built requests)
// - @grpc/grpc-js with the .proto loaded at run time, as backends built from the original
//   Atomix schema do: no generated code of ours involved.
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createGrpcWebTransport as createFetchGrpcWebTransport } from "@connectrpc/connect-web";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";

/** The state of an election as every client reports it. */
export interface TermView {
  term: bigint;
  leader: string;
  candidates: string[];
}

export type CandidateMethod = "enter" | "withdraw" | "anoint" | "promote" | "demote" | "evict";

export interface ElectionClient {
  readonly protocol: string;
  create(name: string, tags?: string[]): Promise<void>;
  close(name: string): Promise<void>;
  call(method: CandidateMethod, name: string, candidate: string): Promise<TermView>;
  getTerm(name: string): Promise<TermView>;
  /** Streams the election's states until `signal` aborts or the server ends the stream. */
  watch(name: string, signal: AbortSignal): AsyncIterable<TermView>;
  /** Sends a request whose fields are given as-is (to test validation). */
  raw(method: string, request: Record<string, unknown>): Promise<unknown>;
  dispose(): void;
}

/** Errors from every client are normalised to ConnectError so tests compare codes. */
export async function codeOf(promise: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await promise;
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

type Term = { term?: { term: bigint; leader: string; candidates: string[] } | undefined };

function view(res: Term): TermView {
  const t = res.term;
  return { term: t?.term ?? 0n, leader: t?.leader ?? "", candidates: [...(t?.candidates ?? [])] };
}

function connectClient(protocol: string, transport: Transport, dispose = () => {}): ElectionClient {
  const client = createClient(LeaderElection, transport);
  return {
    protocol,
    async create(name, tags = []) {
      await client.create({ id: { name }, tags });
    },
    async close(name) {
      await client.close({ id: { name } });
    },
    async call(method, name, candidate) {
      return view(await client[method]({ id: { name }, candidate }));
    },
    async getTerm(name) {
      return view(await client.getTerm({ id: { name } }));
    },
    async *watch(name, signal) {
      for await (const res of client.watch({ id: { name } }, { signal })) yield view(res);
    },
    async raw(method, request) {
      const fn = client[method as keyof typeof client] as (r: unknown) => Promise<unknown>;
      return fn(request);
    },
    dispose,
  };
}

const service = "/atomix.runtime.election.v1.LeaderElection/";

/** A response as plain JSON-like data (Connect JSON, or grpc-js with longs as strings). */
function termOf(res: Record<string, unknown>): TermView {
  const t = (res.term ?? {}) as { term?: string; leader?: string; candidates?: string[] };
  return { term: BigInt(t.term ?? "0"), leader: t.leader ?? "", candidates: t.candidates ?? [] };
}

/** Connect JSON built by hand with fetch, as a curl user sends it. */
function fetchClient(baseUrl: string): ElectionClient {
  async function post(method: string, body: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${baseUrl}${service}${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw connectErrorFromJson(json);
    return json;
  }
  return {
    protocol: "fetch + Connect JSON",
    async create(name, tags = []) {
      await post("Create", { id: { name }, tags });
    },
    async close(name) {
      await post("Close", { id: { name } });
    },
    async call(method, name, candidate) {
      const rpc = method[0]?.toUpperCase() + method.slice(1);
      return termOf(await post(rpc, { id: { name }, candidate }));
    },
    async getTerm(name) {
      return termOf(await post("GetTerm", { id: { name } }));
    },
    async *watch(name, signal) {
      // Connect server streaming: 5-byte envelopes (flags, big-endian length) of JSON.
      const res = await fetch(`${baseUrl}${service}Watch`, {
        method: "POST",
        headers: { "content-type": "application/connect+json" },
        body: envelope(0, JSON.stringify({ id: { name } })) as BodyInit,
        signal,
      });
      if (!res.body) throw new Error("no body");
      let buffer: Uint8Array = new Uint8Array(0);
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer = concat(buffer, chunk);
          while (buffer.length >= 5) {
            const view = new DataView(buffer.buffer, buffer.byteOffset);
            const flags = view.getUint8(0);
            const length = view.getUint32(1);
            if (buffer.length < 5 + length) break;
            const json = JSON.parse(new TextDecoder().decode(buffer.subarray(5, 5 + length)));
            buffer = buffer.subarray(5 + length);
            if (flags & 0b10) {
              if (json.error) throw connectErrorFromJson(json.error);
              return;
            }
            yield termOf(json);
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        throw error;
      }
    },
    async raw(method, request) {
      return post(method[0]?.toUpperCase() + method.slice(1), request);
    },
    dispose() {},
  };
}

function envelope(flags: number, json: string): Uint8Array {
  const payload = new TextEncoder().encode(json);
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint8(0, flags);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function connectErrorFromJson(json: Record<string, unknown>): ConnectError {
  const name = String(json.code ?? "unknown");
  const code = Object.entries(Code).find(
    ([key, value]) =>
      typeof value === "number" && key.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() === name,
  )?.[1] as Code | undefined;
  return new ConnectError(String(json.message ?? ""), code ?? Code.Unknown);
}

const protoRoot = fileURLToPath(new URL("../../proto", import.meta.url));

/** @grpc/grpc-js with the Atomix .proto loaded at run time: an unchanged gRPC backend. */
function grpcJsClient(baseUrl: string): ElectionClient {
  const definition = protoLoader.loadSync("atomix/runtime/election/v1/election.proto", {
    includeDirs: [protoRoot],
    longs: String,
    defaults: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    atomix: { runtime: { election: { v1: { LeaderElection: grpc.ServiceClientConstructor } } } };
  };
  const Ctor = loaded.atomix.runtime.election.v1.LeaderElection;
  const client = new Ctor(new URL(baseUrl).host, grpc.credentials.createInsecure());
  const unary = (method: string, request: unknown) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const fn = client[method] as (
        r: unknown,
        cb: (e: grpc.ServiceError | null, r: unknown) => void,
      ) => void;
      fn.call(client, request, (error, response) => {
        if (error) reject(new ConnectError(error.details, error.code as number as Code));
        else resolve(response as Record<string, unknown>);
      });
    });
  const rpc = (method: string) => method[0]?.toUpperCase() + method.slice(1);
  return {
    protocol: "@grpc/grpc-js (runtime .proto)",
    async create(name, tags = []) {
      await unary("Create", { id: { name }, tags });
    },
    async close(name) {
      await unary("Close", { id: { name } });
    },
    async call(method, name, candidate) {
      return termOf(await unary(rpc(method), { id: { name }, candidate }));
    },
    async getTerm(name) {
      return termOf(await unary("GetTerm", { id: { name } }));
    },
    async *watch(name, signal) {
      const call = (
        client.Watch as (r: unknown) => grpc.ClientReadableStream<Record<string, unknown>>
      ).call(client, { id: { name } });
      signal.addEventListener("abort", () => call.cancel(), { once: true });
      try {
        for await (const res of call) yield termOf(res as Record<string, unknown>);
      } catch (error) {
        const e = error as grpc.ServiceError;
        if (e.code === grpc.status.CANCELLED && signal.aborted) return;
        throw new ConnectError(e.details, e.code as number as Code);
      }
    },
    async raw(method, request) {
      return unary(rpc(method), request);
    },
    dispose() {
      // The service's Close rpc shadows Client#close on the generated client object.
      grpc.Client.prototype.close.call(client);
    },
  };
}

/** Every client kind, for one server. */
export function allClients(baseUrl: string): ElectionClient[] {
  return [
    connectClient(
      "Connect JSON (HTTP/1.1)",
      createConnectTransport({ baseUrl, httpVersion: "1.1" }),
    ),
    connectClient(
      "Connect binary (HTTP/2)",
      createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
    ),
    connectClient("gRPC (HTTP/2)", createGrpcTransport({ baseUrl })),
    connectClient("gRPC-Web (fetch)", createFetchGrpcWebTransport({ baseUrl })),
    fetchClient(baseUrl),
    grpcJsClient(baseUrl),
  ];
}
