// README is the user's reference: every setting must appear there with its flag,
// environment variable and default, as server/config.ts defines them, and every metric
// electd exports by its name.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { settings } from "../server/config.js";
import { Metrics } from "../server/metrics/metrics.js";
import { root } from "./support/process.js";

const readme = readFileSync(`${root}/README.md`, "utf8");

describe("README", () => {
  for (const s of Object.values(settings)) {
    it(`documents --${s.flag} / ${s.env} with its default`, () => {
      const row = readme
        .split("\n")
        .find((line) => line.includes(`\`--${s.flag}\``) && line.includes(`\`${s.env}\``));
      assert.ok(row, `a table row names --${s.flag} and ${s.env}`);
      assert.ok(
        s.fallback === "" ? /unset/.test(row) : row.includes(`\`${s.fallback}\``),
        `the row gives the default ${s.fallback || "unset"}: ${row}`,
      );
    });
  }

  it("documents every electd metric by name", async () => {
    const names = (await new Metrics().registry.getMetricsAsJSON())
      .map((m) => m.name)
      .filter((name) => name.startsWith("electd_"));
    assert.ok(names.length >= 12);
    for (const name of names) assert.ok(readme.includes(`| \`${name}\` |`), name);
  });
});
