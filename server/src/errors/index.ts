/**
 * tally's error classes, and the one place that reads librdkafka's error codes and flags.
 * Callers branch on the class (or on `kafkaErrorAction`), never on message strings.
 * `retriable` says whether doing the same thing again may succeed.
 */
export class TallyError extends Error {
  readonly retriable: boolean;
  constructor(message: string, options: { cause?: unknown; retriable?: boolean } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.retriable = options.retriable ?? false;
  }
}

/** A bad environment variable; the message names it. */
export class ConfigError extends TallyError {}

/** Something the local stack needs is missing (Java, Maven, apt) or a server did not come up. */
export class StackError extends TallyError {}

/** A CLI argument or API parameter that is not valid; the message names it. */
export class InvalidArgumentError extends TallyError {}

/**
 * The aggregator's tasks no longer belong to this process (its producer was fenced by a newer
 * instance, or its group membership is gone): nothing it holds may be committed any more. Drop
 * every task and the producer, and rejoin the group; whoever owns the partitions next restores them.
 */
export class TaskMigratedError extends TallyError {}

/**
 * A transaction was aborted (or its outcome is unknown): the in-memory state is ahead of what
 * Kafka holds. Drop it, restore from the changelog, and rewind the input to the committed offsets.
 */
export class TaskCorruptedError extends TallyError {}

/** A call made in a state that does not allow it (e.g. a second commit while one is in flight): a bug in the caller. */
export class IllegalStateError extends TallyError {}

/**
 * librdkafka did not answer a call within its own timeout plus a grace: the client is stuck (its
 * send_offsets_to_transaction can wait without end for a group coordinator on a broker that died,
 * librdkafka #5456 and #5511). Not a Kafka error, so kafkaErrorAction says fatal: use a new client.
 */
export class KafkaClientStuckError extends TallyError {}

/** Kafka did not take records (unreachable, or no acknowledgement in time). */
export class KafkaUnavailableError extends TallyError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, retriable: true });
  }
}

export { kafkaErrorAction, isGenerationMoved, isKafkaError, kafkaError, type KafkaErrorAction, type KafkaErrorLike } from './kafka-errors.js';
