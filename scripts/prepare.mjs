// `prepare` (run by `npm ci` and `npm install` in a clone): builds dist/ and web/dist with
// `npm run build`. The bundler (esbuild) and Vite are dev dependencies, so `npm ci --omit=dev` cannot
// build: then this says so and succeeds, and the server runs from a build made elsewhere
// (the package from `npm pack` holds dist/ and web/dist). See README, "Installing".
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const missing = ["esbuild", "vite"].filter((name) => {
  try {
    require.resolve(`${name}/package.json`);
    return false;
  } catch {
    return true;
  }
});
if (missing.length > 0) {
  console.log(
    `electd: not building (${missing.join(", ")} not installed: dev dependencies omitted). ` +
      "npm start needs dist/: build with `npm ci`, or install the package made by `npm pack`.",
  );
  process.exit(0);
}
const built = spawnSync("npm", ["run", "build"], { stdio: "inherit" });
process.exit(built.status ?? 1);
