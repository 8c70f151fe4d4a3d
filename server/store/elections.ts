// The committed elections of a store that keeps them in memory (memory and durable), in
// name order, so that a listing costs what its page costs, not what the directory costs.
// Names are kept in B+ trees (sorted-btree): a page is a range read from the cursor, a tag
// has its own tree of names, and `snapshot()` is an O(1) copy-on-write clone that a
// watcher can page through at its own pace while changes go on.
import sortedBtree from "sorted-btree";
import type { Election, ListFilter, ListQuery } from "./store.js";

const { default: BTree } = sortedBtree;
type Tree<V> = InstanceType<typeof BTree<string, V>>;

/** Names compare by UTF-16 code units, as `<` does: the order ListElections promises. */
function newTree<V>(): Tree<V> {
  return new BTree<string, V>(undefined, (a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A read-only, consistent view of elections in name order. */
export interface ElectionView {
  /** Elections matching `query` in name order, read lazily. */
  scan(query: ListFilter & { readonly after?: string }): IterableIterator<Election>;
}

export class ElectionIndex implements ElectionView {
  private byName: Tree<Election> = newTree();
  /** tag -> names of the elections carrying it. */
  private readonly byTag = new Map<string, Tree<true>>();

  get size(): number {
    return this.byName.size;
  }

  get(name: string): Election | undefined {
    return this.byName.get(name);
  }

  values(): IterableIterator<Election> {
    return this.byName.values();
  }

  set(election: Election): void {
    const before = this.byName.get(election.name);
    this.byName.set(election.name, election);
    if (before && before.tags === election.tags) return;
    if (before) this.untag(before);
    for (const tag of election.tags) {
      let names = this.byTag.get(tag);
      if (!names) {
        names = newTree();
        this.byTag.set(tag, names);
      }
      names.set(election.name, true);
    }
  }

  delete(name: string): void {
    const before = this.byName.get(name);
    if (!before) return;
    this.byName.delete(name);
    this.untag(before);
  }

  list(query: ListQuery): Election[] {
    const out: Election[] = [];
    if (query.limit <= 0) return out;
    for (const election of this.scan(query)) {
      out.push(election);
      if (out.length >= query.limit) break;
    }
    return out;
  }

  *scan(query: ListFilter & { readonly after?: string }): IterableIterator<Election> {
    yield* scanTree(
      this.byName,
      query,
      query.tag === undefined ? undefined : this.byTag.get(query.tag),
    );
  }

  /**
   * The elections matching `filter` as they are now, whatever changes later. O(1): the
   * trees are shared until either side changes, and then only the nodes on the changed
   * path are copied.
   */
  snapshot(filter: ListFilter): ElectionView {
    const byName = this.byName.clone();
    const tagged = filter.tag === undefined ? undefined : this.byTag.get(filter.tag)?.clone();
    const noTagged = filter.tag !== undefined && tagged === undefined;
    return {
      *scan(query) {
        if (noTagged) return;
        yield* scanTree(byName, { ...filter, ...query }, tagged);
      },
    };
  }

  private untag(election: Election): void {
    for (const tag of election.tags) {
      const names = this.byTag.get(tag);
      names?.delete(election.name);
      if (names?.size === 0) this.byTag.delete(tag);
    }
  }
}

/** Walks names from the cursor (or the prefix) while they still start with the prefix. */
function* scanTree(
  byName: Tree<Election>,
  query: ListFilter & { readonly after?: string },
  tagged: Tree<true> | undefined,
): IterableIterator<Election> {
  if (query.tag !== undefined && tagged === undefined) return;
  const prefix = query.prefix ?? "";
  const { after } = query;
  // Start at the later of the prefix and the cursor; skip the cursor itself.
  const from = after !== undefined && after >= prefix ? after : prefix;
  const names = tagged ?? byName;
  for (const [name] of names.entries(from)) {
    if (after !== undefined && name <= after) continue;
    if (!name.startsWith(prefix)) return;
    const election = byName.get(name);
    if (election) yield election;
  }
}
