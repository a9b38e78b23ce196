/**
 * Rebalances as a queue the consuming loop drains between batches (Kafka Streams' StreamThread
 * does the same): librdkafka calls back inside consume(), where nothing may be awaited, so the
 * callback only records what happened and the loop acts on it — commit and drop on revoke,
 * restore or reset on assign — before it consumes again. librdkafka waits for the loop's
 * assign/unassign call (Consumer.take / Consumer.release) before the rebalance goes on.
 *
 * Under the eager protocol (`range`) a revocation is everything the member holds and an
 * assignment is all it will hold; under the cooperative one (`cooperative-sticky`) both are
 * increments: only the partitions that change owner.
 *
 * A failed rebalance is handled as a revocation of everything: librdkafka wants an unassign, and
 * what was held is no longer known to be ours. Once the loop has ended (`close`), revocations
 * are acted on at once: leaving the group at disconnect has nothing left to commit.
 */
import Kafka from 'node-rdkafka';

const { ERR__ASSIGN_PARTITIONS, ERR__REVOKE_PARTITIONS } = Kafka.CODES.ERRORS;

export type RebalanceProtocol = 'eager' | 'cooperative';

export interface RebalanceEvent {
  kind: 'assign' | 'revoke';
  /** Partition numbers, distinct and sorted (tally's topics of one consumer share partition numbers). */
  partitions: number[];
  /** The topic-partitions as librdkafka gave them. */
  assignment: Kafka.Assignment[];
  /** eager: the whole assignment changes; cooperative: only `partitions` do. */
  protocol: RebalanceProtocol;
}

/** The protocol the group chose (librdkafka knows it once the group has an assignor). */
export function rebalanceProtocolOf(client: Kafka.KafkaConsumer): RebalanceProtocol {
  return client.rebalanceProtocol() === 'COOPERATIVE' ? 'cooperative' : 'eager';
}

export class RebalanceQueue {
  private readonly events: RebalanceEvent[] = [];
  /** What the group gave and has not taken back, by "topic:partition" (for a failed rebalance). */
  private readonly held = new Map<string, Kafka.Assignment>();
  private closed = false;

  constructor(private readonly onError: (err: Kafka.LibrdKafkaError) => void = () => undefined) {}

  /** The rebalance_cb for a consumer (Consumer passes it to librdkafka). */
  callback(client: () => Kafka.KafkaConsumer): (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => void {
    return (err, assignment) => {
      const protocol = rebalanceProtocolOf(client());
      if (this.closed) {
        if (err.code !== ERR__ASSIGN_PARTITIONS) {
          try {
            if (protocol === 'cooperative') client().incrementalUnassign(client().assignments());
            else client().unassign();
          } catch { /* already closed */ }
        }
        return;
      }
      if (err.code === ERR__ASSIGN_PARTITIONS) {
        if (protocol === 'eager') this.held.clear();
        for (const a of assignment) this.held.set(`${a.topic}:${a.partition}`, a);
        this.push('assign', assignment, protocol);
        return;
      }
      if (err.code !== ERR__REVOKE_PARTITIONS) this.onError(err);
      const revoked = err.code === ERR__REVOKE_PARTITIONS ? assignment : [...this.held.values()];
      if (protocol === 'eager' || err.code !== ERR__REVOKE_PARTITIONS) this.held.clear();
      else for (const a of revoked) this.held.delete(`${a.topic}:${a.partition}`);
      this.push('revoke', revoked, protocol);
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

  private push(kind: RebalanceEvent['kind'], assignment: Kafka.Assignment[], protocol: RebalanceProtocol): void {
    const partitions = [...new Set(assignment.map((a) => a.partition))].sort((a, b) => a - b);
    this.events.push({ kind, partitions, assignment, protocol });
  }
}
