/**
 * One call of a one-shot service: start the script, stream the input to its stdin (up to
 * the input limit), its stdout to the sink (up to the output limit, with back-pressure),
 * stop it at the timeout (SIGTERM, then SIGKILL after the grace), then deliver the output.
 */
import type { Readable } from 'node:stream';
import type { Grant } from './catalog.js';
import type { VsysEvents } from './events.js';
import { ServiceProcess } from './process.js';
import type { Sink } from './sink.js';
import type { CallResult } from '../wire/vsys.js';

export interface VsysLimits {
  /** A one-shot call's script is stopped after this long; output waits as long for a reader. */
  timeoutMs: number;
  /** SIGTERM -> SIGKILL grace when a script is stopped. */
  killGraceMs: number;
  maxInputBytes: number;
  maxOutputBytes: number;
  /** Calls of one slice running at once. */
  maxCallsPerSlice: number;
}

export interface CallOptions {
  grant: Grant;
  slice: string;
  /** The slice's input stream (its `.in` FIFO), a buffer, or nothing (empty stdin). */
  input: Readable | Buffer | null;
  sink: Sink;
  limits: VsysLimits;
  events: VsysEvents;
  /** The slice's cgroup.procs files: the script runs in the slice's groups. */
  procsFiles: readonly string[];
  onStart?: (proc: ServiceProcess) => void;
  /** Called as soon as the script has exited (the output may still be on its way). */
  onExit?: () => void;
}

export async function runCall(options: CallOptions): Promise<CallResult> {
  const { grant, slice, input, sink, limits, events } = options;
  const started = Date.now();
  const proc = new ServiceProcess(grant.script, slice, grant.service, events, options.procsFiles);
  options.onStart?.(proc);
  const result: CallResult = {
    service: grant.service,
    slice,
    exitCode: null,
    signal: null,
    bytesIn: 0,
    bytesOut: 0,
    outputDropped: 0,
    durationMs: 0,
    timedOut: false,
    inputTooLarge: false,
    outputTruncated: false,
  };
  const stdin = proc.stdin;
  let forced: NodeJS.Timeout | null = null;
  const stop = (): void => {
    if (input !== null && !Buffer.isBuffer(input)) input.destroy();
    proc.terminate(limits.killGraceMs);
    // Something that left the process group may still hold stdout or stderr open: stop
    // waiting for it a little after the SIGKILL, so the call (and its slot) always ends.
    forced ??= setTimeout(() => {
      proc.stdout.destroy();
      proc.stderr.destroy();
    }, limits.killGraceMs + 1000);
  };
  const timer = setTimeout(() => {
    result.timedOut = true;
    stop();
  }, limits.timeoutMs);

  if (input === null) stdin.end();
  else if (Buffer.isBuffer(input)) {
    result.bytesIn = input.length;
    stdin.end(input);
  } else {
    input.on('data', (chunk: Buffer) => {
      result.bytesIn += chunk.length;
      if (result.bytesIn > limits.maxInputBytes) {
        result.inputTooLarge = true;
        stop();
        return;
      }
      if (!stdin.write(chunk)) {
        input.pause();
        stdin.once('drain', () => input.resume());
      }
    });
    input.on('end', () => stdin.end());
    input.on('error', () => stdin.end());
    input.resume();
  }

  const stdout = proc.stdout;
  stdout.on('data', (data: Buffer) => {
    let chunk = data;
    const room = limits.maxOutputBytes - result.bytesOut;
    if (chunk.length > room) {
      chunk = chunk.subarray(0, room);
      if (!result.outputTruncated) {
        result.outputTruncated = true;
        stop();
      }
    }
    result.bytesOut += chunk.length;
    if (chunk.length > 0 && !sink.write(chunk)) {
      stdout.pause();
      sink.once('drain', () => stdout.resume());
    }
  });

  const exit = await proc.exited;
  clearTimeout(timer);
  if (forced) clearTimeout(forced);
  if (input !== null && !Buffer.isBuffer(input)) input.destroy();
  options.onExit?.();
  result.exitCode = exit.code;
  result.signal = exit.signal;
  const delivery = await sink.finish(Date.now() + limits.timeoutMs);
  result.outputDropped = delivery.dropped;
  result.durationMs = Date.now() - started;
  return result;
}

/** One sentence about how a call ended, for the vsys log and `slicectl vsys call`. */
export function describeCall(result: CallResult, limits: VsysLimits): string {
  const problems: string[] = [];
  if (result.timedOut) problems.push(`stopped after the ${limits.timeoutMs} ms timeout`);
  if (result.inputTooLarge) problems.push(`input over the ${limits.maxInputBytes}-byte limit`);
  if (result.outputTruncated) problems.push(`output cut at the ${limits.maxOutputBytes}-byte limit`);
  if (result.outputDropped > 0) problems.push(`${result.outputDropped} output bytes not read by the slice`);
  const status =
    result.signal !== null ? `killed by ${result.signal}` : result.exitCode === null ? 'could not start' : `exit status ${result.exitCode}`;
  return (
    `call ${status}, ${result.bytesIn} bytes in, ${result.bytesOut} out, ${result.durationMs} ` +
    `ms${problems.length ? `; ${problems.join('; ')}` : ''}`
  );
}

export function callFailed(result: CallResult): boolean {
  return result.exitCode !== 0 || result.timedOut || result.inputTooLarge || result.outputTruncated;
}
