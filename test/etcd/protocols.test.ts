// The protocol tests again, on servers whose store is a real three-member etcd cluster: the
// same API, the same rules, the same errors, through every protocol. Sessions there are
// etcd leases, counted in whole seconds, so the session tests written for millisecond
// TTLs have their etcd counterparts in cluster.test.ts.
import { after } from "node:test";
import { startEtcd } from "../support/etcd.js";
import { useEtcd } from "../support/server.js";

const cluster = await startEtcd();
after(() => cluster.stop());
useEtcd(cluster.endpoints);

await import("../rpc/election.test.js");
await import("../rpc/admin.test.js");
await import("../rpc/directory.test.js");
await import("../rpc/fencing.test.js");
await import("../rpc/history.test.js");
