// A tiny element builder: the dashboard is plain DOM code. Text always goes in as text
// (never HTML), because election, candidate and tag names are arbitrary user input.
type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | boolean | undefined>;

function fill<E extends Element>(element: E, attributes: Attributes, children: Child[]): E {
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child);
  }
  return element;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  return fill(document.createElement(tag), attributes, children);
}

const SVG = "http://www.w3.org/2000/svg";

export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number> = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const stringified: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) stringified[key] = String(value);
  return fill(document.createElementNS(SVG, tag), stringified, children);
}

/** Sets text only when it differs: avoids needless layout work on live updates. */
export function setText(node: Node, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}

export function electionPath(name: string): string {
  return `/elections/${encodeURIComponent(name)}`;
}

/** The list of every election carrying `tag`, filtered by the server. */
export function tagPath(tag: string): string {
  return `/?${new URLSearchParams({ tag })}`;
}
