import { Command } from 'commander';
import Kafka from 'node-rdkafka';
import { Aggregator, AggregatorMetrics } from '../aggregator/index.js';
import { loadConfig } from '../config/index.js';
import { isKafkaError } from '../errors/index.js';
import { createLogger, serveMetrics } from '../observability/index.js';
import { stopOnSignals } from './stop-signals.js';

/** A client librdkafka declared unusable (e.g. a static member fenced after a broker restart): start over. */
function isFatalKafkaError(err: unknown): boolean {
  return isKafkaError(err) && (err.isFatal === true || err.code === Kafka.CODES.ERRORS.ERR__FATAL);
}

export function aggregatorCommand(): Command {
  return new Command('aggregator')
    .description('count impressions per campaign and event-time window, exactly once (one Kafka transaction per commit interval); SIGTERM finishes the current transaction and exits')
    .action(async () => {
      const config = loadConfig();
      const log = createLogger('aggregator', config.logLevel);
      const metrics = new AggregatorMetrics();
      const server = await serveMetrics(metrics.registry, config.http.host, config.metricsPort);
      log.info({ metricsPort: server.port, instanceId: config.instanceId }, 'aggregator.metrics_listening');
      let current: Aggregator | undefined;
      let stopping = false;
      stopOnSignals(log, 'aggregator.stopping', () => {
        stopping = true;
        void current?.stop();
      });
      try {
        // Like a runner's onCrash: a fatal client error ends this incarnation, not the process.
        // Nothing is lost: the next one restores from Kafka; anything else is a bug and exits.
        while (!stopping) {
          current = new Aggregator(config, log, metrics);
          try {
            await current.start();
            await current.done;
          } catch (err) {
            if (!isFatalKafkaError(err)) throw err;
            log.error({ err: (err as Error).message }, 'aggregator.fatal_kafka_error_restarting');
            await current.stop().catch(() => undefined);
            await new Promise((r) => setTimeout(r, 1000));
          }
        }
      } finally {
        await server.close();
      }
    });
}
