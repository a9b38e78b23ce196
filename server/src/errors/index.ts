/**
 * tally's error classes. Callers branch on the class, never on message strings.
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
 * The aggregator's tasks no longer belong to this process (producer fenced by a newer instance,
 * or a fatal producer error): throw away the producer and all state, then rejoin and restore.
 */
export class TaskMigratedError extends TallyError {}

/**
 * A transaction was aborted (or its outcome is unknown): the in-memory state is ahead of what
 * Kafka holds. Drop it, restore from the changelog, and rewind the input to the committed offsets.
 */
export class TaskCorruptedError extends TallyError {}

/** The fields librdkafka puts on its errors (node-rdkafka's LibrdKafkaError). */
export interface KafkaErrorLike {
  message: string;
  code: number;
  isFatal?: boolean;
  isRetriable?: boolean;
  isTxnRequiresAbort?: boolean;
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
