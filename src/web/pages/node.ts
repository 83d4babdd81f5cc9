/**
 * Node: capacity and what is promised, a stacked chart of the CPU the busiest slices use
 * (the others summed), one slice's entitlement against its measured use (picked from all),
 * and every slice in a sortable table (drawn as it scrolls), live at each control period;
 * throttling and OOM kills as events.
 */
import uPlot from 'uplot';
import { compareRows, type FrameRow, type FrameSort, type LiveFrame } from '../../wire/dashboard.js';
import { bar, bytes, h, millicores, rate } from '../dom.js';
import type { Page } from '../page.js';
import { VirtualList } from '../virtual-list.js';

const TOP = 8;
const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f'];

export const nodePage: Page = (root, live) => {
  const cards = h('div', { class: 'cards' });
  const stackHost = h('div', { class: 'chart', id: 'cpu-stack' });
  const picker = h('select', { id: 'slice-picker', 'aria-label': 'slice' });
  const oneHost = h('div', { class: 'chart', id: 'cpu-one' });
  const events = h('ul', { class: 'events', id: 'events' });
  const filter = h('input', {
    id: 'slice-filter',
    type: 'search',
    placeholder: 'filter by name',
    size: 20,
    'aria-label': 'filter slices by name',
  });
  filter.addEventListener('input', () => draw(live.latest));
  let sort: FrameSort = 'cpu';
  const header = h(
    'div',
    { class: 'row head' },
    ...(
      [
        ['name', 'Slice'],
        ['cpu', 'CPU used'],
        ['entitlement', 'Entitled'],
        [null, 'Reserved / limit'],
        ['memory', 'Memory'],
        ['io', 'I/O read / write'],
        ['net', 'Net sent / received'],
        ['procs', 'Procs'],
      ] as Array<[FrameSort | null, string]>
    ).map(([key, label]) => h('span', key ? { class: 'sortable', onclick: () => ((sort = key), draw(live.latest)) } : {}, label)),
  );
  const table = new VirtualList<FrameRow>(26, (r) => sliceRow(r), '420px');
  root.append(
    h('h2', {}, 'Node'),
    cards,
    h('h3', {}, `CPU used by the ${TOP} busiest slices (stacked; the rest summed; dashed: throttling, red: OOM kill)`),
    stackHost,
    h('h3', {}, 'Entitled against used: ', picker),
    oneHost,
    h('h3', {}, 'Slices ', filter),
    h('div', { class: 'table', id: 'slice-table' }, header, table.element),
    h('h3', {}, 'Events (throttling, OOM kills)'),
    events,
  );

  const width = (): number => Math.max(400, root.clientWidth - 20);
  let stack: uPlot | null = null;
  let stackNames: string[] = [];
  const one = new uPlot(
    {
      width: width(),
      height: 200,
      series: [{}, { label: 'entitled', stroke: '#59a14f', width: 2 }, { label: 'used', stroke: '#4e79a7', width: 2 }],
      axes: [{}, { size: 70, values: (_u, ticks) => ticks.map((t) => millicores(t)) }],
      scales: { y: { range: (_u, _min, max) => [0, Math.max(100, max * 1.1)] } },
    },
    [[], [], []],
    oneHost,
  );

  const slices = (frame: LiveFrame): FrameRow[] => frame.rows.filter((r) => r.kind === 'slice');

  function drawStack(): void {
    const frames = live.frames;
    const latest = frames[frames.length - 1];
    if (!latest) return;
    const names = slices(latest)
      .sort((a, b) => (b.usage || 0) - (a.usage || 0))
      .slice(0, TOP)
      .map((r) => r.name);
    const xs = frames.map((f) => f.at / 1000);
    const own = names.map((name) => frames.map((f) => f.rows.find((r) => r.kind === 'slice' && r.name === name)?.usage || 0));
    own.push(frames.map((f) => slices(f).reduce((sum, r) => sum + (names.includes(r.name) ? 0 : r.usage || 0), 0)));
    const labels = [...names, 'others'];
    // Stacked: each series is its own use plus those below it; drawn top first, so every fill shows.
    const cumulative = own.map((_, i) => xs.map((_x, t) => own.slice(0, i + 1).reduce((s, series) => s + series[t]!, 0)));
    if (!stack || names.join() !== stackNames.join()) {
      stack?.destroy();
      stackNames = names;
      stack = new uPlot(
        {
          width: width(),
          height: 240,
          series: [
            {},
            ...labels
              .map((label, i) => ({
                label,
                stroke: COLORS[i % COLORS.length]!,
                fill: COLORS[i % COLORS.length]!,
                value: (_u: uPlot, _v: number, _si: number, idx: number | null) => (idx === null ? '–' : millicores(own[i]?.[idx] ?? 0)),
              }))
              .reverse(),
          ],
          axes: [{}, { size: 70, values: (_u, ticks) => ticks.map((t) => millicores(t)) }],
          scales: { y: { range: () => [0, latest.node.capacity] } },
          hooks: { draw: [(u: uPlot) => markEvents(u, live.frames)] },
        },
        [xs, ...cumulative.slice().reverse()],
        stackHost,
      );
    } else stack.setData([xs, ...cumulative.slice().reverse()]);
  }

  function drawOne(): void {
    const name = picker.value;
    const frames = live.frames;
    const rows = frames.map((f) => f.rows.find((r) => r.kind === 'slice' && r.name === name));
    one.setData([frames.map((f) => f.at / 1000), rows.map((r) => r?.entitlement ?? null), rows.map((r) => r?.usage ?? null)]);
  }

  function draw(frame: LiveFrame | null): void {
    if (!frame) return;
    const n = frame.node;
    cards.replaceChildren(
      card('Capacity', millicores(n.capacity)),
      card('System reserve', millicores(n.systemReserve)),
      card(
        'Reserved by slices',
        millicores(n.reserved),
        bar(n.reserved, n.capacity - n.systemReserve, 'reserved of what slices may reserve'),
      ),
      card('Used outside slices', millicores(n.systemUsage)),
      card('Memory', bytes(n.memoryBytes)),
      card('Backend', `cgroup ${n.backend}`),
      card('Control period', `${frame.periodMs} ms`),
    );
    const rows = slices(frame);
    const names = rows.map((r) => r.name);
    if (picker.options.length !== names.length || [...picker.options].some((o, i) => o.value !== names[i])) {
      const chosen = picker.value;
      picker.replaceChildren(...names.map((name) => h('option', { value: name }, name)));
      picker.value = names.includes(chosen) ? chosen : ([...rows].sort((a, b) => b.usage - a.usage)[0]?.name ?? '');
    }
    const wanted = filter.value.trim();
    table.set((wanted ? rows.filter((r) => r.name.includes(wanted)) : rows).sort(compareRows(sort)));
    drawStack();
    drawOne();
    for (const e of frame.events) {
      events.prepend(
        h(
          'li',
          {},
          `${new Date(e.at).toLocaleTimeString()} ${e.name}: ${e.kind === 'oom' ? `${e.count} OOM kill(s)` : `throttled in ${e.count} period(s)`}`,
        ),
      );
    }
    while (events.children.length > 50) events.lastChild?.remove();
  }

  picker.addEventListener('change', drawOne);
  const unsubscribe = live.subscribe(draw);
  draw(live.latest);
  const resize = (): void => {
    stack?.setSize({ width: width(), height: 240 });
    one.setSize({ width: width(), height: 200 });
  };
  window.addEventListener('resize', resize);
  return () => {
    unsubscribe();
    window.removeEventListener('resize', resize);
    stack?.destroy();
    one.destroy();
  };
};

