/**
 * Steady traffic for the cluster failover test, each source with its ground truth: the generator
 * in rate mode, run after run until stopped, and an HTTP ingest client that retries a batch until
 * the API accepts it (an at-least-once client: its retries reach Kafka as duplicates).
 */
import type { TallyConfig } from '../../server/src/config/index.js';
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

export interface IngestStats {
  requests: number;
  /** Answers other than 202 and requests that failed, each retried. */
  retried: number;
  /** The longest a batch took from its first try to its 202. */
  longestAcceptMs: number;
}

/** POSTs a batch of fresh events every `everyMs`, each batch retried until the API answers 202. */
export class IngestTraffic {
  readonly events: HandEvent[] = [];
  readonly stats: IngestStats = { requests: 0, retried: 0, longestAcceptMs: 0 };
  private nextId = 0;
  private stopping = false;
  private readonly loop: Promise<void>;

  constructor(private readonly base: string, private readonly token: string, readonly prefix: string, private readonly opts = { perRequest: 25, everyMs: 200 }) {
    this.loop = this.run();
    this.loop.catch(() => undefined); // reported by stop()
  }

  /** Waits until the batch in flight is accepted; rejects if a request was refused for good (a 4xx). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  /** What the pipeline must show for every accepted event, and the copies of them found on the topic. */
  async truth(config: TallyConfig): Promise<GroundTruth> {
    let onTopic = 0;
    await readTopicToEnd(config.kafka.brokers, config.topics.impressions, (m) => {
      if (m.key?.toString().startsWith(this.prefix)) onTopic++;
    }, { timeoutMs: 60_000, isolation: 'read_uncommitted' });
    return truthOf(config, this.prefix, this.events, onTopic - this.events.length);
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const batch = Array.from({ length: this.opts.perRequest }, () => this.nextEvent());
      await this.deliver(batch);
      this.events.push(...batch);
      await sleep(this.opts.everyMs); // pacing the client
    }
  }

  private nextEvent(): HandEvent {
    const n = this.nextId++;
    const advertiser = `${this.prefix}adv-${1 + (n % 2)}`;
    return { impression_id: `${this.prefix}${n}`, ts: Date.now(), advertiser_id: advertiser, campaign_id: `${advertiser}-cmp-${1 + (n % 3)}`, cost_micros: 100 + (n % 997) };
  }

  /** The same body until it is accepted: a client that knows its events' ids retries them as they were. */
  private async deliver(batch: HandEvent[]): Promise<void> {
    const body = JSON.stringify(batch);
    const first = Date.now();
    for (;;) {
      this.stats.requests++;
      const status = await fetch(`${this.base}/api/v1/impressions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(30_000),
      }).then(async (res) => {
        await res.arrayBuffer();
        return res.status;
      }, () => 0);
      if (status === 202) break;
      if (status !== 0 && status !== 429 && status < 500) throw new Error(`POST /api/v1/impressions answered ${status}`);
      this.stats.retried++;
      await sleep(250); // the client's backoff
    }
    this.stats.longestAcceptMs = Math.max(this.stats.longestAcceptMs, Date.now() - first);
  }
}
