// A self-signed certificate for 127.0.0.1 and localhost, made by openssl in `dir` (by
// default a temporary directory removed when the test file ends; a hook that makes one
// passes a directory made outside the hook, whose cleanup belongs to the suite).
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { tempDir } from "./tempdir.js";

export interface Certificate {
  /** PEM files, as --tls-cert and --tls-key take them. */
  readonly cert: string;
  readonly key: string;
  /** The certificate itself: what a client trusts. */
  readonly ca: Buffer;
}

export async function selfSignedCertificate(dir = tempDir("tls")): Promise<Certificate> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  await promisify(execFile)("openssl", [
    ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
    ...["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
  ]);
  return { cert, key, ca: readFileSync(cert) };
}

/** A certificate authority and a client certificate it signed, for --tls-client-ca. */
export interface ClientCertificates {
  /** The CA's certificate: what --tls-client-ca takes. */
  readonly caFile: string;
  /** The CA's key, to sign more certificates with `signedBy`. */
  readonly caKeyFile: string;
  /** A client certificate with subject `subject`, signed by the CA, and its key. */
  readonly cert: Buffer;
  readonly key: Buffer;
}

export async function clientCertificate(
  subject: string,
  signedBy?: ClientCertificates,
  dir = tempDir("client-ca"),
): Promise<ClientCertificates> {
  const run = (...args: string[]) => promisify(execFile)("openssl", args);
  const ca = signedBy?.caFile ?? join(dir, "ca.pem");
  const caKey = signedBy?.caKeyFile ?? join(dir, "ca-key.pem");
  const csr = join(dir, "client.csr");
  const cert = join(dir, "client.pem");
  const key = join(dir, "client-key.pem");
  if (!signedBy) {
    await run(
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test CA"],
      ...["-keyout", caKey, "-out", ca],
    );
  }
  await run(
    ...["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", key, "-out", csr],
  );
  await run(
    ...["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial"],
    ...["-CAserial", join(dir, "ca.srl"), "-days", "1", "-out", cert],
  );
  return { caFile: ca, caKeyFile: caKey, cert: readFileSync(cert), key: readFileSync(key) };
}
