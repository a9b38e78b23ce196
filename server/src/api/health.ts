import type { ClickHouseClient } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import { fetchMetadata } from '../kafka/index.js';

export interface Readiness {
  ready: boolean;
  kafka: boolean;
  clickhouse: boolean;
}

/** How long a readiness answer is reused: probes hammering /readyz cost one check per second. */
const CACHE_MS = 1000;
const PROBE_TIMEOUT_MS = 3000;

/**
 * /readyz: Kafka answers a metadata request and ClickHouse answers a ping, each within 3 s.
 * One check at a time; its answer is reused for a second.
 */
export function readinessCheck(config: TallyConfig, ch: ClickHouseClient): () => Promise<Readiness> {
  let cached: { at: number; value: Readiness } | undefined;
  let inflight: Promise<Readiness> | undefined;
  const check = async (): Promise<Readiness> => {
    const [kafka, clickhouse] = await Promise.all([
      fetchMetadata(config.kafka.brokers, PROBE_TIMEOUT_MS).then(() => true, () => false),
      withTimeout(ch.ping().then((r) => r.success, () => false), PROBE_TIMEOUT_MS, false),
    ]);
    return { ready: kafka && clickhouse, kafka, clickhouse };
  };
  return () => {
    if (cached !== undefined && Date.now() - cached.at < CACHE_MS) return Promise.resolve(cached.value);
    inflight ??= check().then((value) => {
      cached = { at: Date.now(), value };
      inflight = undefined;
      return value;
    });
    return inflight;
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    }, () => {
      clearTimeout(timer);
      resolve(fallback);
    });
  });
}
