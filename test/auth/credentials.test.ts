// The auth file as read: what it accepts, what it refuses (whole, with the place named),
// and tokens looked up by hash.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { anonymous, decide, holds } from "../../server/auth/access.js";
import { Credentials } from "../../server/auth/credentials.js";
import { sha256Hex } from "../support/auth.js";

const file = (identities: unknown) => JSON.stringify({ identities });

describe("the auth file", () => {
  it("finds a caller by token and by certificate subject", () => {
    const credentials = Credentials.parse(
      file([
        { name: "ci", token_sha256: sha256Hex("s3cret"), grants: [{ role: "admin" }] },
        { certificate_subject: "CN=w1", grants: [{ role: "candidate", prefix: "jobs/" }] },
      ]),
    );
    assert.equal(credentials.byToken("s3cret")?.name, "ci");
    assert.equal(credentials.byToken("s3cre"), undefined);
    assert.deepEqual(credentials.bySubject("CN=w1").grants, [
      { role: "candidate", prefix: "jobs/" },
    ]);
    assert.deepEqual(credentials.bySubject("CN=other").grants, []);
  });

  const refused: [string, string, RegExp][] = [
    ["not JSON", "{", /not JSON/],
    ["no list", "{}", /needs an "identities" list/],
    ["neither credential", file([{ name: "x", grants: [] }]), /identities\[0\] needs one of/],
    ["a short hash", file([{ name: "x", token_sha256: "abc", grants: [] }]), /not 64 hexadecimal/],
    [
      "an unknown role",
      file([{ name: "x", token_sha256: sha256Hex("t"), grants: [{ role: "root" }] }]),
      /identities\[0\]\.grants\[0\]\.role is not viewer, candidate or admin/,
    ],
    [
      "a repeated name",
      file([
        { name: "x", token_sha256: sha256Hex("a"), grants: [] },
        { name: "x", token_sha256: sha256Hex("b"), grants: [] },
      ]),
      /the name "x" is repeated/,
    ],
  ];
  for (const [what, text, message] of refused) {
    it(`is refused with ${what}`, () => {
      assert.throws(() => Credentials.parse(text), message);
    });
  }
});

describe("access", () => {
  const scoped = { name: "bot", grants: [{ role: "candidate" as const, prefix: "orders/" }] };

  it("covers names and listings under the grant's prefix only", () => {
    assert.ok(holds(scoped, "viewer", { kind: "name", name: "orders/eu" }));
    assert.ok(holds(scoped, "candidate", { kind: "prefix", prefix: "orders/eu" }));
    assert.ok(!holds(scoped, "viewer", { kind: "prefix", prefix: "order" }));
    assert.ok(!holds(scoped, "admin", { kind: "name", name: "orders/eu" }));
    assert.ok(holds(scoped, "candidate", { kind: "none" }));
  });

  it("needs admin for an rpc it does not know, and lets anonymous do anything", () => {
    const decision = decide(scoped, "electd.v1.Future/Thing", { kind: "name", name: "orders/x" });
    assert.deepEqual(decision.ok ? undefined : decision.needs, "admin");
    assert.ok(decide(anonymous, "electd.v1.Future/Thing", { kind: "none" }).ok);
  });
});
