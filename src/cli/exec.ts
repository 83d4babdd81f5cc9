/**
 * `slicectl exec`: run a command as the slice's user inside its groups, like
 * `systemd-run --scope`: stdio is passed through, signals sent to slicectl are forwarded,
 * and the command's exit status is returned (128+N when it died of signal N).
 */
import { constants } from 'node:os';
import { spawnInSlice, type SliceProcessPlan } from '../kernel/spawn.js';
import { CliError, EXIT } from './client.js';

export interface ExecOptions {
  env: Record<string, string>;
  cwd?: string;
}

export function runInSlice(plan: SliceProcessPlan, command: string[], options: ExecOptions): Promise<number> {
  if (command.length === 0) throw new CliError('exec needs a command to run, e.g. slicectl exec --slice web -- sleep 10', EXIT.usage, 'EINVAL');
  if (process.getuid?.() !== 0) {
    throw new CliError("exec must run as root: it switches to the slice's user and joins its cgroups", EXIT.permission, 'EPERM');
  }
  const env: Record<string, string> = {
    ...(process.env.TERM ? { TERM: process.env.TERM } : {}),
    ...(process.env.LANG ? { LANG: process.env.LANG } : {}),
    ...options.env,
  };
  return new Promise((resolve, reject) => {
    const child = spawnInSlice(plan, command, { env, stdio: 'inherit', ...(options.cwd ? { cwd: options.cwd } : {}) });
    const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGQUIT'];
    const handlers = signals.map((signal) => [signal, () => child.kill(signal)] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    child.on('error', (err) => reject(new CliError(`cannot start /bin/sh: ${err.message}`, EXIT.refused, 'EIO')));
    child.on('exit', (code, signal) => {
      for (const [s, handler] of handlers) process.off(s, handler);
      resolve(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1));
    });
  });
}
