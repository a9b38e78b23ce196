/** One test's own corner of the stack: fresh topics (by prefix) and a fresh, migrated ClickHouse database. */
import crypto from 'node:crypto';
import { dropDatabase, migrateServers } from '../../server/src/clickhouse/index.js';
import { loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { deleteTopics, ensureTopics } from '../../server/src/kafka/index.js';
import { useStack } from './stack.js';

export interface Sandbox {
  /** Environment for child processes: the base env plus this sandbox's topics and database. */
  env: NodeJS.ProcessEnv;
  config: TallyConfig;
  cleanup(): Promise<void>;
}

/**
 * Fresh topics (by prefix) and a fresh ClickHouse database for one test, migrated.
 * `overrides` are extra environment variables (window size, partitions, …).
 */
export async function createSandbox(name: string, overrides: Record<string, string> = {}): Promise<Sandbox> {
  await useStack();
  const id = `${name.replace(/[^a-z0-9]/gi, '').toLowerCase().slice(0, 20)}_${crypto.randomBytes(3).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TALLY_TOPIC_PREFIX: `t-${id}.`,
    TALLY_CLICKHOUSE_DATABASE: `t_${id}`,
    // Tests read the roles' logs as JSON lines, whatever the shell exports.
    LOG_FORMAT: 'json',
    ...overrides,
  };
  const config = loadConfig(env);
  await ensureTopics(config);
  await migrateServers(config);
  return {
    env,
    config,
    async cleanup() {
      if (process.env.TALLY_KEEP_SANDBOX === '1') return;
      // Only this sandbox's own topics: an input given by TALLY_IMPRESSIONS_TOPIC is shared.
      const own = Object.values(config.topics).filter((t) => t.startsWith(`t-${id}.`));
      await deleteTopics(config.kafka.brokers, own).catch(() => undefined);
      await dropDatabase(config);
    },
  };
}
