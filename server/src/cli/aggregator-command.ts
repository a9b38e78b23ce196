import cluster from 'node:cluster';
import { Command } from 'commander';
import { Aggregator, AggregatorMetrics } from '../aggregator/index.js';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../observability/index.js';
import { RestartOnFatalKafkaError, runRole } from './run-service.js';
import { joinStreamThreads, runStreamThreads, streamThreadIndex } from './stream-threads.js';

export function aggregatorCommand(): Command {
  return new Command('aggregator')
    .description('count impressions per campaign and event-time window, exactly once (one Kafka transaction per commit interval); TALLY_STREAM_THREADS workers; SIGTERM finishes the current transaction and exits')
    .action(async () => {
      const config = loadConfig();
      const log = createLogger('aggregator', config.logLevel);
      if (config.streamThreads > 1 && cluster.isPrimary) return runStreamThreads(config, log);
      const thread = streamThreadIndex();
      const threadLog = thread === undefined ? log : log.child({ thread });
      // One registry for every incarnation: the counters go on across a restart.
      const metrics = new AggregatorMetrics();
      if (thread !== undefined) joinStreamThreads(metrics.registry);
      const aggregator = new RestartOnFatalKafkaError(() => new Aggregator(config, threadLog, metrics), threadLog, 'aggregator.fatal_kafka_error_restarting');
      try {
        await runRole({
          name: 'aggregator',
          log: threadLog,
          services: [aggregator],
          // A stream thread's metrics are served by the primary.
          ...(thread === undefined ? { metrics: { registry: metrics.registry, host: config.http.host, port: config.metricsPort, instanceId: config.instanceId } } : {}),
        });
      } finally {
        // A stream thread's channel to the primary would keep it alive after its aggregator ended.
        if (thread !== undefined) process.disconnect();
      }
    });
}
