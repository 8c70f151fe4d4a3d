// Listing shared by stores that hold their elections in memory: filter, sort by name, page.
import type { Election, ListQuery } from "./store.js";

export function selectElections(all: Iterable<Election>, query: ListQuery): Election[] {
  const out: Election[] = [];
  for (const e of all) {
    if (query.prefix !== undefined && !e.name.startsWith(query.prefix)) continue;
    if (query.after !== undefined && e.name <= query.after) continue;
    if (query.tag !== undefined && !e.tags.includes(query.tag)) continue;
    out.push(e);
  }
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out.slice(0, query.limit);
}
