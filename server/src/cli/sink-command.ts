import { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { createLogger, serveMetrics } from '../observability/index.js';
import { ClickHouseSink, DeadLetterSink } from '../sink/index.js';
import { stopOnSignals } from './stop-signals.js';

export function sinkCommand(): Command {
  return new Command('sink')
    .description('copy impression-counts (read_committed) into ClickHouse in batches, committing offsets only after ClickHouse acknowledged (and impressions-dlq into dead_letters); SIGTERM flushes the current batch and exits')
    .action(async () => {
      const config = loadConfig();
      const log = createLogger('sink', config.logLevel);
      const sink = new ClickHouseSink(config, log);
      // impressions-dlq → ClickHouse dead_letters, in the same process (own group, own commits).
      const dlqSink = new DeadLetterSink(config, log.child({ component: 'dlq-sink' }));
      const metrics = await serveMetrics(sink.metrics.registry, config.http.host, config.metricsPort);
      log.info({ metricsPort: metrics.port, instanceId: config.instanceId }, 'sink.metrics_listening');
      stopOnSignals(log, 'sink.stopping', () => {
        void sink.stop();
        void dlqSink.stop();
      });
      try {
        await sink.start();
        await dlqSink.start().catch(async (err: unknown) => {
          await sink.stop();
          throw err;
        });
        // Either loop ending (a stop, or a fatal Kafka error) stops the other one too.
        await Promise.race([sink.done, dlqSink.done]).finally(() => Promise.all([sink.stop(), dlqSink.stop()]));
        await Promise.all([sink.done, dlqSink.done]);
      } finally {
        await metrics.close();
      }
    });
}
