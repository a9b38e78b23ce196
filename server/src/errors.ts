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
