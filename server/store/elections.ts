// The committed elections of a store that keeps them in memory (memory and durable), in
// name order, so that a listing costs what its page costs, not what the directory costs.
// Names are kept in B+ trees (sorted-btree): a page is a range read from the cursor, a tag
// has its own tree of names (or just the name, while one election carries it: a tree
// costs some 300 bytes, and tags on one election each are the common case and the worst
// case of MAX_TAGS), and `snapshot()` is an O(1) copy-on-write clone that a watcher can
// page through at its own pace while changes go on.
import sortedBtree from "sorted-btree";
import type { Election } from "../election/change.js";
import type { ListFilter, ListQuery } from "./store.js";

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

/**
 * The names of the elections carrying one tag: one name, or a tree of two or more. Tree
 * values are left undefined, which sorted-btree stores without a values array.
 */
type Tagged = string | Tree<undefined>;

export class ElectionIndex implements ElectionView {
  private byName: Tree<Election> = newTree();
  /** tag -> names of the elections carrying it. */
  private readonly byTag = new Map<string, Tagged>();

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
      const names = this.byTag.get(tag);
      if (names === undefined) this.byTag.set(tag, election.name);
      else if (typeof names !== "string") names.set(election.name, undefined);
      else if (names !== election.name) {
        const tree = newTree<undefined>();
        tree.set(names, undefined);
        tree.set(election.name, undefined);
        this.byTag.set(tag, tree);
      }
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
    const names = filter.tag === undefined ? undefined : this.byTag.get(filter.tag);
    const tagged = typeof names === "string" ? names : names?.clone();
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
      if (names === undefined) continue;
      if (typeof names === "string") {
        if (names === election.name) this.byTag.delete(tag);
        continue;
      }
      names.delete(election.name);
      const last = names.size === 1 ? names.minKey() : undefined;
      if (last !== undefined) this.byTag.set(tag, last);
    }
  }
}

/** Walks names from the cursor (or the prefix) while they still start with the prefix. */
function* scanTree(
  byName: Tree<Election>,
  query: ListFilter & { readonly after?: string },
  tagged: Tagged | undefined,
): IterableIterator<Election> {
  if (query.tag !== undefined && tagged === undefined) return;
  const prefix = query.prefix ?? "";
  const { after } = query;
  // Start at the later of the prefix and the cursor; skip the cursor itself.
  const from = after !== undefined && after >= prefix ? after : prefix;
  const names =
    typeof tagged === "string" ? (tagged >= from ? [tagged] : []) : (tagged ?? byName).keys(from);
  for (const name of names) {
    if (after !== undefined && name <= after) continue;
    if (!name.startsWith(prefix)) return;
    const election = byName.get(name);
    if (election) yield election;
  }
}
