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
