/**
 * librdkafka's errors, read in one place. Every Kafka failure maps to one of four actions, as
 * Kafka Streams maps its exceptions:
 *   retry   the same call may succeed (timeout, coordinator moving, offsets not stable yet);
 *   abort   abort the transaction and restore the tasks from Kafka (TaskCorruptedError);
 *   rejoin  the tasks are someone else's now (fenced producer, lost membership): drop them and
 *           rejoin the group (TaskMigratedError);
 *   fatal   this client can do nothing more (librdkafka's fatal error, an authorization refusal):
 *           throw it away and start over with a new one.
 */
import Kafka from 'node-rdkafka';

const E = Kafka.CODES.ERRORS;

/** The fields librdkafka puts on its errors (node-rdkafka's LibrdKafkaError). */
export interface KafkaErrorLike {
  message: string;
  code: number;
  isFatal?: boolean;
  isRetriable?: boolean;
  isTxnRequiresAbort?: boolean;
}

export type KafkaErrorAction = 'retry' | 'abort' | 'rejoin' | 'fatal';

/** Another instance owns the work now (Kafka Streams' TaskMigratedException). */
const MIGRATED = new Set<number>([
  E.ERR__FENCED, E.ERR_PRODUCER_FENCED, E.ERR_INVALID_PRODUCER_EPOCH, E.ERR_FENCED_INSTANCE_ID,
  E.ERR_UNKNOWN_MEMBER_ID, E.ERR_ILLEGAL_GENERATION, E.ERR_REBALANCE_IN_PROGRESS,
]);

/** Refusals that no retry or restore can fix. */
const UNUSABLE = new Set<number>([
  E.ERR__FATAL, E.ERR_GROUP_AUTHORIZATION_FAILED, E.ERR_TOPIC_AUTHORIZATION_FAILED, E.ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
]);

/**
 * The group's generation moved under a transaction's offsets (a rebalance completed a round while
 * they were on their way): the member may well still own its partitions, and the same offsets sent
 * again with the new generation are accepted. Whether it does is for the retry to find out.
 */
export function isGenerationMoved(err: unknown): boolean {
  return isKafkaError(err) && (err.code === E.ERR_ILLEGAL_GENERATION || err.code === E.ERR_REBALANCE_IN_PROGRESS);
}

export function isKafkaError(err: unknown): err is KafkaErrorLike {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && typeof (err as { message?: unknown }).message === 'string';
}

/** A real Error (with stack) carrying librdkafka's code and flags, prefixed with what failed. */
export function kafkaError(what: string, err: KafkaErrorLike): Error & KafkaErrorLike {
  return Object.assign(new Error(`${what}: ${err.message}`), {
    code: err.code, isFatal: err.isFatal, isRetriable: err.isRetriable, isTxnRequiresAbort: err.isTxnRequiresAbort,
  });
}

/**
 * What to do about `err`. A fenced producer is reported by librdkafka as a fatal error whose code
 * says fenced: that is a migration, not a broken client. An error that is not Kafka's is a bug: fatal.
 */
export function kafkaErrorAction(err: unknown): KafkaErrorAction {
  if (!isKafkaError(err)) return 'fatal';
  if (MIGRATED.has(err.code)) return 'rejoin';
  if (err.isFatal === true || UNUSABLE.has(err.code)) return 'fatal';
  if (err.isTxnRequiresAbort === true) return 'abort';
  if (err.isRetriable === true || err.code === E.ERR__TIMED_OUT || err.code === E.ERR_UNSTABLE_OFFSET_COMMIT) return 'retry';
  return 'abort';
}
