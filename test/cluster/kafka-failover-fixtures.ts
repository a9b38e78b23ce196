/**
 * Steady traffic for the cluster tests, each source with its ground truth: the generator in rate
 * mode, run after run until stopped; an HTTP ingest client and kcat, each retrying a batch until
 * it is acknowledged (at-least-once clients: their retries reach Kafka as duplicates).
 */
import { spawn } from 'node:child_process';
import type { TallyConfig } from '../../server/src/config/index.js';
import { ensureDebianPackage } from '../../server/src/stack/index.js';
import { generate, mergeTruth, readTopicToEnd, type GroundTruth } from '../../server/src/tools/index.js';
import { truthOf, type HandEvent } from '../kit/hand-events.js';
import { sleep } from '../kit/waiting.js';

/** `tally generate --rate` run after run (each a few seconds, its own id prefix and seed) until stopped. */
export class GeneratedTraffic {
  private truth: GroundTruth | undefined;
  private runs = 0;
  private stopping = false;
  private readonly loop: Promise<void>;

  constructor(private readonly config: TallyConfig, private readonly opts: { prefix: string; seed: number; rate: number; runS: number }) {
    this.loop = this.run();
    this.loop.catch(() => undefined); // reported by stop()
  }

  /** Lets the run in progress finish; the truth of every run. */
  async stop(): Promise<GroundTruth> {
    this.stopping = true;
    await this.loop;
    if (this.truth === undefined) throw new Error('the generator finished no run');
    return this.truth;
  }

  get completedRuns(): number {
    return this.runs;
  }

  private async run(): Promise<void> {
    const { prefix, seed, rate, runS } = this.opts;
    while (!this.stopping) {
      const truth = await generate(this.config, {
        seed: seed + this.runs, idPrefix: `${prefix}${this.runs}-`, rate, durationS: runS,
        // Duplicates and malformed records all along; no late tail (it would wait for watermarks).
        duplicates: 0.1, bad: 5, lateWithinHorizon: 0, tooLate: 0,
      });
      this.truth = this.truth === undefined ? truth : mergeTruth(this.truth, truth);
      this.runs++;
    }
  }
}

export interface ClientStats {
  /** Delivery attempts (HTTP requests, kcat runs). */
  requests: number;
  /** Attempts that failed, each retried. */
  retried: number;
  /** The longest a batch took from its first try to its acknowledgement. */
  longestAcceptMs: number;
}

/**
 * A client sending a batch of fresh events every `everyMs`, each batch retried as it was until it
 * is acknowledged (an at-least-once client: its retries reach Kafka as duplicates).
 */
abstract class ClientTraffic {
  readonly events: HandEvent[] = [];
  readonly stats: ClientStats = { requests: 0, retried: 0, longestAcceptMs: 0 };
  private nextId = 0;
  private stopping = false;
  private loop: Promise<void> | undefined;

  constructor(readonly prefix: string, private readonly opts: { perBatch: number; everyMs: number }) {}

  /** Starts sending (not in the constructor: a subclass's fields are set only after it). */
  protected begin(): this {
    this.loop = this.run();
    this.loop.catch(() => undefined); // reported by stop()
    return this;
  }

  /** Waits until the batch in flight is acknowledged; rejects if one was refused for good. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  /** What the pipeline must show for every acknowledged event, and the copies of them found on the topic. */
  async truth(config: TallyConfig): Promise<GroundTruth> {
    let onTopic = 0;
    await readTopicToEnd(config.kafka.brokers, config.topics.impressions, (m) => {
      if (m.key?.toString().startsWith(this.prefix)) onTopic++;
    }, { timeoutMs: 60_000, isolation: 'read_uncommitted' });
    return truthOf(config, this.prefix, this.events, onTopic - this.events.length);
  }

  /** One attempt: true once the whole batch is acknowledged, false to retry; throws when refused for good. */
  protected abstract attempt(batch: HandEvent[]): Promise<boolean>;

  private async run(): Promise<void> {
    while (!this.stopping) {
      const batch = Array.from({ length: this.opts.perBatch }, () => this.nextEvent());
      const first = Date.now();
      for (;;) {
        this.stats.requests++;
        if (await this.attempt(batch)) break;
        this.stats.retried++;
        await sleep(250); // the client's backoff
      }
      this.stats.longestAcceptMs = Math.max(this.stats.longestAcceptMs, Date.now() - first);
      this.events.push(...batch);
      await sleep(this.opts.everyMs); // pacing the client
    }
  }

  private nextEvent(): HandEvent {
    const n = this.nextId++;
    const advertiser = `${this.prefix}adv-${1 + (n % 2)}`;
    return { impression_id: `${this.prefix}${n}`, ts: Date.now(), advertiser_id: advertiser, campaign_id: `${advertiser}-cmp-${1 + (n % 3)}`, cost_micros: 100 + (n % 997) };
  }
}

/** POSTs each batch to the ingest API until it answers 202 (the same body: a client that knows its events' ids retries them as they were). */
export class IngestTraffic extends ClientTraffic {
  constructor(private readonly base: string, private readonly token: string, prefix: string, opts = { perBatch: 25, everyMs: 200 }) {
    super(prefix, opts);
    this.begin();
  }

  protected async attempt(batch: HandEvent[]): Promise<boolean> {
    const status = await fetch(`${this.base}/api/v1/impressions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(batch),
      signal: AbortSignal.timeout(30_000),
    }).then(async (res) => {
      await res.arrayBuffer();
      return res.status;
    }, () => 0);
    if (status !== 0 && status !== 429 && status !== 202 && status < 500) throw new Error(`POST /api/v1/impressions answered ${status}`);
    return status === 202;
  }
}

/**
 * Produces each batch with kcat, another client than tally's: librdkafka's default partitioner
 * (not Java's murmur2, so most records land off their home partition), acks=all, idempotent; a
 * kcat run that could not deliver everything within its timeout is run again with the same batch.
 */
export class KcatTraffic extends ClientTraffic {
  constructor(private readonly config: TallyConfig, prefix: string, opts = { perBatch: 50, everyMs: 250 }) {
    super(prefix, opts);
    ensureDebianPackage('kcat', 'kcat', () => undefined);
    this.begin();
  }

  protected attempt(batch: HandEvent[]): Promise<boolean> {
    const input = batch.map((e) => `${e.impression_id}\t${JSON.stringify(e)}\n`).join('');
    return new Promise((resolve) => {
      const kcat = spawn('kcat', ['-P', '-b', this.config.kafka.brokers, '-t', this.config.topics.impressions, '-K', '\t',
        '-X', 'acks=all', '-X', 'enable.idempotence=true', '-X', 'message.timeout.ms=60000'], { stdio: ['pipe', 'ignore', 'ignore'] });
      kcat.on('error', () => resolve(false));
      kcat.on('exit', (code) => resolve(code === 0));
      kcat.stdin.end(input);
    });
  }
}
