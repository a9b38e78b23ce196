import assert from 'node:assert/strict';
import Kafka from 'node-rdkafka';
import { Registry } from 'prom-client';
import { RestartOnFatalKafkaError, runRole, serviceUntilStopped, type RoleOptions, type Service } from '../../server/src/cli/run-service.js';
import { kafkaError } from '../../server/src/errors/index.js';
import { createLogger, type Logger } from '../../server/src/observability/index.js';

const E = Kafka.CODES.ERRORS;

/** A service that records what is done to it in a shared journal, and ends when stopped or told to. */
class FakeService implements Service {
  readonly done: Promise<void>;
  private end!: (err?: unknown) => void;

  constructor(readonly name: string, private readonly journal: string[], private readonly startWith: () => Promise<void> = async () => undefined) {
    this.done = new Promise<void>((resolve, reject) => {
      this.end = (err?: unknown) => (err === undefined ? resolve() : reject(err));
    });
  }

  async start(): Promise<void> {
    this.journal.push(`${this.name} start`);
    await this.startWith();
    this.journal.push(`${this.name} started`);
  }

  async stop(): Promise<void> {
    this.journal.push(`${this.name} stop`);
    this.end();
    await this.done.catch(() => undefined);
  }

  /** Its loop ends on its own: cleanly, or with `err`. */
  finish(err?: unknown): void {
    this.end(err);
  }
}

/** A logger whose lines (parsed) land in `lines`. */
function capturingLogger(lines: Array<Record<string, unknown>>): Logger {
  return createLogger('test', 'info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
}

/** runRole with a stop request the test makes by calling `requestStop()`. */
function role(services: Service[], extra: Partial<RoleOptions> = {}): { run: Promise<void>; requestStop: () => void } {
  let requestStop: () => void = () => assert.fail('runRole did not register for stop requests');
  const run = runRole({ name: 'test', log: capturingLogger([]), services, onStopRequest: (stop) => { requestStop = stop; }, ...extra });
  return { run, requestStop: () => requestStop() };
}

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const fatalKafkaError = () => kafkaError('consume', { message: 'Local: Fatal error', code: E.ERR__FATAL, isFatal: true });

describe('runRole', function () {
  this.timeout(5_000); // a service left running hangs the role: fail soon
  it('starts the services one after the other, and a stop request stops them all', async () => {
    const journal: string[] = [];
    const a = new FakeService('a', journal);
    const b = new FakeService('b', journal);
    const { run, requestStop } = role([a, b]);
    await settle();
    assert.deepEqual(journal, ['a start', 'a started', 'b start', 'b started']);
    requestStop();
    await run;
    assert.deepEqual(journal.slice(4).sort(), ['a stop', 'b stop']);
  });

  it('a service that fails to start stops the ones already started, and the role fails with its error', async () => {
    const journal: string[] = [];
    const a = new FakeService('a', journal);
    const b = new FakeService('b', journal, () => Promise.reject(new Error('connect refused')));
    const c = new FakeService('c', journal);
    await assert.rejects(role([a, b, c]).run, /connect refused/);
    assert.deepEqual(journal, ['a start', 'a started', 'b start', 'a stop']);
  });

  it('one service ending stops the others', async () => {
    const journal: string[] = [];
    const a = new FakeService('a', journal);
    const b = new FakeService('b', journal);
    const { run } = role([a, b]);
    await settle();
    b.finish();
    await run;
    assert.deepEqual(journal.slice(4).sort(), ['a stop', 'b stop']);
  });

  it('a crash stops the others, and the role fails with it', async () => {
    const journal: string[] = [];
    const a = new FakeService('a', journal);
    const b = new FakeService('b', journal);
    const { run } = role([a, b]);
    await settle();
    const crash = new TypeError('x is undefined');
    a.finish(crash);
    await assert.rejects(run, (err) => err === crash);
    assert.ok(journal.includes('b stop'), journal.join(', '));
  });

  it('a stop request during a start stops that service once started; the later ones never start', async () => {
    const journal: string[] = [];
    let letStart!: () => void;
    const a = new FakeService('a', journal, () => new Promise((resolve) => { letStart = resolve; }));
    const b = new FakeService('b', journal);
    const { run, requestStop } = role([a, b]);
    await settle();
    requestStop();
    letStart();
    await run;
    assert.deepEqual(journal, ['a start', 'a stop', 'a started']);
  });

  it('serves the metrics while it runs, announced as <role>.metrics_listening, and closes them after', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const registry = new Registry();
    const service = new FakeService('a', []);
    const { run, requestStop } = role([service], { log: capturingLogger(lines), metrics: { registry, host: '127.0.0.1', port: 0, instanceId: 'i-1' } });
    await settle();
    const listening = lines.find((l) => l.msg === 'test.metrics_listening');
    assert.equal(listening?.instanceId, 'i-1');
    const url = `http://127.0.0.1:${listening?.metricsPort as number}/metrics`;
    assert.equal((await fetch(url)).status, 200);
    requestStop();
    await run;
    await assert.rejects(fetch(url), 'the metrics server is closed');
  });
});

