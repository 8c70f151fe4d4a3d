// Sessions on etcd leases (`--store etcd`): a session is an etcd lease, so it lives in the
// cluster, not in the server that opened it. OpenSession grants a lease (etcd counts in
// whole seconds: the TTL is rounded up, and the response says what was granted),
// KeepAlive renews it through any server, CloseSession revokes it. Each candidate a session
// enters is bound by a key on that lease (server/store/etcd.ts), so when etcd expires or
// revokes the lease it deletes the bindings too, and every server's watch hears which
// elections to release. Whichever server releases first commits the change; the others
// find nothing left to withdraw (a release is idempotent). A release that cannot commit
// (etcd unreachable) is retried with backoff until it does. An expiry is counted once in
// the cluster: by the server whose transaction claims it (EtcdStore.claimExpiry), whether
// or not the session had candidates; a closed session is never counted.
import { randomBytes } from "node:crypto";
import type { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from "etcd3";
import { type Clock, systemClock, type Timer } from "../clock.js";
import type { SessionSettings } from "../config.js";
import { type ChangeCause, decideRelease } from "../election/change.js";
import type { RuleLimits } from "../election/rules.js";
import { limitReached, shuttingDown } from "../errors.js";
import { type EtcdStore, encodeSession, sessionGone } from "../store/etcd.js";
import { RELEASE_RETRY_FIRST_MS, RELEASE_RETRY_MAX_MS } from "./registry.js";
import type { Sessions, SessionView } from "./sessions.js";

/** 144 random bits: 24 base64url characters, as the local registry makes them. */
const ID_BYTES = 18;

/** How many times opening a session counts again after another server opened one. */
const MAX_CONFLICTS = 100;

export interface LeaseSessionsOptions {
  readonly store: EtcdStore;
  readonly settings: SessionSettings;
  readonly limits: RuleLimits;
  readonly onError?: (error: unknown) => void;
  /** Called once in the whole cluster for each session that expired (electd_session_expiries_total). */
  readonly onExpired?: () => void;
  readonly clock?: Clock;
}

/** A release of one session in one election that has not committed yet. */
interface Release {
  readonly session: string;
  readonly election: string;
  readonly cause: ChangeCause | undefined;
  attempt: Promise<void> | undefined;
  retry: Timer | undefined;
  delayMs: number;
}

export class LeaseSessions implements Sessions {
  private readonly store: EtcdStore;
  private readonly settings: SessionSettings;
  private readonly limits: RuleLimits;
  private readonly onError: (error: unknown) => void;
  private readonly onExpired: () => void;
  private readonly clock: Clock;
  /** Releases in flight or waiting to be retried, by session and election. */
  private readonly releases = new Map<string, Release>();
  /** Sessions this server closed, so that closing them again succeeds. */
  private readonly ended = new Set<string>();
  /** Sessions this server is closing: their releases carry "session-closed". */
  private readonly closing = new Set<string>();
  /** When this server last renewed each session it renewed: what `peek` reports. */
  private readonly renewed = new Map<string, number>();
  private keepAlives: KeepAliveStream | undefined;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  private readonly retry = (release: Release) => {
    this.attempt(release).catch(() => {});
  };

  constructor(options: LeaseSessionsOptions) {
    this.store = options.store;
    this.settings = options.settings;
    this.limits = options.limits;
    this.onError = options.onError ?? (() => {});
    this.onExpired = options.onExpired ?? (() => {});
    this.clock = options.clock ?? systemClock;
  }

  get size(): number {
    return this.store.sessionCount;
  }

  get endingSize(): number {
    return new Set([...this.releases.values()].map((r) => r.session)).size;
  }

  /**
   * Starts hearing expired leases, and releases candidates whose session is already gone
   * (its lease expired while no server was watching), counting such expiries.
   */
  async start(): Promise<void> {
    this.unsubscribe = this.store.onSessionGone(({ session, election }) => {
      if (election === undefined) {
        if (!this.closing.has(session)) this.countExpiry(session);
        return;
      }
      // Heard in commit order, so the mirror shows the election as of this deletion: a
      // binding deleted by the change that withdrew its candidates leaves nothing to do.
      const owners = this.store.knownElection(election)?.owners;
      if (!owners || ![...owners.values()].includes(session)) return;
      const cause = this.closing.has(session) ? "session-closed" : "session-expired";
      this.release(session, election, cause).catch(() => {});
    });
    for (const election of this.store.elections()) {
      for (const session of new Set(election.owners.values())) {
        if (!this.store.knownSession(session)) {
          this.release(session, election.name, "session-expired").catch(() => {});
        }
      }
    }
    // Not found when etcd is unreachable: those are counted by whichever server next starts.
    const unclaimed = await this.store.unclaimedExpiries().catch(() => []);
    for (const session of unclaimed) {
      if (!this.store.knownSession(session)) this.countExpiry(session);
    }
  }

  async open(ttlMs: number): Promise<SessionView> {
    if (this.stopped) throw shuttingDown();
    const { store } = this;
    const id = randomBytes(ID_BYTES).toString("base64url");
    // etcd counts leases in whole seconds and may grant more than asked (its minimum).
    const granted = await store.call(() =>
      store.client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000) }),
    );
    const lease = granted.ID;
    const grantedMs = Number(granted.TTL) * 1000;
    try {
      for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
        const read = await store.call(() =>
          store.client.kv.txn({
            success: [
              { request_range: { key: store.keys.meta("sessions") } },
              { request_range: { ...store.keys.range("s/"), count_only: true } },
            ],
          }),
        );
        const [meta, count] = read.responses.map((r) => r.response_range);
        if (Number(count?.count ?? 0) >= this.settings.maxSessions) {
          throw limitReached(`${this.settings.maxSessions} sessions (MAX_SESSIONS)`);
        }
        const result = await store.call(() =>
          store.client.kv.txn({
            compare: [
              {
                key: store.keys.meta("sessions"),
                target: "Mod",
                result: "Equal",
                mod_revision: meta?.kvs[0]?.mod_revision ?? 0,
              },
            ],
            success: [
              {
                request_put: {
                  key: store.keys.session(id),
                  value: encodeSession({ ttlMs: grantedMs }),
                  lease,
                },
              },
              { request_put: { key: store.keys.meta("sessions"), value: Buffer.alloc(0) } },
              // On no lease: it outlives the session until CloseSession or the expiry's count.
              { request_put: { key: store.keys.expiry(id), value: Buffer.alloc(0) } },
            ],
          }),
        );
        if (result.succeeded) {
          await store.delivered(BigInt(result.header.revision));
          this.renewed.set(id, this.clock.now());
          return { id, ttlMs: grantedMs, remainingMs: grantedMs, state: "active" };
        }
      }
      throw limitReached("too many sessions opened at once; retry");
    } catch (error) {
      // The lease would expire by itself; revoking it now frees it at once.
      store.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => {});
      throw error;
    }
  }

  async keepAlive(id: string): Promise<number> {
    const session = await this.store.session(id);
    if (!session || session.closing) throw sessionGone(id);
    this.keepAlives ??= new KeepAliveStream(this.store, () => {
      this.keepAlives = undefined;
    });
    const ttl = await this.store.call(() =>
      (this.keepAlives as KeepAliveStream).renew(session.lease),
    );
    if (ttl <= 0) throw sessionGone(id);
    this.renewed.set(id, this.clock.now());
    return session.ttlMs;
  }

  async get(id: string): Promise<SessionView> {
    const { store } = this;
    const session = await store.session(id);
    if (!session) throw sessionGone(id);
    const lease = await store.call(() =>
      store.client.leaseClient.leaseTimeToLive({ ID: session.lease }),
    );
    const left = Number(lease.TTL);
    if (left < 0) {
      // The lease has expired; its keys go with it in a moment.
      return { id, ttlMs: session.ttlMs, remainingMs: 0, state: "expiring" };
    }
    return {
      id,
      ttlMs: session.ttlMs,
      remainingMs: left * 1000,
      state: session.closing ? "closing" : "active",
    };
  }

  peek(id: string): SessionView | undefined {
    const session = this.store.knownSession(id);
    if (!session) return undefined;
    // Only renewals through this server are seen here: through another one the session
    // may have more time left than this says, never less.
    const since = this.clock.now() - (this.renewed.get(id) ?? this.clock.now());
    const remainingMs = Math.max(0, Math.round(session.ttlMs - since));
    return { id, ttlMs: session.ttlMs, remainingMs, state: session.closing ? "closing" : "active" };
  }

  /**
   * Marks the session closing (nothing may bind to it or renew it any more), releases its
   * candidates everywhere with cause "session-closed", then revokes its lease.
   */
  async close(id: string): Promise<void> {
    if (this.stopped) throw shuttingDown();
    const { store } = this;
    const session = await store.session(id);
    if (!session) {
      if (this.ended.has(id)) return;
      throw sessionGone(id);
    }
    this.closing.add(id);
    if (!session.closing) {
      await store.call(() =>
        store.client.kv.txn({
          compare: [
            {
              key: store.keys.session(id),
              target: "Mod",
              result: "Equal",
              mod_revision: session.revision,
            },
          ],
          success: [
            {
              request_put: {
                key: store.keys.session(id),
                value: encodeSession({ ttlMs: session.ttlMs, closing: true }),
                lease: session.lease,
              },
            },
            // Closed, so its end is no expiry.
            { request_delete_range: { key: store.keys.expiry(id) } },
          ],
        }),
      );
    }
    const bindings = await store.call(() =>
      store.client.kv.range({ ...store.keys.range(`b/${id}/`), keys_only: true }),
    );
    await Promise.all(
      bindings.kvs.map((kv) => {
        const key = store.keys.parse(kv.key);
        return key?.kind === "binding"
          ? this.release(id, key.name, "session-closed")
          : Promise.resolve();
      }),
    );
    await store.call(() => store.client.leaseClient.leaseRevoke({ ID: session.lease }));
    this.remember(id);
    this.renewed.delete(id);
  }

  async bound(id: string): Promise<string> {
    const session = await this.store.session(id);
    if (!session || session.closing) throw sessionGone(id);
    return session.id;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.keepAlives?.end();
    for (const release of this.releases.values()) this.clock.cancel(release.retry);
    await Promise.allSettled([...this.releases.values()].map((r) => r.attempt));
  }

  /** Withdraws `session`'s candidates in `election`, retried until it commits. */
  private release(session: string, election: string, cause: ChangeCause): Promise<void> {
    const key = `${election}\u0000${session}`;
    let release = this.releases.get(key);
    if (!release) {
      release = {
        session,
        election,
        cause,
        attempt: undefined,
        retry: undefined,
        delayMs: RELEASE_RETRY_FIRST_MS,
      };
      this.releases.set(key, release);
    }
    return this.attempt(release);
  }

  private attempt(release: Release): Promise<void> {
    if (release.attempt) return release.attempt;
    this.clock.cancel(release.retry);
    release.retry = undefined;
    const key = `${release.election}\u0000${release.session}`;
    const attempt = this.store
      .update(release.election, (election) =>
        decideRelease(election, release.session, this.limits, release.cause),
      )
      .then(
        () => {
          release.attempt = undefined;
          this.releases.delete(key);
        },
        (error: unknown) => {
          release.attempt = undefined;
          if (!this.stopped) {
            this.onError(error);
            release.retry = this.clock.timer(release.delayMs, this.retry, release);
            release.delayMs = Math.min(release.delayMs * 2, RELEASE_RETRY_MAX_MS);
          }
          throw error;
        },
      );
    release.attempt = attempt;
    return attempt;
  }

  /** Counts the session's expiry here if this server is the one to claim it. */
  private countExpiry(session: string): void {
    this.store.claimExpiry(session).then(
      (claimed) => {
        if (claimed) this.onExpired();
      },
      // etcd unreachable: left unclaimed, counted by the next server to start.
      () => {},
    );
  }

  private remember(id: string): void {
    this.closing.delete(id);
    this.ended.add(id);
    if (this.ended.size > this.settings.maxSessions) {
      const oldest = this.ended.values().next().value;
      if (oldest !== undefined) this.ended.delete(oldest);
    }
  }
}

