// Builds the dashboard: web/ is the app, web/dist what the server serves at `/`.
// `npx vite` serves it with live reload and forwards the API to a local electd.
import { defineConfig } from "vite";

const api = process.env.ELECTD_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  root: "web",
  base: "/",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  // The shared feed (web/src/feed-worker.ts) is a module worker, as the page creates it.
  worker: { format: "es" },
  server: {
    proxy: {
      "/atomix.runtime.election.v1.LeaderElection": api,
      "/electd.v1.ElectionDirectoryService": api,
      "/electd.v1.ElectionAdminService": api,
      "/electd.v1.ElectionHistoryService": api,
    },
  },
});
