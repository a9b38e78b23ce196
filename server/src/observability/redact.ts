/**
 * Secrets never reach a log line or an error message: a URL's userinfo (user:password@) becomes
 * `***@`, and log fields that name a secret are censored (pino's `redact`).
 */

/** scheme://userinfo@: the userinfo runs to the last @ of the authority (WHATWG URL parsing). */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#\\"'<>`]*@/gi;

/**
 * A URL, or any text holding URLs (an error message), with the userinfo of each replaced:
 * `http://u:secret@host:8123/x` → `http://***@host:8123/x`. Text without userinfo is unchanged.
 */
export function redactUrl(text: string): string {
  return text.includes('@') ? text.replace(URL_USERINFO, '$1***@') : text;
}

/**
 * Log fields censored wherever a log call puts them (pino `redact` paths: top level and up to two
 * levels down, request headers included).
 */
export const LOG_REDACT_PATHS: string[] = [
  'password', '*.password', '*.*.password',
  'authorization', '*.authorization', 'headers.authorization', '*.headers.authorization',
  'cookie', 'headers.cookie', '*.headers.cookie',
  'secret', '*.secret',
  'clickhouse.password', 'config.clickhouse.password',
];

/**
 * pino `formatters.log`: the userinfo of URLs in string fields (err messages, urls) redacted, at
 * the top level and in plain objects and arrays up to three levels down. Copies only what changes.
 */
export function redactLogObject(obj: Record<string, unknown>): Record<string, unknown> {
  return redactValue(obj, 0) as Record<string, unknown>;
}

function redactValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return redactUrl(v);
  if (depth > 3 || typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    v.forEach((item, i) => {
      const r = redactValue(item, depth + 1);
      if (r !== item) (out ??= [...v])[i] = r;
    });
    return out ?? v;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) return v;
  let out: Record<string, unknown> | undefined;
  for (const [k, item] of Object.entries(v)) {
    const r = redactValue(item, depth + 1);
    if (r !== item) (out ??= { ...v })[k] = r;
  }
  return out ?? v;
}
