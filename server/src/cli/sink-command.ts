import { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { createLogger, serveMetrics } from '../observability/index.js';
import { ClickHouseSink } from '../sink/index.js';

export function sinkCommand(): Command {
  return new Command('sink')
    .description('copy impression-counts (read_committed) into ClickHouse in batches, committing offsets only after ClickHouse acknowledged; SIGTERM flushes the current batch and exits')
    .action(async () => {
      const config = loadConfig();
      const log = createLogger('sink', config.logLevel);
      const sink = new ClickHouseSink(config, log);
      const metrics = await serveMetrics(sink.metrics.registry, config.http.host, config.metricsPort);
      log.info({ metricsPort: metrics.port, instanceId: config.instanceId }, 'sink.metrics_listening');
      let signals = 0;
      const onSignal = (sig: string) => {
        signals++;
        log.info({ signal: sig }, 'sink.stopping');
        if (signals > 1) process.exit(130);
        void sink.stop();
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
      try {
        await sink.start();
        await sink.done;
      } finally {
        await metrics.close();
      }
    });
}