/** Throttling and OOM kills as vertical lines on the chart's timeline. */
function markEvents(u: uPlot, frames: readonly LiveFrame[]): void {
  const ctx = u.ctx;
  ctx.save();
  ctx.lineWidth = devicePixelRatio;
  for (const frame of frames) {
    for (const e of frame.events) {
      const x = u.valToPos(e.at / 1000, 'x', true);
      ctx.strokeStyle = e.kind === 'oom' ? '#c0392b' : '#e67e22';
      ctx.setLineDash(e.kind === 'oom' ? [] : [4 * devicePixelRatio, 3 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
    }
  }
  ctx.restore();
}

function card(title: string, value: string, extra?: HTMLElement): HTMLElement {
  return h('div', { class: 'card' }, h('div', { class: 'card-title' }, title), h('div', { class: 'card-value' }, value), extra);
}

function sliceRow(r: FrameRow): HTMLElement {
  return h(
    'div',
    { class: 'row', 'data-slice': r.name },
    h('span', { class: 'name', title: r.parent ? `in domain ${r.parent}` : '' }, r.name),
    h('span', { 'data-usage': r.usage }, millicores(r.usage)),
    h('span', { 'data-entitlement': r.entitlement }, millicores(r.entitlement)),
    h('span', {}, `${millicores(r.reservation)} / ${r.limit === null ? 'none' : millicores(r.limit)}`),
    h(
      'span',
      { 'data-memory': r.memoryBytes },
      r.memoryLimit === null
        ? bytes(r.memoryBytes)
        : bar(r.memoryBytes, r.memoryLimit, `${bytes(r.memoryBytes)} of ${bytes(r.memoryLimit)}`, 'mem'),
      r.memoryLimit === null ? null : ` ${bytes(r.memoryBytes)}`,
    ),
    h('span', {}, `${rate(r.ioReadRate)} / ${rate(r.ioWriteRate)}`),
    h('span', {}, `${rate(r.netSentRate)} / ${rate(r.netReceivedRate)}`),
    h('span', {}, r.procs),
  );
}
