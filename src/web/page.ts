import type { LiveStore } from './live.js';

/** A page of the dashboard: drawn into `root`; what it returns is called when another page is shown. */
export type Page = (root: HTMLElement, live: LiveStore) => () => void;
