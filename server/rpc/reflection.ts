// gRPC server reflection (grpc.reflection.v1 and v1alpha ServerReflection): lets `buf curl`,
// grpcurl, Postman and other tools list the services and call them without a schema.
//
// Hand-written: no maintained package serves reflection for connect-es (there is
// connectrpc.com/grpcreflect for Go, and @grpc/reflection only plugs into a @grpc/grpc-js
// server). It answers from the descriptors protobuf-es embeds in the generated code, which
// are what this server decodes and encodes with, so they cannot drift from it. The two
// versions have the same messages under different package names: v1alpha is answered by
// re-reading its messages as v1 (same wire format).
import {
  create,
  createFileRegistry,
  type DescFile,
  type DescMessage,
  type DescService,
  type FileRegistry,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflectionRequestSchema as AlphaRequestSchema,
  ServerReflectionResponseSchema as AlphaResponseSchema,
  ServerReflection as ServerReflectionAlpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The services of `router`, in the order registered, each once. */
function servicesOf(router: ConnectRouter): DescService[] {
  return [...new Set(router.handlers.map((h) => h.service))];
}

/** Every file the services are declared in, and the files they import, imports first. */
function filesOf(services: readonly DescService[]): DescFile[] {
  const seen = new Set<DescFile>();
  const visit = (file: DescFile) => {
    if (seen.has(file)) return;
    for (const dependency of file.dependencies) visit(dependency);
    seen.add(file);
  };
  for (const service of services) visit(service.file);
  return [...seen];
}

/** What reflection answers from: built on first use, once every service is registered. */
interface Schema {
  readonly services: readonly string[];
  readonly registry: FileRegistry;
  /** file name (`a/b.proto`) -> the file, then the files it imports. */
  readonly files: ReadonlyMap<string, DescFile>;
}

function schemaOf(router: ConnectRouter): Schema {
  const services = servicesOf(router);
  const files = filesOf(services);
  const registry = createFileRegistry(
    create(FileDescriptorSetSchema, { file: files.map((f) => f.proto) }),
  );
  return {
    services: services.map((s) => s.typeName),
    registry,
    files: new Map(files.map((f) => [f.proto.name, f])),
  };
}

/** The file declaring a fully qualified name: a type, a service, a method, a field or an enum value. */
function fileOfSymbol(registry: FileRegistry, symbol: string): DescFile | undefined {
  const direct = registry.get(symbol);
  if (direct) return direct.file;
  const dot = symbol.lastIndexOf(".");
  if (dot < 0) return undefined;
  const parent = registry.get(symbol.slice(0, dot));
  const member = symbol.slice(dot + 1);
  switch (parent?.kind) {
    case "service":
      return parent.methods.some((m) => m.name === member) ? parent.file : undefined;
    case "message":
      return parent.fields.some((f) => f.name === member) ||
        parent.oneofs.some((o) => o.name === member)
        ? parent.file
        : undefined;
    case "enum":
      return parent.values.some((v) => v.name === member) ? parent.file : undefined;
    default:
      return undefined;
  }
}

/**
 * Answers the requests of one reflection stream. As grpc-go does, a file goes with the
 * files it imports, each sent at most once per stream: clients keep what they were sent.
 */
function reflectionStream(schema: Schema) {
  const sent = new Set<DescFile>();
  const descriptors = (file: DescFile): Uint8Array[] => {
    const out: Uint8Array[] = [];
    const visit = (f: DescFile) => {
      if (sent.has(f)) return;
      sent.add(f);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      for (const dependency of f.dependencies) visit(dependency);
    };
    visit(file);
    return out;
  };
  const notFound = (message: string) =>
    ({
      case: "errorResponse",
      value: { errorCode: Code.NotFound, errorMessage: message },
    }) as const;
  const fileResponse = (file: DescFile | undefined, what: string) =>
    file
      ? ({
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: descriptors(file) },
        } as const)
      : notFound(`${what} not found`);

  return (req: ServerReflectionRequest): ServerReflectionResponse => {
    const { registry } = schema;
    const r = req.messageRequest;
    let answer: MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"];
    switch (r.case) {
      case "listServices":
        answer = {
          case: "listServicesResponse",
          value: { service: schema.services.map((name) => ({ name })) },
        };
        break;
      case "fileByFilename":
        answer = fileResponse(schema.files.get(r.value), `file "${r.value}"`);
        break;
      case "fileContainingSymbol":
        answer = fileResponse(fileOfSymbol(registry, r.value), `symbol "${r.value}"`);
        break;
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = r.value;
        const extendee = registry.getMessage(containingType);
        const extension = extendee && registry.getExtensionFor(extendee, extensionNumber);
        answer = fileResponse(
          extension?.file,
          `extension ${extensionNumber} of "${containingType}"`,
        );
        break;
      }
      case "allExtensionNumbersOfType": {
        const extendee: DescMessage | undefined = registry.getMessage(r.value);
        if (!extendee) {
          answer = notFound(`type "${r.value}" not found`);
          break;
        }
        const numbers: number[] = [];
        for (const type of registry) {
          if (type.kind === "extension" && type.extendee.typeName === r.value) {
            numbers.push(type.number);
          }
        }
        answer = {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: r.value, extensionNumber: numbers },
        };
        break;
      }
      default:
        answer = {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "no request in the message" },
        };
    }
    return create(ServerReflectionResponseSchema, {
      validHost: req.host,
      originalRequest: req,
      messageResponse: answer,
    });
  };
}

/** Re-reads a message as another schema of the same wire format. */
function convert<From extends DescMessage, To extends DescMessage>(
  from: From,
  to: To,
  message: MessageShape<From>,
): MessageShape<To> {
  return fromBinary(to, toBinary(from, message));
}

/**
 * Registers both reflection services on `router`. Call it after every other service: it
 * lists what the router holds when the first reflection request arrives.
 */
export function registerReflection(router: ConnectRouter): void {
  let schema: Schema | undefined;
  const answerer = () => {
    schema ??= schemaOf(router);
    return reflectionStream(schema);
  };
  router.service(ServerReflection, {
    async *serverReflectionInfo(requests) {
      const answer = answerer();
      for await (const req of requests) yield answer(req);
    },
  });
  router.service(ServerReflectionAlpha, {
    async *serverReflectionInfo(requests) {
      const answer = answerer();
      for await (const req of requests) {
        const res = answer(convert(AlphaRequestSchema, ServerReflectionRequestSchema, req));
        yield convert(ServerReflectionResponseSchema, AlphaResponseSchema, res);
      }
    },
  });
}
