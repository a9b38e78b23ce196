import type { BatchSink } from './batch-sink.js';

/** A sink as a service (start / stop / done): its BatchSink's lifecycle. */
export abstract class SinkService {
  protected abstract readonly loop: BatchSink;

  /** See BatchSink.start. */
  start(): Promise<void> {
    return this.loop.start();
  }

  /** See BatchSink.stop. */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** See BatchSink.done. */
  get done(): Promise<void> {
    return this.loop.done;
  }
}
