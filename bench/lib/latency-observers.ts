/**
 * The three observers of bench/latency.ts, each recording into the Tracker the moment it first
 * holds an event:
 *   - committed: a read_committed consumer of impression-counts (fetch.wait.max.ms 10);
 *   - clickhouse: `impression_counts FINAL`, polled every CLICKHOUSE_POLL_MS;
 *   - socket.io: an admin live-feed client (the dashboard's protocol).
 */
import { performance } from 'node:perf_hooks';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import Kafka from 'node-rdkafka';
import { io, type Socket } from 'socket.io-client';
import { identifier, queryRows } from '../../server/src/clickhouse/index.js';
import type { TallyConfig } from '../../server/src/config/index.js';
import { checkCountRecord } from '../../server/src/contracts/count-record.js';
import type { ClientToServerEvents, LiveWindowRow, ServerToClientEvents } from '../../server/src/contracts/live-protocol.js';
import { sleep } from '../../test/kit/waiting.js';
import { CLICKHOUSE, COMMITTED, SOCKETIO, type Tracker } from './latency-tracker.js';

export const CLICKHOUSE_POLL_MS = 50;

export interface Observer {
  /** What went wrong while observing (errors, a lost connection), for the result's note. */
  problems(): string[];
  stop(): Promise<void>;
}

/** Observer 1: every row version committed to impression-counts, as a read_committed consumer receives it. */
export async function observeCommitted(config: TallyConfig, groupId: string, tracker: Tracker): Promise<Observer> {
  const consumer = new Kafka.KafkaConsumer({
    'metadata.broker.list': config.kafka.brokers,
    'group.id': groupId,
    'enable.auto.commit': false,
    'enable.auto.offset.store': false,
    'isolation.level': 'read_committed',
    'fetch.wait.max.ms': 10,
    log_level: 3,
  }, { 'auto.offset.reset': 'earliest' });
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
  consumer.assign(Array.from({ length: config.partitions }, (_, partition) => ({ topic: config.topics.counts, partition, offset: -2 })));
  consumer.setDefaultConsumeTimeout(10);
  let stopping = false;
  let consumeErrors = 0;
  const loop = (async () => {
    while (!stopping) {
      const msgs = await new Promise<Kafka.Message[]>((resolve) => consumer.consume(1000, (err, m) => {
        if (err) consumeErrors++;
        resolve(err ? [] : m);
      }));
      const at = performance.now();
      for (const m of msgs) {
        const c = checkCountRecord(m.value);
        if (c.kind !== 'window') continue;
        const r = c.record;
        const written = m.timestamp === undefined ? undefined : m.timestamp - performance.timeOrigin;
        tracker.observe(COMMITTED, `${r.window_start}|${r.advertiser_id}|${r.campaign_id}|${r.source_partition}`, r.impressions, at, written);
      }
      // Pacing: once consume has failed, an empty answer may come back at once; do not spin on it.
      if (msgs.length === 0 && consumeErrors > 0) await sleep(10);
    }
  })();
  return {
    problems: () => (consumeErrors > 0 ? [`${consumeErrors} consume errors on the committed observer`] : []),
    async stop() {
      stopping = true;
      await loop;
      await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
    },
  };
}

export interface ClickHouseObserver extends Observer {
  /** "N polls, mean query M ms", for the note. */
  pollStats(): string;
}

/** Observer 2: the rows `impression_counts FINAL` returns, polled every CLICKHOUSE_POLL_MS. */
export function observeClickHouse(ch: ClickHouseClient, database: string, tracker: Tracker): ClickHouseObserver {
  const sql = `SELECT toUnixTimestamp(window_start) * 1000 AS ws, advertiser_id, campaign_id, source_partition, impressions FROM ${identifier(database)}.impression_counts FINAL`;
  let stopping = false;
  let polls = 0;
  let pollMs = 0;
  let pollErrors = 0;
  const loop = (async () => {
    while (!stopping) {
      const t0 = performance.now();
      try {
        const rows = await queryRows<{ ws: number | string; advertiser_id: string; campaign_id: string; source_partition: number | string; impressions: number | string }>(ch, sql);
        const at = performance.now();
        polls++;
        pollMs += at - t0;
        for (const r of rows) tracker.observe(CLICKHOUSE, `${Number(r.ws)}|${r.advertiser_id}|${r.campaign_id}|${Number(r.source_partition)}`, Number(r.impressions), at);
      } catch {
        pollErrors++;
      }
      await sleep(Math.max(0, CLICKHOUSE_POLL_MS - (performance.now() - t0)));
    }
  })();
  return {
    pollStats: () => `${polls} polls, mean query ${polls ? (pollMs / polls).toFixed(1) : '-'} ms`,
    problems: () => (pollErrors > 0 ? [`${pollErrors} failed ClickHouse polls`] : []),
    async stop() {
      stopping = true;
      await loop;
    },
  };
}

export interface LiveObserver extends Observer {
  readonly snapshots: number;
  readonly updates: number;
  /** The message of the last connect_error, if any. */
  readonly connectError: string | undefined;
}

/** Observer 3: a socket.io live-feed client in the admin (all advertisers) view; `token` must be an admin's. */
export function observeLiveFeed(base: string, token: string, tracker: Tracker): LiveObserver {
  const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(base, { path: '/socket.io', auth: { token }, reconnection: false, transports: ['websocket'] });
  let stopping = false;
  let snapshots = 0;
  let updates = 0;
  let disconnected: string | undefined;
  let connectError: string | undefined;
  const onLiveRows = (rows: LiveWindowRow[]) => {
    const at = performance.now();
    for (const r of rows) {
      // Each campaign has one source partition (see RowLayout): its total is that row's count.
      const p = tracker.layout.partitionOf(r.campaignId);
      if (p === undefined) tracker.unknownRows[SOCKETIO]++;
      else tracker.observe(SOCKETIO, `${r.windowStart}|${r.advertiserId}|${r.campaignId}|${p}`, r.impressions, at);
    }
  };
  socket.on('snapshot', (s) => { snapshots++; onLiveRows(s.rows); });
  socket.on('update', (u) => { updates++; onLiveRows(u.rows); });
  socket.on('disconnect', (reason) => { if (!stopping) disconnected = reason; });
  socket.on('connect_error', (e) => { connectError = e.message; });
  return {
    get snapshots() { return snapshots; },
    get updates() { return updates; },
    get connectError() { return connectError; },
    problems: () => (disconnected ? [`socket.io client disconnected: ${disconnected}`] : []),
    async stop() {
      stopping = true;
      socket.close();
    },
  };
}