/**
 * One LeaseKeepAlive stream shared by every renewal through this server: etcd has no
 * unary keep-alive, and a stream per call would cost a stream per call. etcd answers each
 * request in order, so each answer goes to the oldest renewal of its lease.
 */
class KeepAliveStream {
  private stream: Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>>;
  private readonly pending = new Map<string, ((ttl: number) => void)[]>();
  private readonly failers = new Set<(error: Error) => void>();

  constructor(
    store: EtcdStore,
    private readonly onEnd: () => void,
  ) {
    this.stream = store.client.leaseClient.leaseKeepAlive();
    this.stream.then(
      (stream) => {
        stream.on("data", (response: ILeaseKeepAliveResponse) => {
          const waiting = this.pending.get(response.ID);
          const resolve = waiting?.shift();
          if (waiting?.length === 0) this.pending.delete(response.ID);
          resolve?.(Number(response.TTL));
        });
        const fail = (error: Error) => this.fail(error);
        stream.on("error", fail);
        stream.on("end", () => fail(new Error("etcd ended the keep-alive stream")));
      },
      (error: Error) => this.fail(error),
    );
  }

  async renew(lease: string): Promise<number> {
    const stream = await this.stream;
    return new Promise<number>((resolve, reject) => {
      const waiting = this.pending.get(lease) ?? [];
      const settle = (ttl: number) => {
        this.failers.delete(reject);
        resolve(ttl);
      };
      waiting.push(settle);
      this.pending.set(lease, waiting);
      this.failers.add(reject);
      stream.write({ ID: lease });
    });
  }

  end(): void {
    this.stream.then((stream) => stream.end()).catch(() => {});
    this.fail(new Error("the server is shutting down"));
  }

  private fail(error: Error): void {
    this.onEnd();
    this.pending.clear();
    for (const reject of this.failers) reject(error);
    this.failers.clear();
  }
}