describe('serviceUntilStopped', function () {
  this.timeout(5_000); // a service left running hangs the role: fail soon
  it('runs until stopped; a stop during the start closes it once open', async () => {
    const journal: string[] = [];
    let letOpen!: () => void;
    const server = serviceUntilStopped(async () => {
      await new Promise<void>((resolve) => { letOpen = resolve; });
      journal.push('open');
      return async () => { journal.push('close'); };
    });
    const starting = server.start();
    await settle();
    const stopping = server.stop();
    letOpen();
    await Promise.all([starting, stopping, server.done]);
    assert.deepEqual(journal, ['open', 'close']);
  });
});

describe('RestartOnFatalKafkaError', function () {
  this.timeout(5_000); // a service left running hangs the role: fail soon
  /** A RestartOnFatalKafkaError over FakeServices; `created` resolves when the next incarnation is made. */
  function restarting(opts: { lines?: Array<Record<string, unknown>>; firstStartFails?: unknown } = {}) {
    const incarnations: FakeService[] = [];
    let onCreate: () => void = () => undefined;
    const service = new RestartOnFatalKafkaError(() => {
      const failing = incarnations.length === 0 && opts.firstStartFails !== undefined;
      const s = new FakeService(`#${incarnations.length + 1}`, [], failing ? () => Promise.reject(opts.firstStartFails) : undefined);
      incarnations.push(s);
      onCreate();
      return s;
    }, capturingLogger(opts.lines ?? []), 'test.fatal_kafka_error_restarting', 0);
    const created = () => new Promise<void>((resolve) => { onCreate = resolve; });
    return { service, incarnations, created };
  }

  it('a fatal Kafka error ends the incarnation, not the service: a new one starts', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const { service, incarnations, created } = restarting({ lines });
    const { run, requestStop } = role([service]);
    await settle();
    const second = created();
    incarnations[0].finish(fatalKafkaError());
    await second;
    assert.deepEqual(lines.map((l) => l.msg), ['test.fatal_kafka_error_restarting']);
    requestStop();
    await run;
    assert.equal(incarnations.length, 2, 'and no third one');
  });

  it('a fenced membership reaching the role (rejoin) starts a new incarnation too: a new member rejoins', async () => {
    const { service, incarnations, created } = restarting();
    const { run, requestStop } = role([service]);
    await settle();
    const second = created();
    incarnations[0].finish(kafkaError('consume', { message: 'Broker: Static consumer fenced by other consumer with same group.instance.id', code: E.ERR_FENCED_INSTANCE_ID, isFatal: true }));
    await second;
    requestStop();
    await run;
    assert.equal(incarnations.length, 2);
  });

  it('a fatal Kafka error while starting is restarted too', async () => {
    const { service, incarnations } = restarting({ firstStartFails: fatalKafkaError() });
    await service.start();
    assert.equal(incarnations.length, 2);
    await service.stop();
    await service.done;
  });

  it('any other error (a bug, or a Kafka error that is not fatal) ends the service', async () => {
    for (const err of [new TypeError('x is undefined'), kafkaError('consume', { message: 'Local: Broker transport failure', code: E.ERR__TRANSPORT, isRetriable: true })]) {
      const { service, incarnations } = restarting();
      const { run } = role([service]);
      await settle();
      incarnations[0].finish(err);
      await assert.rejects(run, (e) => e === err);
      assert.equal(incarnations.length, 1);
    }
  });

  it('a start failing for any other reason fails the start', async () => {
    const { service, incarnations } = restarting({ firstStartFails: new Error('topic impressions has 4 partitions, not 8') });
    await assert.rejects(service.start(), /4 partitions/);
    assert.equal(incarnations.length, 1);
  });
});
