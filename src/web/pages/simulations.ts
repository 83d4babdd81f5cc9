/**
 * Simulations: the runs saved with `slicectl simulate --save NAME`, newest first; a chosen
 * one shows its side-by-side table and its charts (the SVGs `slicectl simulate --out` writes,
 * drawn by the daemon from the saved document). A signed-in operator can delete one.
 */
import { resultColumns, type SavedSimulation, type SimulationEntry } from '../../wire/simulations.js';
import { api } from '../api.js';
import { h } from '../dom.js';
import type { Page } from '../page.js';

const REFRESH_MS = 10_000;
const enc = encodeURIComponent;

export const simulationsPage: Page = (root) => {
  const message = h('div', { class: 'message', id: 'simulations-message', role: 'status' });
  const list = h('table', { class: 'grid', id: 'simulations' });
  const details = h('section', { id: 'simulation' });
  root.append(
    h('h2', {}, 'Simulations'),
    h('p', {}, 'Runs saved with ', h('code', {}, 'slicectl simulate ... --save NAME'), ' on this node.'),
    message,
    list,
    details,
  );
  let chosen: string | null = null;

  async function show(name: string): Promise<void> {
    chosen = name;
    try {
      const saved = await api.get<SavedSimulation>(`/v1/simulations/${enc(name)}`);
      const { headers, rows } = resultColumns(saved.document.results);
      details.replaceChildren(
        h('h3', {}, saved.name),
        h(
          'p',
          {},
          `${saved.workload} on ${saved.nodes ?? '?'} nodes, seed ${saved.seed}, loads seen every ${saved.document.loadPeriod}` +
            `${saved.document.loadPeriod === 'instant' ? '' : ' ms'}; saved ${new Date(saved.savedAt).toLocaleString()}.`,
        ),
        h(
          'table',
          { class: 'grid', id: 'simulation-results' },
          h('tr', {}, ...headers.map((t) => h('th', {}, t))),
          ...rows.map((cells) => h('tr', {}, ...cells.map((c, i) => h('td', i > 0 ? { class: 'num' } : {}, c)))),
        ),
        // As images: the SVGs are drawn from numbers by the daemon, and an <img> runs no script in any case.
        ...saved.charts.map((chart) =>
          h(
            'figure',
            {},
            h('img', { src: `/api/v1/simulations/${enc(name)}/${enc(chart)}`, alt: `${chart} of ${name}`, 'data-chart': chart }),
          ),
        ),
      );
      message.textContent = '';
    } catch (err) {
      details.replaceChildren();
      message.textContent = (err as Error).message;
    }
  }

  const remove = (name: string): void => {
    if (!confirm(`Delete simulation ${name}?`)) return;
    api
      .delete(`/v1/simulations/${enc(name)}`)
      .then(() => {
        message.textContent = `done: simulation ${name} deleted`;
        if (chosen === name) {
          chosen = null;
          details.replaceChildren();
        }
        void load();
      })
      .catch((err: Error) => (message.textContent = `refused: ${err.message}`));
  };

  async function load(): Promise<void> {
    try {
      const { simulations } = await api.get<{ simulations: SimulationEntry[] }>('/v1/simulations');
      const newest = [...simulations].sort((a, b) => b.savedAt.localeCompare(a.savedAt));
      list.replaceChildren(
        h('tr', {}, ...['Name', 'Saved', 'Workload', 'Nodes', 'Policies', ''].map((t) => h('th', {}, t))),
        ...newest.map((s) =>
          h(
            'tr',
            { 'data-simulation': s.name, class: s.name === chosen ? 'chosen' : null },
            h(
              'td',
              {},
              h('a', { href: '#/simulations', onclick: (e: Event) => (e.preventDefault(), void show(s.name).then(load)) }, s.name),
            ),
            h('td', {}, new Date(s.savedAt).toLocaleString()),
            h('td', {}, s.workload),
            h('td', { class: 'num' }, s.nodes ?? '–'),
            h('td', {}, s.policies.join(', ')),
            h('td', {}, h('button', { class: 'danger', onclick: () => remove(s.name) }, 'Delete')),
          ),
        ),
      );
      if (simulations.length === 0) message.textContent = 'No saved simulations yet.';
    } catch (err) {
      message.textContent = (err as Error).message;
    }
  }

  const timer = setInterval(() => void load(), REFRESH_MS);
  void load();
  return () => clearInterval(timer);
};
