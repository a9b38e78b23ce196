/**
 * Rebalances as a queue the consuming loop drains between batches (Kafka Streams' StreamThread
 * does the same): librdkafka calls back inside consume(), where nothing may be awaited, so the
 * callback only records what happened and the loop acts on it — commit and drop on revoke,
 * restore or reset on assign — before it consumes again.
 *
 * A failed rebalance is handled as a revocation of everything: librdkafka wants an unassign, and
 * what was held is no longer known to be ours. Once the loop has ended (`close`), revocations
 * are acted on at once: leaving the group at disconnect has nothing left to commit.
 */
import Kafka from 'node-rdkafka';

const { ERR__ASSIGN_PARTITIONS, ERR__REVOKE_PARTITIONS } = Kafka.CODES.ERRORS;

export interface RebalanceEvent {
  kind: 'assign' | 'revoke';
  /** Partition numbers, distinct and sorted (tally's topics of one consumer share partition numbers). */
  partitions: number[];
  /** The topic-partitions as librdkafka gave them. */
  assignment: Kafka.Assignment[];
}

export class RebalanceQueue {
  private readonly events: RebalanceEvent[] = [];
  private held: Kafka.Assignment[] = [];
  private closed = false;

  constructor(private readonly onError: (err: Kafka.LibrdKafkaError) => void = () => undefined) {}

  /** The rebalance_cb for a consumer (Consumer passes it to librdkafka). */
  callback(client: () => Kafka.KafkaConsumer): (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => void {
    return (err, assignment) => {
      if (this.closed) {
        if (err.code !== ERR__ASSIGN_PARTITIONS) {
          try {
            client().unassign();
          } catch { /* already closed */ }
        }
        return;
      }
      if (err.code === ERR__ASSIGN_PARTITIONS) {
        this.held = assignment;
        this.push('assign', assignment);
      } else {
        if (err.code !== ERR__REVOKE_PARTITIONS) this.onError(err);
        this.push('revoke', err.code === ERR__REVOKE_PARTITIONS ? assignment : this.held);
        this.held = [];
      }
    };
  }

  get pending(): boolean {
    return this.events.length > 0;
  }

  /** The next event, oldest first. */
  next(): RebalanceEvent | undefined {
    return this.events.shift();
  }

  /** The loop has ended: from now on a revocation is an immediate unassign, an assignment is ignored. */
  close(): void {
    this.closed = true;
    this.events.length = 0;
  }

  private push(kind: RebalanceEvent['kind'], assignment: Kafka.Assignment[]): void {
    const partitions = [...new Set(assignment.map((a) => a.partition))].sort((a, b) => a - b);
    this.events.push({ kind, partitions, assignment });
  }
}
