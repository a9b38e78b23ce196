import { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../observability/index.js';
import { ClickHouseSink, DeadLetterSink } from '../sink/index.js';
import { runRole } from './run-service.js';

export function sinkCommand(): Command {
  return new Command('sink')
    .description('copy impression-counts (read_committed) into ClickHouse in batches, committing offsets only after ClickHouse acknowledged (and impressions-dlq into dead_letters); SIGTERM flushes the current batch and exits')
    .action(async () => {
      const config = loadConfig();
      const log = createLogger('sink', config.logLevel);
      const sink = new ClickHouseSink(config, log);
      // impressions-dlq → ClickHouse dead_letters, in the same process (own group, own commits).
      // Either loop ending (a stop, or a fatal Kafka error) stops the other one too.
      const dlqSink = new DeadLetterSink(config, log.child({ component: 'dlq-sink' }));
      await runRole({
        name: 'sink',
        log,
        services: [sink, dlqSink],
        metrics: { registry: sink.metrics.registry, host: config.http.host, port: config.metricsPort, instanceId: config.instanceId },
      });
    });
}
