/**
 * The dashboard page: sign-in (the token, or a link carrying it after "#token="), then the
 * pages by the address's hash (#/node, #/slices, #/framework, #/cluster, #/vsys, #/simulations), all fed
 * by one live stream.
 */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { checkSession, signIn, signOut } from './api.js';
import { h } from './dom.js';
import { LiveStore } from './live.js';
import type { Page } from './page.js';
import { clusterPage } from './pages/cluster.js';
import { frameworkPage } from './pages/framework.js';
import { nodePage } from './pages/node.js';
import { slicesPage } from './pages/slices.js';
import { simulationsPage } from './pages/simulations.js';
import { vsysPage } from './pages/vsys.js';

const PAGES: Record<string, { title: string; page: Page }> = {
  node: { title: 'Node', page: nodePage },
  slices: { title: 'Slices', page: slicesPage },
  framework: { title: 'Framework', page: frameworkPage },
  cluster: { title: 'Cluster', page: clusterPage },
  vsys: { title: 'vsys', page: vsysPage },
  simulations: { title: 'Simulations', page: simulationsPage },
};

const live = new LiveStore();
const main = h('main', { id: 'page' });
const liveStatus = h('span', { class: 'live-status', id: 'live-status' }, '');
let leave: (() => void) | null = null;

function show(): void {
  const name = location.hash.replace(/^#\/?/, '') || 'node';
  const entry = PAGES[name] ?? PAGES.node!;
  leave?.();
  main.replaceChildren();
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.getAttribute('href') === `#/${name}`);
  document.title = `${entry.title} · sliced`;
  leave = entry.page(main, live);
}

function signInForm(error = ''): HTMLElement {
  const token = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'current-password', size: 48, required: true });
  const form = h(
    'form',
    { class: 'signin', id: 'signin' },
    h('h2', {}, 'Sign in'),
    h('p', {}, 'The token is in the web token file on the node (root only); ', h('code', {}, 'slicectl web'), ' prints a sign-in link.'),
    token,
    h('button', { type: 'submit' }, 'Sign in'),
    h('p', { class: 'message', role: 'alert' }, error),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    signIn(token.value)
      .then(start)
      .catch((err: Error) => document.body.replaceChildren(signInForm(err.message)));
  });
  return form;
}

function start(): void {
  const nav = h(
    'nav',
    {},
    h('strong', { class: 'brand' }, 'sliced'),
    ...Object.entries(PAGES).map(([name, p]) => h('a', { href: `#/${name}` }, p.title)),
    liveStatus,
    h('button', { class: 'signout', onclick: () => void signOut().then(() => location.reload()) }, 'Sign out'),
  );
  document.body.replaceChildren(nav, main);
  live.onStatus = (status) => (liveStatus.textContent = status);
  live.connect();
  window.addEventListener('hashchange', show);
  show();
}

async function boot(): Promise<void> {
  // A sign-in link: the token after "#token=" (a fragment never reaches a server's log); it is taken out of the address at once.
  const fromLink = /^#token=(.+)$/.exec(location.hash)?.[1];
  if (fromLink) {
    history.replaceState(null, '', location.pathname);
    try {
      await signIn(decodeURIComponent(fromLink));
      start();
      return;
    } catch (err) {
      document.body.replaceChildren(signInForm((err as Error).message));
      return;
    }
  }
  if (await checkSession()) start();
  else document.body.replaceChildren(signInForm());
}

void boot();
