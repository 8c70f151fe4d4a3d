// A gRPC message as sent on the wire: flags (1: compressed), length, message (the
// Length-Prefixed-Message of the gRPC over HTTP/2 protocol), for tests that speak raw HTTP/2.

export function grpcEnvelope(message: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame[0] = flags;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}
