/**
 * The dashboard's live stream: after every pass of the control loop, one frame (wire/dashboard.ts)
 * is built, serialised once and written to every open page. Nothing is read while no page is
 * open; a pass that comes while the last frame is still being built is skipped.
 */
import type { Logger } from 'pino';
import { buildFrame, type FrameInput, type FrameMemory } from '../../wire/dashboard.js';

export type FrameSink = (json: string) => void;

export class LiveFeed {
  private readonly sinks = new Set<FrameSink>();
  private memory: FrameMemory | null = null;
  private latest: string | null = null;
  private building = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly read: () => Promise<FrameInput>,
    onPass: (listener: () => void) => () => void,
    private readonly log: Logger,
  ) {
    this.unsubscribe = onPass(() => void this.pass());
  }

  /** Receive every frame from now on, the latest one at once; returns the unsubscribe. */
  subscribe(sink: FrameSink): () => void {
    this.sinks.add(sink);
    if (this.latest !== null) sink(this.latest);
    else void this.pass();
    return () => {
      this.sinks.delete(sink);
      if (this.sinks.size === 0) {
        // Rates restart from the next page: a frame from long ago would average over the gap.
        this.memory = null;
        this.latest = null;
      }
    };
  }

  get clients(): number {
    return this.sinks.size;
  }

  close(): void {
    this.unsubscribe();
    this.sinks.clear();
  }

  private async pass(): Promise<void> {
    if (this.sinks.size === 0 || this.building) return;
    this.building = true;
    try {
      const { frame, memory } = buildFrame(await this.read(), this.memory);
      this.memory = memory;
      this.latest = JSON.stringify(frame);
      for (const sink of this.sinks) sink(this.latest);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'dashboard: cannot build the live frame');
    } finally {
      this.building = false;
    }
  }
}
