/**
 * What starting a process in a slice needs: the daemon works it out (the API's exec-plan,
 * src/wire/exec.ts), and kernel/spawn.ts starts the process from it, in slicectl exec or in
 * the daemon itself.
 */
export interface SliceProcessPlan {
  slice: string;
  user: string;
  uid: number;
  gid: number;
  home: string;
  procsFiles: string[];
  /** The slice's network namespace (/run/netns/<name>), or null for the host's network. */
  netns: string | null;
}
