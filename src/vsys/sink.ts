/**
 * Where a script's stdout goes. `FifoSink` writes to a slice's `NAME.out` without ever
 * blocking the daemon: the FIFO is opened O_WRONLY|O_NONBLOCK|O_NOFOLLOW only when there
 * is a reader (ENXIO until then, retried with a short back-off), checked with fstat, and
 * wrapped in a net.Socket whose write buffer gives back-pressure: when the slice does not
 * read, `write` returns false and the caller pauses the script's stdout, so the script
 * blocks, not the daemon. Output nobody reads within `giveUpMs` is dropped and logged.
 */
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import { openFifo, RefusedFile, type FifoCheck } from '../kernel/fifo.js';

export interface Delivery {
  /** Bytes handed to the reader's FIFO. */
  delivered: number;
  /** Bytes dropped: no reader in time, the reader left, or the FIFO was refused. */
  dropped: number;
}

export interface Sink extends EventEmitter {
  /** Queue output; false means "pause your source until 'drain'". */
  write(chunk: Buffer): boolean;
  /** Deliver what is queued and close (the reader sees EOF); resolves when done or at `deadline`. */
  finish(deadline: number): Promise<Delivery>;
  destroy(): void;
}

/** Output of a slice with only `w` access: counted and dropped. */
export class DiscardSink extends EventEmitter implements Sink {
  private bytes = 0;
  write(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    return true;
  }
  finish(): Promise<Delivery> {
    return Promise.resolve({ delivered: 0, dropped: this.bytes });
  }
  destroy(): void {}
}

/** Output collected in memory, for `slicectl vsys call` (the caller caps its size). */
export class BufferSink extends EventEmitter implements Sink {
  readonly chunks: Buffer[] = [];
  write(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }
  finish(): Promise<Delivery> {
    return Promise.resolve({ delivered: this.chunks.reduce((n, c) => n + c.length, 0), dropped: 0 });
  }
  destroy(): void {}
}

export interface FifoSinkOptions {
  path: string;
  /** What the FIFO must be (owner, inode); null when it is currently not usable. */
  check: () => FifoCheck | null;
  /** Queued bytes above which `write` asks the source to pause. */
  highWater: number;
  /** Output waiting this long for a reader is dropped. */
  giveUpMs: number;
  problem: (message: string) => void;
  /** A writer fd already opened (the reader is known to be there). */
  fd?: number;
}

const RETRY_MIN_MS = 1;
const RETRY_MAX_MS = 50;

export class FifoSink extends EventEmitter implements Sink {
  private socket: Socket | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private waitingSince: number | null = null;
  private retry: NodeJS.Timeout | null = null;
  private retryMs = RETRY_MIN_MS;
  private delivered = 0;
  private dropped = 0;
  private finishing: { deadline: number; resolve: (d: Delivery) => void } | null = null;
  private destroyed = false;

  constructor(private readonly opts: FifoSinkOptions) {
    super();
    if (opts.fd !== undefined) this.attach(opts.fd);
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed) return true;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.waitingSince ??= Date.now();
    this.pump();
    return this.queued() < this.opts.highWater;
  }

  finish(deadline: number): Promise<Delivery> {
    return new Promise((resolve) => {
      if (this.destroyed) return resolve(this.outcome());
      this.finishing = { deadline, resolve };
      this.waitingSince ??= Date.now();
      this.pump();
    });
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.retry) clearTimeout(this.retry);
    this.drop();
    this.socket?.destroy();
    this.socket = null;
    this.finishing?.resolve(this.outcome());
    this.finishing = null;
  }

  private queued(): number {
    return this.pendingBytes + (this.socket?.writableLength ?? 0);
  }

  private outcome(): Delivery {
    return { delivered: this.delivered, dropped: this.dropped };
  }

  /** Move queued output into the reader's FIFO, opening it when a reader has appeared. */
  private pump(): void {
    if (this.destroyed) return;
    if (!this.socket && !this.open()) return;
    const socket = this.socket!;
    for (const chunk of this.pending) {
      socket.write(chunk);
      this.delivered += chunk.length;
    }
    this.pending = [];
    this.pendingBytes = 0;
    this.waitingSince = null;
    if (this.finishing) socket.end();
  }

  /** Try to open the writer; on ENXIO (no reader yet) retry later. True when open. */
  private open(): boolean {
    if (this.retry) return false;
    const check = this.opts.check();
    if (check === null) {
      this.giveUp(`${this.opts.path} is missing or was refused (see the warning about it)`);
      return false;
    }
    try {
      this.attach(openFifo(this.opts.path, 'write', check).fd);
      this.retryMs = RETRY_MIN_MS;
      return true;
    } catch (err) {
      if (err instanceof RefusedFile) {
        this.opts.problem(err.message);
        this.giveUp(`${this.opts.path} was refused`);
        return false;
      }
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENXIO') {
        this.opts.problem(`cannot open ${this.opts.path}: ${(err as Error).message}`);
        this.giveUp(`${this.opts.path} cannot be opened`);
        return false;
      }
      const deadline = this.finishing?.deadline ?? (this.waitingSince ?? Date.now()) + this.opts.giveUpMs;
      if (Date.now() >= deadline) {
        this.giveUp(`nobody opened ${this.opts.path} for reading within ${this.opts.giveUpMs} ms`);
        return false;
      }
      this.retry = setTimeout(() => {
        this.retry = null;
        this.pump();
      }, this.retryMs);
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
      return false;
    }
  }

  private attach(fd: number): void {
    const socket = new Socket({ fd, readable: false, writable: true });
    this.socket = socket;
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // EPIPE: the reader closed its end; what it did not read is lost.
      const lost = socket.writableLength;
      this.dropped += lost;
      this.delivered -= Math.min(this.delivered, lost);
      if (err.code !== 'EPIPE') this.opts.problem(`writing ${this.opts.path} failed: ${err.message}`);
      this.detach(socket);
    });
    socket.on('close', () => this.detach(socket));
  }

  private detach(socket: Socket): void {
    socket.destroy();
    if (this.socket !== socket) return;
    this.socket = null;
    if (this.finishing) {
      this.finishing.resolve(this.outcome());
      this.finishing = null;
    }
    this.emit('drain');
  }

  private drop(): void {
    this.dropped += this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.waitingSince = null;
  }

  private giveUp(reason: string): void {
    if (this.pendingBytes > 0) this.opts.problem(`${this.pendingBytes} bytes of output dropped: ${reason}`);
    this.drop();
    this.emit('drain'); // the source may go on; its output is dropped
    if (this.finishing) {
      this.finishing.resolve(this.outcome());
      this.finishing = null;
    }
  }
}
