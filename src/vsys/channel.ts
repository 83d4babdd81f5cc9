/**
 * One service as one slice sees it: the `NAME.in` / `NAME.out` FIFO pair and what runs
 * behind it.
 *
 * One-shot (default): a call starts when the slice writes into `NAME.in` (or opens and
 * closes it: empty input); the input ends at EOF, i.e. when every writer has closed. The
 * output goes to `NAME.out` and the daemon closes its end when the script is done, so the
 * reader sees EOF. Calls on one channel are sequential: `NAME.in` has no reader while a
 * call runs, so the next writer waits in open(2) (or gets ENXIO when non-blocking). A slice
 * with only `r` access starts a call (empty input) by opening `NAME.out`.
 *
 * Stateful (`#! stateful`): one long-lived instance per slice, started with the channel,
 * that reads `NAME.in` and writes `NAME.out` itself: the daemon opens both FIFOs O_RDWR
 * (checked like every open) and hands them over as the script's stdin and stdout, so
 * requests and answers never pass through the daemon's event loop. The daemon keeps its
 * own copies of both fds, so the FIFOs stay open across writers, readers and restarts: the
 * instance sees no EOF between writers, a slice writing while it restarts waits in the pipe
 * instead of getting EPIPE, and opening `NAME.out` never waits. If the instance exits it is
 * restarted with exponential back-off.
 *
 * One-shot `NAME.in` is opened O_RDONLY|O_NONBLOCK and reopened after each EOF: Linux does not
 * report hang-up to a reader that opened with no writer until a writer has come and gone,
 * so an idle FIFO costs nothing, and EOF tells where a call's input ends (an O_RDWR reader is
 * its own writer and never sees EOF).
 */
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { openFifo, RefusedFile, type FifoCheck } from '../kernel/fifo.js';
import { canRead, canWrite } from './acl.js';
import type { Grant } from './catalog.js';
import { callFailed, describeCall, runCall, type VsysLimits } from './call.js';
import type { VsysEvents } from './events.js';
import { ServiceProcess, type ServiceStdio } from './process.js';
import { DiscardSink, FifoSink, type Sink } from './sink.js';
import type { Slots } from './slots.js';
import type { CallResult, ChannelState, ChannelStatus, VsysLevel } from '../wire/vsys.js';

/** How often an `r`-only one-shot channel looks for a reader of `NAME.out`. */
const READER_POLL_MS = 100;
const ONE_SHOT_HIGH_WATER = 64 * 1024;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** An instance that ran this long resets the back-off. */
const STABLE_MS = 10_000;

export interface ChannelContext {
  slice: string;
  uid: number;
  dir: string;
  limits: VsysLimits;
  slots: Slots;
  events: VsysEvents;
  /** Inode of our FIFO `file` in the slice's directory; null while it is missing or refused. */
  inode(file: string): number | null;
  /** The slice's cgroup.procs files now: scripts run in the slice's groups. */
  procsFiles(): string[];
}

interface RunningCall {
  input: Socket | null;
  sink: Sink;
  proc: ServiceProcess | null;
  waiting: boolean;
}

export class Channel {
  private closed = false;
  private listener: Socket | null = null;
  private call: RunningCall | null = null;
  private timer: NodeJS.Timeout | null = null;
  private refusalLogged = false;
  private calls = 0;
  private lastCall: CallResult | null = null;
  // stateful
  private instance: ServiceProcess | null = null;
  /** The instance's stdin and stdout: our O_RDWR fds of NAME.in / NAME.out, or /dev/null. */
  private fifos: ServiceStdio | null = null;
  private failures = 0;
  private restartAt = 0;

  constructor(
    readonly grant: Grant,
    private readonly ctx: ChannelContext,
  ) {}

  get inFile(): string {
    return `${this.grant.service}.in`;
  }

  get outFile(): string {
    return `${this.grant.service}.out`;
  }

  /** Start serving; `inFd` is an already-open reader of `NAME.in` (from adoption). */
  start(inFd: number | null = null): void {
    if (this.grant.stateful) {
      if (inFd !== null) closeSync(inFd); // the instance gets an O_RDWR fd of its own
      this.startInstance();
    } else if (canWrite(this.grant.mode)) this.listen(inFd);
    else {
      if (inFd !== null) closeSync(inFd);
      this.pollReader();
    }
  }

  /**
   * The broker made one of our FIFOs again (the slice had removed it); `fd` is a reader of
   * a new `NAME.in`. One-shot: read the new input. Stateful: move the instance to the new
   * FIFOs (a fresh instance; the old one is stopped).
   */
  fifosReplaced(fd: number | null): void {
    if (this.grant.stateful) {
      if (fd !== null) closeSync(fd);
      this.replaceInstance();
      return;
    }
    if (fd === null) return; // NAME.out is opened per call
    this.listener?.destroy();
    this.listener = null;
    if (this.call) {
      closeSync(fd);
      return; // listened to again when the call ends
    }
    this.listen(fd);
  }

