import type { RebalanceEvent } from '../kafka/index.js';

/** What one rebalance event does to this process's tasks. */
export interface RebalancePlan {
  /** Tasks whose partitions leave (revoked) or are replaced (an eager assignment): dropped, after the commit on a revocation. */
  drop: number[];
  /** Partitions to build a task for: committed offsets, restore from the changelog, then consume. */
  restore: number[];
  /** Tasks that stay as they are and keep counting: no commit of their own, no restore. */
  keep: number[];
}

/**
 * The task changes of a rebalance event, given the partitions this process has tasks for.
 *
 *   eager revoke        every task goes (the protocol revokes the whole assignment)
 *   eager assign        the assignment is all there is: every partition in it is restored
 *   cooperative revoke  only the revoked partitions' tasks go; the rest keep counting
 *   cooperative assign  only partitions without a task are restored; the rest keep counting
 *
 * A revocation commits every task's work before the revoked ones go (the aggregator's commit is
 * one transaction for all of them); the plan only says which tasks change.
 */
export function planRebalance(owned: Iterable<number>, event: Pick<RebalanceEvent, 'kind' | 'partitions' | 'protocol'>): RebalancePlan {
  const tasks = [...owned].sort((a, b) => a - b);
  const named = new Set(event.partitions);
  if (event.protocol === 'eager') {
    return event.kind === 'revoke'
      ? { drop: tasks, restore: [], keep: [] }
      : { drop: tasks, restore: [...event.partitions], keep: [] };
  }
  if (event.kind === 'revoke') {
    return { drop: tasks.filter((p) => named.has(p)), restore: [], keep: tasks.filter((p) => !named.has(p)) };
  }
  const have = new Set(tasks);
  return { drop: [], restore: event.partitions.filter((p) => !have.has(p)), keep: tasks };
}
