/**
 * vsys: the services, which slices may call each (and how: r, w, rw), and the recent calls
 * with their duration and how they ended. Payloads are never shown (the log keeps none).
 */
import type { CallResult, ServiceView, VsysEvent, VsysStatus } from '../../wire/vsys.js';
import { api } from '../api.js';
import { bytes, h } from '../dom.js';
import type { Page } from '../page.js';

const REFRESH_MS = 3000;

export const vsysPage: Page = (root) => {
  const message = h('div', { class: 'message' });
  const status = h('p', {});
  const services = h('table', { class: 'grid', id: 'vsys-services' });
  const calls = h('table', { class: 'grid', id: 'vsys-calls' });
  root.append(h('h2', {}, 'vsys'), status, message, h('h3', {}, 'Services'), services, h('h3', {}, 'Recent calls'), calls);

  async function load(): Promise<void> {
    try {
      const [st, list, log] = await Promise.all([
        api.get<VsysStatus>('/v1/vsys'),
        api.get<ServiceView[]>('/v1/vsys/services'),
        api.get<VsysEvent[]>('/v1/vsys/log?limit=500'),
      ]);
      status.textContent = `Services in ${st.servicesDir}; slices' FIFOs under ${st.sliceRoot}.${st.withdrawn ? ` Every service is withdrawn: ${st.withdrawn}` : ''}`;
      services.replaceChildren(
        h('tr', {}, ...['Service', 'Kind', 'Script', 'Slices that may call it'].map((t) => h('th', {}, t))),
        ...list.map((s) =>
          h(
            'tr',
            { 'data-service': s.name },
            h('td', {}, s.name),
            h('td', {}, [s.private ? `private to ${s.private}` : 'public', s.stateful ? 'stateful' : 'one call per run'].join(', ')),
            h('td', {}, s.script),
            h(
              'td',
              {},
              Object.entries(s.slices)
                .map(([slice, mode]) => `${slice} (${mode})`)
                .join(', ') || 'none',
            ),
          ),
        ),
      );
      const recent = log
        .filter((e) => e.details && 'call' in e.details)
        .reverse()
        .slice(0, 100);
      calls.replaceChildren(
        h('tr', {}, ...['Time', 'Service', 'Slice', 'Ended', 'Duration', 'In / out'].map((t) => h('th', {}, t))),
        ...recent.map((e) => {
          const c = e.details!.call as CallResult;
          const ended = c.timedOut ? 'timed out' : c.signal ? `signal ${c.signal}` : `exit ${c.exitCode ?? '?'}`;
          return h(
            'tr',
            { class: e.level },
            h('td', {}, new Date(e.time).toLocaleTimeString()),
            h('td', {}, c.service),
            h('td', {}, c.slice),
            h('td', {}, ended),
            h('td', {}, `${c.durationMs} ms`),
            h('td', {}, `${bytes(c.bytesIn)} / ${bytes(c.bytesOut)}`),
          );
        }),
      );
      message.textContent = '';
    } catch (err) {
      message.textContent = (err as Error).message;
    }
  }

  const timer = setInterval(() => void load(), REFRESH_MS);
  void load();
  return () => clearInterval(timer);
};
