import type { TallyConfig } from '../config/index.js';
import { GROUP_MEMBER_TIMING, type ConsumerSettings, type RebalanceQueue } from '../kafka/index.js';

/**
 * The aggregator's consumer: read_committed, offsets only in its transactions. The group assigns
 * partitions of the source topic; the loop adds each one's repartition channel (Aggregator).
 */
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
      // cooperative-sticky (the default): a rebalance moves only the partitions that change owner,
      // and the others keep counting through it; range: eager, every rebalance revokes all.
      'partition.assignment.strategy': config.assignmentStrategy,
      ...GROUP_MEMBER_TIMING,
    },
  };
}
