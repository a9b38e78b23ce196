/**
 * How every long-running role runs (aggregator, sink, api, `tally start`): serve its metrics,
 * start its services in order, stop them all on SIGTERM / SIGINT (stopOnSignals) or as soon as
 * one of them ends, wait for every one, and propagate a crash, so the process exits non-zero.
 */
import type { Registry } from 'prom-client';
import { isKafkaError, kafkaErrorAction, type KafkaErrorLike } from '../errors/index.js';
import { serveMetrics, type Logger } from '../observability/index.js';
import { stopOnSignals } from './stop-signals.js';

/**
 * Something that runs until stopped or until it fails: Aggregator, ClickHouseSink,
 * DeadLetterSink, the API server (serviceUntilStopped).
 */
export interface Service {
  /** Resolves once it runs; rejects if it could not start. */
  start(): Promise<void>;
  /**
   * Asks it to finish (the current transaction, batch or requests) and waits until it has. May
   * come while start() is still running: it then stops right after starting.
   */
  stop(): Promise<void>;
  /** Settles when it has ended: resolves after a stop, rejects if it crashed. */
  readonly done: Promise<void>;
}

export interface RoleOptions {
  /** The role's name, the prefix of its log events (`sink.stopping`, `sink.metrics_listening`). */
  name: string;
  log: Logger;
  /** Started one after the other in this order; stopped all together. */
  services: readonly Service[];
  /** Served on GET /metrics while the role runs; instanceId goes into the listening line. */
  metrics?: { registry: Registry; host: string; port: number; instanceId: string };
  /** Calls `stop` when the role is asked to stop; by default on SIGTERM / SIGINT (stopOnSignals). */
  onStopRequest?: (stop: () => void) => void;
}

/** Runs one role to its end: resolves after a clean stop, rejects with the first failure. */
export async function runRole(role: RoleOptions): Promise<void> {
  let metricsServer: { close(): Promise<void> } | undefined;
  if (role.metrics !== undefined) {
    const { registry, host, port, instanceId } = role.metrics;
    const server = await serveMetrics(registry, host, port);
    role.log.info({ metricsPort: server.port, instanceId }, `${role.name}.metrics_listening`);
    metricsServer = server;
  }
  try {
    await runServices(role.services, role.onStopRequest ?? ((stop) => stopOnSignals(role.log, `${role.name}.stopping`, stop)));
  } finally {
    await metricsServer?.close();
  }
}

async function runServices(services: readonly Service[], onStopRequest: (stop: () => void) => void): Promise<void> {
  /** Started or starting; frozen once stopping (nothing starts after that). */
  const running: Service[] = [];
  let stopped: Promise<PromiseSettledResult<void>[]> | undefined;
  const stopAll = () => (stopped ??= Promise.allSettled(running.map((s) => s.stop())));
  let crash: { err: unknown } | undefined;
  onStopRequest(() => void stopAll());

  for (const service of services) {
    if (stopped !== undefined) break;
    running.push(service);
    try {
      await service.start();
    } catch (err) {
      // It did not start: stop the ones that did, then fail.
      if (stopped === undefined) running.pop();
      await stopAll();
      await Promise.allSettled(running.map((s) => s.done));
      throw err;
    }
    // Whichever ends first (a stop, or a crash) stops the others too; the first crash is the one reported.
    void service.done.then(stopAll, (err: unknown) => {
      crash ??= { err };
      void stopAll();
    });
  }

  await Promise.allSettled(running.map((s) => s.done));
  const stopFailure = (await stopAll()).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (crash !== undefined) throw crash.err;
  if (stopFailure !== undefined) throw stopFailure.reason;
}

/**
 * A service with no loop of its own (a server): `open` starts it and returns how to close it; it
 * runs until stopped.
 */
export function serviceUntilStopped(open: () => Promise<() => Promise<void>>): Service {
  let opening: Promise<() => Promise<void>> | undefined;
  let closing: Promise<void> | undefined;
  let closed!: () => void;
  const done = new Promise<void>((resolve) => { closed = resolve; });
  return {
    async start() {
      opening = open();
      await opening;
    },
    stop() {
      closing ??= (async () => {
        try {
          const close = await opening?.catch(() => undefined);
          await close?.();
        } finally {
          closed();
        }
      })();
      return closing;
    },
    done,
  };
}

/**
 * Whether `err` ends this incarnation's clients: librdkafka's fatal error or a refused
 * authorization ('fatal'), or a consumer whose membership was fenced ('rejoin' reaching this far:
 * a new incarnation is a new member, which is how it rejoins).
 */
function isFatalKafkaError(err: unknown): err is KafkaErrorLike {
  if (!isKafkaError(err)) return false;
  const action = kafkaErrorAction(err);
  return action === 'fatal' || action === 'rejoin';
}

/**
 * Runs incarnations of a service one after the other, as a consumer runner's onCrash would: a
 * fatal Kafka error ends this incarnation, not the process, and the next one (made by `create`)
 * starts over (the aggregator restores from Kafka, so nothing is lost). Any other error is a bug:
 * it ends the service (start() or done rejects).
 */
export class RestartOnFatalKafkaError implements Service {
  private current: Service | undefined;
  private stopping = false;
  private lifetime: Promise<void> | undefined;

  /** `restartEvent`: logged at each restart, with the error; `restartDelayMs`: the pause before the next incarnation. */
  constructor(
    private readonly create: () => Service,
    private readonly log: Logger,
    private readonly restartEvent: string,
    private readonly restartDelayMs = 1_000,
  ) {}

  /** Resolves once an incarnation runs (after restarts if starting failed fatally). */
  async start(): Promise<void> {
    let started!: () => void;
    const firstStart = new Promise<void>((resolve) => { started = resolve; });
    this.lifetime = this.run(started);
    await Promise.race([firstStart, this.lifetime]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // A crashed incarnation's stop() rejects with its crash: that is reported by done, not here.
    await this.current?.stop().catch(() => undefined);
    await this.lifetime?.catch(() => undefined);
  }

  get done(): Promise<void> {
    return this.lifetime ?? Promise.resolve();
  }

  private async run(started: () => void): Promise<void> {
    while (!this.stopping) {
      const incarnation = (this.current = this.create());
      try {
        await incarnation.start();
        started();
        await incarnation.done;
      } catch (err) {
        if (!isFatalKafkaError(err)) throw err;
        this.log.error({ err: err.message }, this.restartEvent);
        await incarnation.stop().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, this.restartDelayMs));
      }
    }
  }
}
