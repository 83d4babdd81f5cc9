/**
 * Slices and domains: the hierarchy as a tree (domains fold and unfold) with each one's
 * allocation (reservation, limit, shares, memory, I/O weight, network) and live bars of its
 * CPU and memory; and, for a signed-in operator, create, change and delete a slice (each
 * asks first and shows the API's refusal as it is).
 */
import type { FrameRow } from '../../wire/dashboard.js';
import type { DomainView, SliceView } from '../../wire/slices.js';
import { api } from '../api.js';
import { bar, bytes, h, millicores } from '../dom.js';
import type { Page } from '../page.js';
import { VirtualList } from '../virtual-list.js';

interface TreeRow {
  kind: 'slice' | 'domain';
  name: string;
  depth: number;
  view: SliceView | DomainView;
  children: number;
}

const REFRESH_MS = 3000;

export const slicesPage: Page = (root, live) => {
  const folded = new Set<string>();
  const message = h('div', { class: 'message', id: 'slices-message', role: 'status' });
  const form = createForm(message, () => void load());
  const list = new VirtualList<TreeRow>(30, (row) => treeRow(row), '560px');
  const header = h(
    'div',
    { class: 'row head' },
    ...['Name', 'CPU reservation · limit · shares', 'CPU used', 'Memory', 'I/O and network', 'Processes', ''].map((t) => h('span', {}, t)),
  );
  root.append(h('h2', {}, 'Slices and domains'), form, message, h('div', { class: 'table tree', id: 'slice-tree' }, header, list.element));
  let slices: SliceView[] = [];
  let domains: DomainView[] = [];
  const byRow = (rows: readonly FrameRow[]): Map<string, FrameRow> => new Map(rows.map((r) => [`${r.kind}/${r.name}`, r]));
  let usage = byRow(live.latest?.rows ?? []);

  async function load(): Promise<void> {
    try {
      [slices, domains] = await Promise.all([api.get<SliceView[]>('/v1/slices'), api.get<DomainView[]>('/v1/domains')]);
      draw();
    } catch (err) {
      message.textContent = (err as Error).message;
    }
  }

  function rows(): TreeRow[] {
    const out: TreeRow[] = [];
    const walk = (parent: string | null, depth: number): void => {
      for (const d of domains.filter((x) => x.parent === parent)) {
        out.push({ kind: 'domain', name: d.name, depth, view: d, children: d.members.slices.length + d.members.domains.length });
        if (!folded.has(d.name)) walk(d.name, depth + 1);
      }
      for (const s of slices.filter((x) => x.domain === parent)) out.push({ kind: 'slice', name: s.name, depth, view: s, children: 0 });
    };
    walk(null, 0);
    return out;
  }

  function draw(): void {
    list.set(rows());
  }

  function treeRow(row: TreeRow): HTMLElement {
    const v = row.view;
    const now = usage.get(`${row.kind}/${row.name}`);
    const toggle =
      row.kind === 'domain'
        ? h(
            'button',
            {
              class: 'fold',
              'aria-label': folded.has(row.name) ? 'unfold' : 'fold',
              onclick: () => (folded.has(row.name) ? folded.delete(row.name) : folded.add(row.name), draw()),
            },
            folded.has(row.name) ? '▸' : '▾',
          )
        : h('span', { class: 'fold' });
    const limit = v.cpu.effectiveLimit;
    const net = row.kind === 'slice' ? (v as SliceView).net : null;
    const actions =
      row.kind === 'slice'
        ? h(
            'span',
            { class: 'actions' },
            h('button', { onclick: () => editSlice(v as SliceView, message, () => void load()) }, 'Change'),
            h('button', { class: 'danger', onclick: () => void deleteSlice(row.name, message, () => void load()) }, 'Delete'),
          )
        : h('span', { class: 'actions' });
    const el = h(
      'div',
      { class: `row ${row.kind}`, 'data-kind': row.kind, 'data-name': row.name },
      h(
        'span',
        { class: 'name' },
        h('span', { class: 'indent' }),
        toggle,
        row.kind === 'domain' ? `${row.name} (domain, ${row.children})` : row.name,
      ),
      h('span', {}, `res ${millicores(v.cpu.reservation)} · lim ${limit === null ? 'none' : millicores(limit)} · shares ${v.cpu.shares}`),
      h(
        'span',
        {},
        now
          ? bar(
              now.usage,
              Math.max(now.entitlement, now.usage, 1),
              `${millicores(now.usage)} used of ${millicores(now.entitlement)} entitled`,
              'cpu',
            )
          : '',
        now ? ` ${millicores(now.usage)}` : '',
      ),
      h(
        'span',
        {},
        v.memory.limit === null
          ? `mem ${bytes(now?.memoryBytes)}`
          : bar(now?.memoryBytes ?? 0, v.memory.limit, `${bytes(now?.memoryBytes)} of ${bytes(v.memory.limit)}`, 'mem'),
        v.memory.limit === null ? '' : ` of ${bytes(v.memory.limit)}`,
      ),
      h(
        'span',
        {},
        `io weight ${v.io.weight ?? 'default'}${net ? ` · net ${net.addresses?.v4 ?? 'own'}` : row.kind === 'slice' ? ' · host net' : ''}`,
      ),
      h('span', {}, now ? `${now.procs} procs` : ''),
      actions,
    );
    (el.querySelector('.indent') as HTMLElement).style.width = `${row.depth * 18}px`;
    return el;
  }

  const unsubscribe = live.subscribe((frame) => {
    usage = byRow(frame.rows);
    draw();
  });
  const timer = setInterval(() => void load(), REFRESH_MS);
  void load();
  return () => {
    unsubscribe();
    clearInterval(timer);
  };
};

