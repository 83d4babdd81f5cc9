/**
 * Run the network tools (ip, nft, tc, nsenter) with argument arrays, never a shell, and turn
 * a failure into one EIO sentence carrying the tool's own message.
 */
import { spawn } from 'node:child_process';
import { SlicedError } from '../../core/errors.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run a command, feeding `input` on stdin; resolves with its output whatever the status. */
export function runTool(command: string, args: readonly string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    // First: a spawn that fails for want of file descriptors (EMFILE) has no pipes, and its
    // 'error' event, with no listener, would end the daemon.
    child.on('error', (err) => reject(new SlicedError('EIO', `cannot run ${command}: ${err.message}`)));
    if (!child.stdout || !child.stderr || !child.stdin) return;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ stdout, stderr, code: code ?? 1 }));
    child.stdin.on('error', () => undefined); // the tool may exit before reading everything
    child.stdin.end(input ?? '');
  });
}

/** Run a command that must succeed; returns its stdout. */
export async function mustRun(command: string, args: readonly string[], input?: string): Promise<string> {
  const result = await runTool(command, args, input);
  if (result.code !== 0) {
    const detail = result.stderr.trim().split('\n').slice(0, 6).join(' | ') || `exit status ${result.code}`;
    throw new SlicedError('EIO', `${command} ${args.join(' ')} failed: ${detail}`);
  }
  return result.stdout;
}
