import { Command } from 'commander';
import { Aggregator, AggregatorMetrics } from '../aggregator/index.js';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../observability/index.js';
import { RestartOnFatalKafkaError, runRole } from './run-service.js';

export function aggregatorCommand(): Command {
  return new Command('aggregator')
    .description('count impressions per campaign and event-time window, exactly once (one Kafka transaction per commit interval); SIGTERM finishes the current transaction and exits')
    .action(async () => {
      const config = loadConfig();
      const log = createLogger('aggregator', config.logLevel);
      // One registry for every incarnation: the counters go on across a restart.
      const metrics = new AggregatorMetrics();
      const aggregator = new RestartOnFatalKafkaError(() => new Aggregator(config, log, metrics), log, 'aggregator.fatal_kafka_error_restarting');
      await runRole({
        name: 'aggregator',
        log,
        services: [aggregator],
        metrics: { registry: metrics.registry, host: config.http.host, port: config.metricsPort, instanceId: config.instanceId },
      });
    });
}
