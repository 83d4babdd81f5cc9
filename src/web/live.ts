/**
 * The live frames (GET /api/live, server-sent events), kept for the last minutes so a page
 * opened later still draws a history; pages subscribe to each new frame.
 */
import type { LiveFrame } from '../wire/dashboard.js';

/** Frames kept: five minutes at the default one-second period. */
export const HISTORY = 300;

export class LiveStore {
  readonly frames: LiveFrame[] = [];
  private readonly listeners = new Set<(frame: LiveFrame) => void>();
  private source: EventSource | null = null;
  /** Shown in the header: connected, reconnecting, or why not. */
  status = 'connecting';
  onStatus: (status: string) => void = () => {};

  connect(): void {
    this.source?.close();
    const source = new EventSource('/api/live');
    this.source = source;
    source.onopen = () => this.setStatus('live');
    source.onerror = () => this.setStatus('reconnecting…');
    source.onmessage = (event: MessageEvent<string>) => {
      const frame = JSON.parse(event.data) as LiveFrame;
      this.frames.push(frame);
      if (this.frames.length > HISTORY) this.frames.shift();
      for (const listener of this.listeners) listener(frame);
    };
  }

  close(): void {
    this.source?.close();
    this.source = null;
  }

  get latest(): LiveFrame | null {
    return this.frames[this.frames.length - 1] ?? null;
  }

  subscribe(listener: (frame: LiveFrame) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private setStatus(status: string): void {
    this.status = status;
    this.onStatus(status);
  }
}
