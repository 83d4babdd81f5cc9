/**
 * Cluster (when this node has joined one): the nodes with their status, capacity, load (what
 * their slices use, as each publishes it every 5 s), reservations, cordon, slivers and tasks;
 * the tasks with their state and node; the most recent placements and moves. A signed-in
 * operator can cordon, uncordon and drain a node and stop a task.
 */
import type { NodeEntry, NodeList } from '../../wire/nodes.js';
import type { TaskList, TaskView } from '../../wire/tasks.js';
import type { PlacementEntry } from '../../wire/slices.js';
import { api } from '../api.js';
import { bar, bytes, h, millicores } from '../dom.js';
import type { Page } from '../page.js';

const REFRESH_MS = 3000;

export const clusterPage: Page = (root) => {
  const message = h('div', { class: 'message', id: 'cluster-message', role: 'status' });
  const nodes = h('table', { class: 'grid', id: 'nodes' });
  const tasks = h('table', { class: 'grid', id: 'tasks' });
  const placements = h('ul', { class: 'events', id: 'placements' });
  const mode = h('p', {});
  root.append(
    h('h2', {}, 'Cluster'),
    mode,
    message,
    h('h3', {}, 'Nodes'),
    nodes,
    h('h3', {}, 'Tasks'),
    tasks,
    h('h3', {}, 'Recent placements and moves'),
    placements,
  );

  const act = (what: string, run: () => Promise<unknown>): void => {
    if (!confirm(`${what}?`)) return;
    run()
      .then(() => {
        message.textContent = `done: ${what}`;
        void load();
      })
      .catch((err: Error) => (message.textContent = `refused: ${err.message}`));
  };

  async function load(): Promise<void> {
    try {
      const [list, taskList] = await Promise.all([api.get<NodeList>('/v1/nodes'), api.get<TaskList>('/v1/tasks')]);
      // Slivers: where the cluster's catalogue places each slice (a node alone has none).
      const placed = list.mode === 'etcd' ? await api.get<PlacementEntry[]>('/v1/slices?cluster=true') : [];
      mode.textContent =
        list.mode === 'etcd'
          ? `Joined to a cluster on etcd (${list.endpoints.join(', ')}).`
          : 'This node runs alone on its embedded store (not in a cluster).';
      const slivers = (node: string): number | string => (list.mode === 'etcd' ? placed.filter((p) => p.nodes.includes(node)).length : '–');
      const tasksOn = (node: string): number => taskList.tasks.filter((t) => t.node === node && t.state === 'running').length;
      nodes.replaceChildren(
        h(
          'tr',
          {},
          ...['Node', 'Status', 'CPU', 'Slices use', 'Reserved', 'Memory', 'Slivers', 'Running tasks', 'Labels', ''].map((t) =>
            h('th', {}, t),
          ),
        ),
        ...list.nodes.map((n) => nodeRow(n, slivers(n.name), tasksOn(n.name), act)),
      );
      const sorted = [...taskList.tasks].sort((a, b) => b.placedAt.localeCompare(a.placedAt));
      tasks.replaceChildren(
        h('tr', {}, ...['Task', 'Slice', 'State', 'Node', 'Placed by', 'Restarts', ''].map((t) => h('th', {}, t))),
        ...sorted.slice(0, 200).map((t) => taskRow(t, act)),
      );
      placements.replaceChildren(
        ...sorted
          .slice(0, 20)
          .map((t) =>
            h(
              'li',
              {},
              `${new Date(t.placedAt).toLocaleTimeString()} ${t.name ?? t.id} → ${t.node} (generation ${t.generation}, ${t.placedBy})`,
            ),
          ),
      );
    } catch (err) {
      message.textContent = (err as Error).message;
    }
  }

  const timer = setInterval(() => void load(), REFRESH_MS);
  void load();
  return () => clearInterval(timer);
};

function nodeRow(
  n: NodeEntry,
  slivers: number | string,
  running: number,
  act: (what: string, run: () => Promise<unknown>) => void,
): HTMLElement {
  const path = `/v1/nodes/${encodeURIComponent(n.name)}`;
  return h(
    'tr',
    { 'data-node': n.name },
    h('td', {}, n.name, n.self ? ' (this one)' : ''),
    h('td', { class: n.status }, n.status, n.cordoned ? ', cordoned' : ''),
    h('td', {}, n.live ? millicores(n.live.capacity.cpuMillicores) : '–'),
    n.load && n.live
      ? h(
          'td',
          { class: 'node-load' },
          bar(n.load.slicesCpuMillicores, n.live.capacity.cpuMillicores, `of ${millicores(n.live.capacity.cpuMillicores)}`),
          ` ${millicores(n.load.slicesCpuMillicores)}`,
        )
      : h('td', { class: 'node-load' }, '–'),
    h('td', {}, n.load ? millicores(n.load.reservedMillicores) : '–'),
    h('td', {}, n.live ? bytes(n.live.capacity.memoryBytes) : '–'),
    h('td', {}, slivers),
    h('td', {}, running),
    h(
      'td',
      {},
      Object.entries(n.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(' '),
    ),
    h(
      'td',
      {},
      h(
        'button',
        { onclick: () => act(`${n.cordoned ? 'Uncordon' : 'Cordon'} ${n.name}`, () => api.patch(path, { cordoned: !n.cordoned })) },
        n.cordoned ? 'Uncordon' : 'Cordon',
      ),
      h('button', { onclick: () => act(`Drain ${n.name}`, () => api.post(`${path}/drain`)) }, 'Drain'),
    ),
  );
}

function taskRow(t: TaskView, act: (what: string, run: () => Promise<unknown>) => void): HTMLElement {
  return h(
    'tr',
    { 'data-task': t.id },
    h('td', { title: t.command.join(' ') }, t.name ?? t.id),
    h('td', {}, t.slice),
    h('td', { title: t.reason ?? '' }, t.state, t.desired === 'stop' && t.state === 'running' ? ' (stopping)' : ''),
    h('td', {}, t.node),
    h('td', {}, t.placedBy),
    h('td', {}, t.restarts),
    h(
      'td',
      {},
      t.state === 'running'
        ? h(
            'button',
            { class: 'danger', onclick: () => act(`Stop task ${t.name ?? t.id}`, () => api.post(`/v1/tasks/${t.id}/stop`)) },
            'Stop',
          )
        : '',
    ),
  );
}
