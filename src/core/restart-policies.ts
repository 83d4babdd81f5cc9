/** What a cluster task does when it ends (a module of its own, free of zod: the CLI offers the choices). */
export const RESTART_POLICIES = ['never', 'on-failure', 'always'] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];