  /** Stop everything; resolves when the scripts have exited. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.listener?.destroy();
    this.listener = null;
    const exits: Array<Promise<unknown>> = [];
    if (this.call) {
      this.call.input?.destroy();
      this.call.sink.destroy();
      this.releaseWaitingReader();
      if (this.call.proc) {
        this.call.proc.terminate(this.ctx.limits.killGraceMs);
        exits.push(this.call.proc.exited);
      }
    }
    if (this.instance) {
      this.instance.terminate(this.ctx.limits.killGraceMs);
      exits.push(this.instance.exited);
    }
    this.closeFifos();
    await Promise.all(exits);
  }

  status(): ChannelStatus {
    const state: ChannelState = this.call
      ? this.call.waiting
        ? 'waiting'
        : 'running'
      : this.instance
        ? 'instance'
        : this.grant.stateful && this.restartAt > Date.now()
          ? 'restarting'
          : 'idle';
    return {
      service: this.grant.service,
      mode: this.grant.mode,
      stateful: this.grant.stateful,
      private: this.grant.private,
      in: canWrite(this.grant.mode) ? join(this.ctx.dir, this.inFile) : null,
      out: canRead(this.grant.mode) ? join(this.ctx.dir, this.outFile) : null,
      state,
      calls: this.calls,
      pid: (this.call?.proc ?? this.instance)?.pid ?? null,
      lastCall: this.lastCall,
    };
  }

  private record(level: VsysLevel, message: string, details?: Record<string, unknown>): void {
    this.ctx.events.record(level, { service: this.grant.service, slice: this.ctx.slice }, message, details);
  }

  private check(file: string): FifoCheck | null {
    const ino = this.ctx.inode(file);
    return ino === null ? null : { uid: this.ctx.uid, ino };
  }

  private fileProblem(err: unknown): void {
    if (err instanceof RefusedFile) {
      if (!this.refusalLogged) this.record('warn', err.message);
      this.refusalLogged = true;
    } else {
      this.record('error', `cannot open a FIFO: ${(err as Error).message}`);
    }
  }

  // ---- input ---------------------------------------------------------------------------

  private listen(fd: number | null): void {
    if (this.closed || this.call || this.listener) {
      if (fd !== null) closeSync(fd);
      return;
    }
    if (fd === null) {
      const check = this.check(this.inFile);
      if (check === null) return; // missing or refused: the broker starts us again when it is fixed
      try {
        fd = openFifo(join(this.ctx.dir, this.inFile), 'read', check).fd;
      } catch (err) {
        this.fileProblem(err);
        return;
      }
    }
    this.refusalLogged = false;
    const socket = new Socket({ fd, readable: true, writable: false });
    this.listener = socket;
    socket.on('error', (err) => this.record('warn', `reading ${this.inFile} failed: ${err.message}`));
    // The first data (or EOF) starts a call, which then owns the socket.
    const onReadable = (): void => {
      socket.off('readable', onReadable);
      if (this.listener !== socket) return;
      this.listener = null;
      void this.runOneShot(socket, undefined);
    };
    socket.on('readable', onReadable);
  }

  /** `r`-only one-shot: a reader appearing on `NAME.out` is the call. */
  private pollReader(): void {
    if (this.closed || this.call) return;
    const again = (): void => {
      this.timer = setTimeout(() => this.pollReader(), READER_POLL_MS);
    };
    const check = this.check(this.outFile);
    if (check === null) return again();
    try {
      const { fd } = openFifo(join(this.ctx.dir, this.outFile), 'write', check);
      this.refusalLogged = false;
      void this.runOneShot(null, fd);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') this.fileProblem(err);
      again();
    }
  }

  // ---- one-shot calls ------------------------------------------------------------------

