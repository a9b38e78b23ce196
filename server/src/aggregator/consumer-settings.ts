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
      // Dynamic membership, not static (group.instance.id): a static member restarted in the
      // middle of a cooperative rebalance — after its revocation, before the second round — gets
      // its stored first-round assignment back without a rebalance, and the partitions it had
      // revoked are left to no member for good (seen here, every time). A dynamic member's
      // restart is a rebalance that assigns every partition, after the dead member's session.
      // cooperative-sticky (the default): a rebalance moves only the partitions that change owner,
      // and the others keep counting through it; range: eager, every rebalance revokes all.
      'partition.assignment.strategy': config.assignmentStrategy,
      ...GROUP_MEMBER_TIMING,
    },
  };
}
