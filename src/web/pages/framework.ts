/**
 * Scheduler framework: the config tree as a graph, directories left to right by depth
 * (probes, filters, schedulers and their policies and ports), links as edges to what they
 * point at, each edge labelled with the current value at its target. Clicking a directory
 * shows its attributes with their `cat` output. Below, the stacking order: which scheduler
 * placement asks first (/schedulers/precedence). Redrawn when the tree changes.
 */
import type { TreeListing } from '../../wire/tree.js';
import { api } from '../api.js';
import { h, svg } from '../dom.js';
import type { Page } from '../page.js';

const COL = 150;
const ROW = 32;
const BOX_W = 132;
const BOX_H = 24;
const REFRESH_MS = 2000;
const VALUE_CHARS = 28;

interface Placed {
  path: string;
  entry: TreeListing;
  x: number;
  y: number;
}

export const frameworkPage: Page = (root) => {
  const graphHost = h('div', { class: 'graph', id: 'tree-graph' });
  const details = h('div', { class: 'details', id: 'tree-details' }, 'Click a directory to see its attributes.');
  const message = h('div', { class: 'message' });
  const stacking = h('div', { id: 'stacking-order' });
  root.append(
    h('h2', {}, 'Scheduler framework'),
    message,
    h('div', { class: 'split' }, graphHost, details),
    h('h3', {}, 'Stacking order'),
    h('p', { class: 'hint' }, 'For a new task, placement asks the schedulers in this order; the first answer wins.'),
    stacking,
  );
  let lastShape = '';
  let selected: string | null = null;

  async function refresh(): Promise<void> {
    try {
      const tree = await api.get<TreeListing>('/v1/tree/tree?path=/');
      const links: Array<{ from: string; to: string; path: string }> = [];
      const placed = new Map<string, Placed>();
      let row = 0;
      const walk = (entry: TreeListing, path: string, depth: number): void => {
        if (entry.kind === 'link') links.push({ from: parentOf(path), to: entry.target ?? '', path });
        if (entry.kind !== 'dir') return;
        placed.set(path, { path, entry, x: depth * COL + 10, y: row * ROW + 10 });
        row++;
        for (const child of entry.children ?? []) walk(child, `${path === '/' ? '' : path}/${child.name}`, depth + 1);
      };
      walk(tree, '/', 0);
      // A link points at a probe's source (a directory with a value file) or at a file.
      const valueOf = (target: string): Promise<string> => {
        const dir = placed.get(target);
        if (dir) return dir.entry.children?.some((c) => c.name === 'value') ? readValue(`${target}/value`) : Promise.resolve('');
        return placed
          .get(parentOf(target))
          ?.entry.children?.some((c) => c.name === target.slice(target.lastIndexOf('/') + 1) && c.kind === 'file')
          ? readValue(target)
          : Promise.resolve('');
      };
      const [values, order] = await Promise.all([Promise.all(links.map((l) => valueOf(l.to))), readPrecedence()]);
      drawStacking(order);
      const shape = JSON.stringify([[...placed.keys()], links, values]);
      if (shape !== lastShape) {
        lastShape = shape;
        draw(placed, links, values);
      }
      message.textContent = '';
    } catch (err) {
      message.textContent = (err as Error).message;
    }
  }

  function draw(placed: Map<string, Placed>, links: Array<{ from: string; to: string; path: string }>, values: string[]): void {
    const width = Math.max(...[...placed.values()].map((p) => p.x)) + BOX_W + 20;
    const height = placed.size * ROW + 20;
    const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'config tree' });
    // Tree edges first, under the boxes.
    for (const p of placed.values()) {
      const parent = placed.get(parentOf(p.path));
      if (parent && p.path !== '/')
        root.append(svg('path', { class: 'tree-edge', d: `M${parent.x + 12},${parent.y + BOX_H} V${p.y + BOX_H / 2} H${p.x}` }));
    }
    links.forEach((link, i) => {
      const from = placed.get(link.from);
      const to = placed.get(link.to) ?? placed.get(parentOf(link.to));
      if (!from || !to) return;
      const x1 = from.x + BOX_W;
      const y1 = from.y + BOX_H / 2;
      const x2 = to.x + BOX_W;
      const y2 = to.y + BOX_H / 2;
      const bend = Math.max(x1, x2) + 60 + (i % 4) * 14;
      root.append(
        svg('path', { class: 'link-edge', 'data-link': link.path, d: `M${x1},${y1} C${bend},${y1} ${bend},${y2} ${x2},${y2}` }),
        svg('text', { class: 'edge-value', x: bend - 40, y: (y1 + y2) / 2 }, values[i] ?? ''),
      );
    });
    for (const p of placed.values()) {
      const box = svg(
        'g',
        { class: `node${p.path === selected ? ' selected' : ''}`, 'data-path': p.path, transform: `translate(${p.x},${p.y})`, tabindex: 0 },
        svg('rect', { width: BOX_W, height: BOX_H, rx: 4 }),
        svg('text', { x: 8, y: 16 }, p.path === '/' ? '/' : p.entry.name),
      );
      box.addEventListener('click', () => void show(p.path, p.entry));
      root.append(box);
    }
    graphHost.replaceChildren(root);
  }

  function drawStacking(order: string[][]): void {
    if (order.length === 0) {
      stacking.replaceChildren(h('p', {}, 'No scheduler holds a task yet (handle_all or a process-set member).'));
      return;
    }
    const head = h('tr', {}, ...['#', 'scheduler', 'holds', 'attach'].map((t) => h('th', {}, t)));
    const rows = order.map((cells) => h('tr', {}, ...cells.map((c) => h('td', {}, c))));
    stacking.replaceChildren(h('table', { class: 'attrs' }, head, ...rows));
  }

  async function show(path: string, entry: TreeListing): Promise<void> {
    selected = path;
    lastShape = '';
    const files = (entry.children ?? []).filter((c) => c.kind !== 'dir');
    const lines = await Promise.all(
      files.map(async (f) => {
        const child = `${path === '/' ? '' : path}/${f.name}`;
        const value = f.kind === 'link' ? `-> ${f.target ?? ''}` : await readValue(child, 2000);
        return h('tr', {}, h('th', {}, f.name), h('td', {}, h('pre', {}, value)));
      }),
    );
    details.replaceChildren(h('h3', {}, path), lines.length ? h('table', { class: 'attrs' }, ...lines) : h('p', {}, 'No attributes.'));
    void refresh();
  }

  const timer = setInterval(() => void refresh(), REFRESH_MS);
  void refresh();
  return () => clearInterval(timer);
};

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** /schedulers/precedence as rows: rank, scheduler, what it holds, attach number. */
async function readPrecedence(): Promise<string[][]> {
  const { value } = await api.get<{ value: string }>(`/v1/tree/cat?path=${encodeURIComponent('/schedulers/precedence')}`);
  return value
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.trim().split(/\s+/));
}

async function readValue(path: string, max = VALUE_CHARS): Promise<string> {
  try {
    const { value } = await api.get<{ value: string }>(`/v1/tree/cat?path=${encodeURIComponent(path)}`);
    const flat = value.trim().replace(/\s+/g, ' ');
    return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
  } catch {
    return '';
  }
}
