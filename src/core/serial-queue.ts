/**
 * Runs asynchronous tasks one at a time, in the order they were queued. A task that fails
 * rejects only its own promise: the tasks behind it still run.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
