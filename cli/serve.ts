// `electd serve`, as the command loads it from the sources: the server module itself.
// The bundle (scripts/bundle.mjs) puts serve-cached.ts in its place.
export { serve } from "../server/main.js";
