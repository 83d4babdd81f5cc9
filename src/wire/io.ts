/** The I/O area of the API (/v1/io): block devices and their schedulers. */
import type { BlockDevice } from '../core/io.js';

/** A block device as `GET /v1/io/devices` shows it. */
export interface IoDeviceView extends BlockDevice {
  /** Why io.weight has no effect on this device (the remedy names it "DEV"), or null when it acts. */
  weightNoEffect: string | null;
}
