// End-to-end tests of the dashboard in Debian's Chromium (/usr/bin/chromium; Playwright's
// own browser download is not used). Each test worker starts its own electd on a free
// port, see e2e/fixtures.ts; the dashboard must be built first (`npm run build`).
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: "e2e",
  // The scale benchmark prints figures and runs only from `npm run bench:dashboard`.
  testIgnore: process.env.ELECTD_BENCH ? [] : ["**/scale.spec.ts"],
  outputDir: "test-results",
  timeout: 60_000,
  expect: { timeout: 5_000 },
  workers: 2,
  forbidOnly: true,
  reporter: [["list"]],
  use: {
    browserName: "chromium",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
});
