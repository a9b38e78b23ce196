import type { TallyConfig } from '../config/index.js';
import { GROUP_MEMBER_TIMING, type ConsumerSettings, type RebalanceQueue } from '../kafka/index.js';

/** The aggregator's consumer: read_committed, subscribed to both inputs, offsets only in its transactions. */
export function aggregatorConsumerSettings(config: TallyConfig, rebalances: RebalanceQueue): ConsumerSettings {
  return {
    brokers: config.kafka.brokers,
    groupId: config.groups.aggregator,
    clientId: `tally-aggregator-${config.instanceId}`,
    isolation: 'read_committed',
    // node-rdkafka's consume(n) waits its timeout per record; at a partition's end (EOF) it
    // returns at once, so a steady trickle does not hold a batch (and the commit) back.
    partitionEof: true,
    rebalances,
    extra: {
      // Static membership: a restarted instance takes its partitions back at once instead of
      // waiting out the dead member's session; a second process with the same id is fenced.
      'group.instance.id': `tally-aggregator-${config.instanceId}`,
      // range gives partition p of both input topics (same partition count) to the same member:
      // a task needs its source and its repartition channel together.
      'partition.assignment.strategy': 'range',
      ...GROUP_MEMBER_TIMING,
    },
  };
}
