/** The config tree area of the API (/v1/tree): entries as ls, stat and tree show them. */

/** One entry of a directory of the config tree. */
export interface Entry {
  name: string;
  kind: 'dir' | 'file' | 'link';
  writable: boolean;
}

/** The subtree under a path (`GET /v1/tree/tree`), links with their target. */
export interface TreeListing extends Entry {
  target?: string;
  children?: TreeListing[];
}