  private async runOneShot(input: Socket | null, writerFd: number | undefined): Promise<void> {
    const { limits, slots, slice } = this.ctx;
    const sink: Sink = canRead(this.grant.mode)
      ? new FifoSink({
          path: join(this.ctx.dir, this.outFile),
          check: () => this.check(this.outFile),
          highWater: ONE_SHOT_HIGH_WATER,
          giveUpMs: limits.timeoutMs,
          problem: (message) => this.record('warn', message),
          ...(writerFd !== undefined ? { fd: writerFd } : {}),
        })
      : new DiscardSink();
    const call: RunningCall = { input, sink, proc: null, waiting: true };
    this.call = call;
    try {
      // Waiting for a slot leaves the input in the FIFO: the slice's writer blocks, not us.
      const release = await slots.acquire(slice);
      call.waiting = false;
      if (this.closed) {
        release();
        input?.destroy();
        sink.destroy();
        return;
      }
      const result = await runCall({
        grant: this.grant,
        slice,
        input,
        sink,
        limits,
        events: this.ctx.events,
        procsFiles: this.ctx.procsFiles(),
        onStart: (proc) => (call.proc = proc),
        onExit: release,
      });
      this.calls++;
      this.lastCall = result;
      this.record(callFailed(result) ? 'warn' : 'info', describeCall(result, limits), { call: result });
    } catch (err) {
      this.record('error', `call failed inside sliced: ${(err as Error).message}`);
    } finally {
      input?.destroy();
      if (this.call === call) this.call = null;
    }
    if (this.closed) return;
    if (canWrite(this.grant.mode)) this.listen(null);
    else this.timer = setTimeout(() => this.pollReader(), READER_POLL_MS);
  }

  // ---- stateful instances --------------------------------------------------------------

  /** Open the instance's FIFOs; false when one is missing or refused (the broker remakes it). */
  private openFifos(): boolean {
    const wanted = [canWrite(this.grant.mode) ? this.inFile : null, canRead(this.grant.mode) ? this.outFile : null];
    const fds: Array<number | 'ignore'> = [];
    try {
      for (const file of wanted) {
        if (file === null) {
          fds.push('ignore');
          continue;
        }
        const check = this.check(file);
        if (check === null) break;
        fds.push(openFifo(join(this.ctx.dir, file), 'both', check).fd);
      }
    } catch (err) {
      this.fileProblem(err);
    }
    if (fds.length < wanted.length) {
      for (const fd of fds) if (fd !== 'ignore') closeSync(fd);
      return false;
    }
    this.fifos = { stdin: fds[0]!, stdout: fds[1]! };
    this.refusalLogged = false;
    return true;
  }

  /**
   * A caller of a call ended unanswered may be blocked opening `NAME.out`, which only the
   * delivery of an answer would open: open its write end without blocking and close it at
   * once, so that the caller's open returns and it reads EOF. ENXIO: nobody waits.
   */
  private releaseWaitingReader(): void {
    const check = this.check(this.outFile);
    if (check === null) return;
    try {
      closeSync(openFifo(join(this.ctx.dir, this.outFile), 'write', check).fd);
    } catch {
      // No reader waits (ENXIO), or the file is not ours any more (refused, logged elsewhere).
    }
  }

  private closeFifos(): void {
    for (const fd of [this.fifos?.stdin, this.fifos?.stdout]) if (typeof fd === 'number') closeSync(fd);
    this.fifos = null;
  }

  private startInstance(): void {
    if (this.closed || this.instance) return;
    const wait = this.restartAt - Date.now();
    if (wait > 0) {
      this.timer ??= setTimeout(() => {
        this.timer = null;
        this.startInstance();
      }, wait);
      return;
    }
    if (this.fifos === null && !this.openFifos()) return; // started again when the broker remakes them
    let procsFiles: string[];
    try {
      procsFiles = this.ctx.procsFiles();
    } catch (err) {
      // The slice is going away: the broker closes this channel when it is gone.
      this.record('warn', `instance not started: ${(err as Error).message}`);
      return;
    }
    const proc = new ServiceProcess(this.grant.script, this.ctx.slice, this.grant.service, this.ctx.events, procsFiles, this.fifos!);
    this.instance = proc;
    this.record('info', `instance started (pid ${proc.pid ?? '?'})`);
    void proc.exited.then((exit) => this.instanceExited(proc, exit.code, exit.signal));
  }

  private replaceInstance(): void {
    const old = this.instance;
    this.instance = null;
    if (old) {
      this.record('info', `instance (pid ${old.pid ?? '?'}) stopped: the slice's FIFOs were made again`);
      old.terminate(this.ctx.limits.killGraceMs);
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.closeFifos();
    this.failures = 0;
    this.restartAt = 0;
    this.startInstance();
  }

  private instanceExited(proc: ServiceProcess, code: number | null, signal: string | null): void {
    if (this.instance !== proc || this.closed) return; // replaced or closed on purpose
    this.instance = null;
    const ran = Date.now() - proc.startedAt;
    this.failures = ran >= STABLE_MS ? 1 : this.failures + 1;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.failures - 1));
    this.restartAt = Date.now() + delay;
    const how = signal !== null ? `killed by ${signal}` : `exit status ${code}`;
    this.record('warn', `instance (pid ${proc.pid ?? '?'}) ended (${how}) after ${ran} ms; restarting in ${delay} ms`);
    this.startInstance();
  }
}
