/**
 * The real local stack (Kafka and ClickHouse) for a test run: started on first use (or taken from
 * KAFKA_BROKERS / CLICKHOUSE_URL), and at the end only what this run started is stopped.
 */
import { loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { stackDown, stackUp } from '../../server/src/stack/index.js';

let stackReady: Promise<{ startedKafka: boolean; startedClickHouse: boolean }> | undefined;

const log = (m: string) => process.stderr.write(`      [stack] ${m}\n`);

/** Brings the stack up once per mocha run. */
export async function useStack(): Promise<TallyConfig> {
  const config = loadConfig();
  stackReady ??= stackUp(config, log);
  await stackReady;
  return config;
}

/** Stops the servers useStack started (none with TALLY_KEEP_STACK=1, for the next run). */
export async function stopStartedStack(): Promise<void> {
  if (!stackReady) return;
  const started = await stackReady.catch(() => ({ startedKafka: false, startedClickHouse: false }));
  stackReady = undefined;
  if (process.env.TALLY_KEEP_STACK === '1') return;
  await stackDown(loadConfig(), log, { kafka: started.startedKafka, clickhouse: started.startedClickHouse });
}
