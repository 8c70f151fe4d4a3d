// gRPC server reflection (v1 and v1alpha) against a real server: `buf curl` lists the
// services and calls a method with no --schema, and @grpc/grpc-js, knowing only the
// reflection .proto, asks for the schema and then calls LeaderElection from what it got.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { startServer } from "../support/server.js";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));
const protoRoot = fileURLToPath(new URL("../../proto", import.meta.url));
const ELECTION = "atomix.runtime.election.v1.LeaderElection";

// Started at the top level: startServer stops it when this file ends.
const server = await startServer();
await fetch(`${server.url}/${ELECTION}/Create`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: '{"id":{"name":"x"}}',
});
await fetch(`${server.url}/${ELECTION}/Enter`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: '{"id":{"name":"x"},"candidate":"a"}',
});

/** `npx buf curl` run from the repository (no --schema: buf asks the server). */
async function bufCurl(...args: string[]): Promise<string> {
  const { stdout } = await run("npx", ["buf", "curl", ...args], { cwd: root, timeout: 60_000 });
  return stdout;
}

interface ReflectionResponse {
  validHost: string;
  originalRequest: Record<string, unknown>;
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  listServicesResponse?: { service: { name: string }[] };
  allExtensionNumbersResponse?: { baseTypeName: string; extensionNumber: number[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/** One reflection stream over @grpc/grpc-js; ask() sends a request and reads its answer. */
function reflectionClient(version: "v1" | "v1alpha") {
  const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [protoRoot],
    oneofs: false,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> };
  };
  const Ctor = loaded.grpc.reflection[version]?.ServerReflection;
  assert.ok(Ctor);
  const client = new Ctor(new URL(server.url).host, grpc.credentials.createInsecure());
  const call = (
    client.ServerReflectionInfo as () => grpc.ClientDuplexStream<unknown, ReflectionResponse>
  ).call(client);
  const answers = call[Symbol.asyncIterator]();
  return {
    async ask(request: Record<string, unknown>): Promise<ReflectionResponse> {
      call.write(request);
      const next = await answers.next();
      assert.equal(next.done, false);
      return next.value as ReflectionResponse;
    },
    close() {
      call.end();
      client.close();
    },
  };
}

const files = (res: ReflectionResponse): FileDescriptorProto[] =>
  (res.fileDescriptorResponse?.fileDescriptorProto ?? []).map((bytes) =>
    fromBinary(FileDescriptorProtoSchema, bytes),
  );

describe("gRPC server reflection", () => {
  it("lets buf curl call a method with no schema, over gRPC, gRPC-Web and Connect", async () => {
    const url = `${server.url}/${ELECTION}/GetTerm`;
    const body = '{"id":{"name":"x"}}';
    const grpcOut = await bufCurl("--protocol", "grpc", "--http2-prior-knowledge", "-d", body, url);
    assert.deepEqual(JSON.parse(grpcOut), { term: { term: "1", leader: "a" } });
    const webOut = await bufCurl("--protocol", "grpcweb", "-d", body, url);
    assert.deepEqual(JSON.parse(webOut), { term: { term: "1", leader: "a" } });
    const connectOut = await bufCurl("--protocol", "connect", "-d", body, url);
    assert.deepEqual(JSON.parse(connectOut), { term: { term: "1", leader: "a" } });
  });

  it("lets buf curl list every service and method", async () => {
    const flags = ["--protocol", "grpc", "--http2-prior-knowledge"];
    const services = (await bufCurl(...flags, "--list-services", server.url)).trim().split("\n");
    assert.deepEqual(services.sort(), [
      ELECTION,
      "electd.v1.ElectionAdminService",
      "electd.v1.ElectionDirectoryService",
      "electd.v1.ElectionHistoryService",
      "electd.v1.FencingService",
      "electd.v1.IdentityService",
      "electd.v1.SessionService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
    const methods = (await bufCurl(...flags, "--list-methods", server.url)).trim().split("\n");
    for (const method of ["Enter", "GetTerm", "Watch"]) {
      assert.ok(methods.includes(`${ELECTION}/${method}`), method);
    }
    assert.ok(methods.includes("electd.v1.SessionService/OpenSession"));
  });

  for (const version of ["v1", "v1alpha"] as const) {
    it(`answers ${version} requests from @grpc/grpc-js, enough to call LeaderElection`, async (t) => {
      const reflection = reflectionClient(version);
      t.after(() => reflection.close());

      const listed = await reflection.ask({ host: "h", listServices: "*" });
      assert.equal(listed.validHost, "h");
      assert.equal(listed.originalRequest.listServices, "*");
      const names = listed.listServicesResponse?.service.map((s) => s.name) ?? [];
      assert.ok(names.includes(ELECTION) && names.includes("grpc.health.v1.Health"));

      // A method's name finds its file; the files it imports come with it.
      const found = files(await reflection.ask({ fileContainingSymbol: `${ELECTION}.GetTerm` }));
      const sent = found.map((f) => f.name);
      assert.equal(sent[0], "atomix/runtime/election/v1/election.proto");
      assert.ok(sent.includes("atomix/runtime/v1/primitive.proto"), sent.join());
      // Each file is sent once per stream: asking again for an imported file's type sends
      // nothing already sent.
      const again = await reflection.ask({
        fileContainingSymbol: "atomix.runtime.election.v1.Term",
      });
      assert.deepEqual(files(again), []);
      // Files, messages, fields and enum values are found by name too.
      const session = files(await reflection.ask({ fileByFilename: "electd/v1/session.proto" }));
      assert.ok(session.some((f) => f.name === "google/protobuf/duration.proto"));
      const field = await reflection.ask({
        fileContainingSymbol: "grpc.health.v1.HealthCheckRequest.service",
      });
      assert.equal(files(field)[0]?.name, "grpc/health/v1/health.proto");
      const extensions = await reflection.ask({
        allExtensionNumbersOfType: "google.protobuf.Duration",
      });
      // No extensions (an empty list, left out by grpc-js), and not an error.
      assert.equal(
        extensions.allExtensionNumbersResponse?.baseTypeName,
        "google.protobuf.Duration",
      );
      assert.deepEqual(extensions.allExtensionNumbersResponse?.extensionNumber ?? [], []);

      for (const request of [
        { fileContainingSymbol: "no.such.Service" },
        { fileByFilename: "nope.proto" },
        { allExtensionNumbersOfType: "no.such.Message" },
        { fileContainingExtension: { containingType: "no.such.Message", extensionNumber: 1 } },
      ]) {
        const refused = await reflection.ask(request);
        assert.equal(
          refused.errorResponse?.errorCode,
          grpc.status.NOT_FOUND,
          JSON.stringify(request),
        );
      }

      // What reflection sent is a schema grpc-js can call the service with.
      const set = toBinary(
        FileDescriptorSetSchema,
        create(FileDescriptorSetSchema, { file: found }),
      );
      const loaded = grpc.loadPackageDefinition(
        protoLoader.loadFileDescriptorSetFromBuffer(Buffer.from(set), { longs: String }),
      ) as unknown as {
        atomix: {
          runtime: { election: { v1: { LeaderElection: grpc.ServiceClientConstructor } } };
        };
      };
      const Ctor = loaded.atomix.runtime.election.v1.LeaderElection;
      const client = new Ctor(new URL(server.url).host, grpc.credentials.createInsecure());
      t.after(() => grpc.Client.prototype.close.call(client));
      const term = await new Promise<unknown>((resolve, reject) =>
        (client.GetTerm as (r: unknown, cb: (e: Error | null, r: unknown) => void) => void).call(
          client,
          { id: { name: "x" } },
          (error, response) => (error ? reject(error) : resolve(response)),
        ),
      );
      assert.deepEqual(term, { term: { term: "1", leader: "a" } });
    });
  }
});
