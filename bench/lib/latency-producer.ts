/**
 * The events of bench/latency.ts: fresh ids, stamped now, valid and on time, each produced to its
 * home partition with a campaign of that partition (RowLayout), and recorded in the Tracker.
 * The producer is idempotent (so retries never reorder a partition), acks=all, linger.ms 5, and
 * keys each event by its id (what the default partitioner does).
 */
import { performance } from 'node:perf_hooks';
import Kafka from 'node-rdkafka';
import { homePartition } from '../../server/src/impression/index.js';
import type { Tracker } from './latency-tracker.js';

const COST_MICROS = 1_000;

export class LatencyProducer {
  /** Index of the next event (= events produced so far). */
  next = 0;
  private delivered = 0;
  private deliveryErrors = 0;
  private firstDeliveryError: string | undefined;
  /** Per partition, the count of its events so far: they take its campaigns in turn. */
  private readonly nextJ: Int32Array;

  private constructor(
    private readonly producer: Kafka.Producer, private readonly topic: string, private readonly run: string,
    private readonly windowMs: number, private readonly tracker: Tracker,
  ) {
    this.nextJ = new Int32Array(tracker.layout.partitions);
    producer.on('delivery-report', (err) => {
      if (err) {
        this.deliveryErrors++;
        this.firstDeliveryError ??= err.message;
      } else this.delivered++;
    });
  }

  static async connect(brokers: string, topic: string, run: string, windowMs: number, tracker: Tracker): Promise<LatencyProducer> {
    const producer = new Kafka.Producer({
      'metadata.broker.list': brokers,
      'enable.idempotence': true,
      'linger.ms': 5,
      'batch.num.messages': 10_000,
      'queue.buffering.max.messages': 1_000_000,
      dr_cb: true,
      log_level: 3,
    }, { 'request.required.acks': -1 });
    const p = new LatencyProducer(producer, topic, run, windowMs, tracker);
    await new Promise<void>((resolve, reject) => producer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    producer.setPollInterval(20);
    return p;
  }

  /** Produces event `next`; false if librdkafka's queue is full (try again next tick). */
  produceNext(): boolean {
    const { layout } = this.tracker;
    const i = this.next;
    const id = `lat-${this.run}-${i}`;
    const p = homePartition(id, layout.partitions);
    const j = this.nextJ[p] % layout.campaignsPerPartition;
    const ts = Date.now();
    const row = this.tracker.row(ts - (ts % this.windowMs), p, j);
    const value = Buffer.from(`{"impression_id":"${id}","ts":${ts},"advertiser_id":"${layout.advertiser(j)}","campaign_id":"${layout.campaign(p, j)}","cost_micros":${COST_MICROS}}`);
    this.tracker.sentAt[i] = performance.now();
    try {
      this.producer.produce(this.topic, p, value, id, ts);
    } catch (err) {
      if ((err as { code?: number }).code === Kafka.CODES.ERRORS.ERR__QUEUE_FULL) return false;
      throw err;
    }
    this.nextJ[p]++;
    row.push(i);
    this.next++;
    return true;
  }

  /** "delivered N/M", for the note. */
  deliveryStats(): string {
    return `delivered ${this.delivered}/${this.next}`;
  }

  problems(): string[] {
    return this.deliveryErrors > 0 ? [`${this.deliveryErrors} delivery errors (first: ${this.firstDeliveryError})`] : [];
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => this.producer.flush(10_000, () => this.producer.disconnect(() => resolve())));
  }
}
