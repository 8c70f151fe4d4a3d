// Whether this server is serving: what the gRPC health service reports. It is not once
// shutdown has begun (for good), nor while its store cannot commit: from a commit that
// failed until the next one that succeeds (writes by clients, or the session registry's
// retries of a withdrawal, which go on until one commits).
export type ServingListener = (serving: boolean) => void;

export class ServingState {
  private stopping = false;
  private storeFailing = false;
  private readonly listeners = new Set<ServingListener>();

  get serving(): boolean {
    return !this.stopping && !this.storeFailing;
  }

  /** True once shutdown has begun. */
  get stopped(): boolean {
    return this.stopping;
  }

  /** Records the outcome of a store commit. */
  storeCommitted(ok: boolean): void {
    if (this.storeFailing === !ok) return;
    this.change(() => {
      this.storeFailing = !ok;
    });
  }

  /** Shutdown has begun: not serving from now on. */
  stop(): void {
    if (this.stopping) return;
    this.change(() => {
      this.stopping = true;
    });
  }

  /** Hears every change of `serving`, and shutdown; returns the unsubscribe. */
  subscribe(listener: ServingListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private change(apply: () => void): void {
    const before = this.serving;
    const wasStopping = this.stopping;
    apply();
    if (before === this.serving && wasStopping === this.stopping) return;
    for (const listener of [...this.listeners]) listener(this.serving);
  }
}
