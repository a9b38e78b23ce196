import { Command } from 'commander';
import { Aggregator } from '../aggregator/index.js';
import { loadConfig } from '../config/index.js';
import { createLogger, serveMetrics } from '../observability/index.js';

export function aggregatorCommand(): Command {
  return new Command('aggregator')
    .description('count impressions per campaign and event-time window, exactly once (one Kafka transaction per commit interval); SIGTERM finishes the current transaction and exits')
    .action(async () => {
      const config = loadConfig();
      const log = createLogger('aggregator', config.logLevel);
      const aggregator = new Aggregator(config, log);
      const metrics = await serveMetrics(aggregator.metrics.registry, config.http.host, config.metricsPort);
      log.info({ metricsPort: metrics.port, instanceId: config.instanceId }, 'aggregator.metrics_listening');
      let signals = 0;
      const onSignal = (sig: string) => {
        signals++;
        log.info({ signal: sig }, 'aggregator.stopping');
        if (signals > 1) process.exit(130);
        void aggregator.stop();
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
      await aggregator.start();
      try {
        await aggregator.done;
      } finally {
        await metrics.close();
      }
    });
}
