/** A few helpers to build the page from plain DOM (no UI framework: the page stays small). */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** An element with attributes ("on..." are listeners, false/null leave the attribute out) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  append(el, children);
  return el;
}

export function millicores(mc: number | null | undefined): string {
  if (mc === null || mc === undefined || Number.isNaN(mc)) return '–';
  return mc >= 1000 ? `${(mc / 1000).toFixed(2)} CPU` : `${Math.round(mc)}m`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function rate(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : `${bytes(n)}/s`;
}

/** A bar of `value` out of `max` (0..1 filled), with a title. */
export function bar(value: number, max: number, title: string, cls = ''): HTMLElement {
  const share = max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
  const fill = h('span', { class: 'fill' });
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  return h('span', { class: `bar ${cls}`, title }, fill);
}
