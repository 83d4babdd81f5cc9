/**
 * vsys services for tests that run a daemon: a script and its ACL written into the daemon's
 * services directory the way an operator's tool should, each file whole at once (written
 * beside, then renamed), so the daemon's watcher never reads half a file.
 */
import { chmodSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function writeWhole(file: string, text: string, mode: number): void {
  writeFileSync(`${file}.tmp`, text, { mode });
  chmodSync(`${file}.tmp`, mode); // the umask does not apply
  renameSync(`${file}.tmp`, file);
}

/** Install service `name` running `script` (a whole shell script), callable by the slices in `slices`. */
export function installService(servicesDir: string, name: string, script: string, slices: readonly string[]): void {
  mkdirSync(servicesDir, { recursive: true, mode: 0o700 });
  writeWhole(join(servicesDir, `${name}.acl`), slices.map((s) => `${s}\n`).join(''), 0o644);
  writeWhole(join(servicesDir, name), script, 0o755);
}

export function removeService(servicesDir: string, name: string): void {
  rmSync(join(servicesDir, name), { force: true });
  rmSync(join(servicesDir, `${name}.acl`), { force: true });
}