function createForm(message: HTMLElement, done: () => void): HTMLElement {
  const name = h('input', { name: 'name', placeholder: 'name', required: true, size: 12 });
  const reservation = h('input', { name: 'reservation', placeholder: 'reservation, e.g. 250m', size: 14 });
  const limit = h('input', { name: 'limit', placeholder: 'CPU limit, e.g. 1', size: 12 });
  const memory = h('input', { name: 'memory', placeholder: 'memory limit, e.g. 512M', size: 14 });
  const form = h(
    'form',
    { class: 'inline', id: 'create-slice' },
    h('strong', {}, 'New slice '),
    name,
    reservation,
    limit,
    memory,
    h('button', { type: 'submit' }, 'Create'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body: Record<string, unknown> = { name: name.value.trim() };
    const cpu: Record<string, string> = {};
    if (reservation.value.trim()) cpu.reservation = reservation.value.trim();
    if (limit.value.trim()) cpu.limit = limit.value.trim();
    if (Object.keys(cpu).length) body.cpu = cpu;
    if (memory.value.trim()) body.memory = { limit: memory.value.trim() };
    if (!confirm(`Create slice ${body.name as string}?`)) return;
    api
      .post('/v1/slices', body)
      .then(() => {
        message.textContent = `created ${body.name as string}`;
        form.reset();
        done();
      })
      .catch((err: Error) => (message.textContent = `refused: ${err.message}`));
  });
  return form;
}

function editSlice(slice: SliceView, message: HTMLElement, done: () => void): void {
  const answer = prompt(
    `Change ${slice.name}: CPU reservation, limit (or none), shares, memory limit (or none), separated by spaces`,
    `${slice.cpu.reservation}m ${slice.cpu.limit === null ? 'none' : `${slice.cpu.limit}m`} ${slice.cpu.shares} ${slice.memory.limit ?? 'none'}`,
  );
  if (answer === null) return;
  const [reservation, limit, shares, memory] = answer.trim().split(/\s+/);
  const body = { cpu: { reservation, limit, shares }, memory: { limit: memory } };
  api
    .patch(`/v1/slices/${encodeURIComponent(slice.name)}`, body)
    .then(() => {
      message.textContent = `changed ${slice.name}`;
      done();
    })
    .catch((err: Error) => (message.textContent = `refused: ${err.message}`));
}

async function deleteSlice(name: string, message: HTMLElement, done: () => void): Promise<void> {
  if (!confirm(`Delete slice ${name}? Its processes are ended.`)) return;
  try {
    await api.delete(`/v1/slices/${encodeURIComponent(name)}`);
    message.textContent = `deleted ${name}`;
    done();
  } catch (err) {
    message.textContent = `refused: ${(err as Error).message}`;
  }
}
