/**
 * ClickHouse's error codes, the same number on every release (60 UNKNOWN_TABLE, 81
 * UNKNOWN_DATABASE, 159 TIMEOUT_EXCEEDED…). @clickhouse/client sets `code` when it can parse the
 * answer; 18.16 answers `Code: 60, e.displayText() = …`, a form the client does not parse, so the
 * code is read from the start of that answer, which is the HTTP interface's error format on every
 * release (`Code: N. DB::Exception: …` since 21.x).
 */
const SERVER_ERROR = /^Code: (\d+)[.,]/;

/** The ClickHouse error code of `err` as a string ('60'), or undefined for errors that are not the server's. */
export function clickHouseErrorCode(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^\d+$/.test(code)) return code;
  return SERVER_ERROR.exec(err.message)?.[1];
}
