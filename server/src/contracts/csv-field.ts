/**
 * The one CSV text-field rule of every CSV tally writes: billing statements (billing/, also as
 * SQL in csvFieldSql) and the dashboard's table downloads (web/). Text comes from outside (ids,
 * dimension values), so it must be safe to open in a spreadsheet.
 */

/**
 * A leading character that makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection"):
 * = + - @, tab (0x09), CR (0x0D), and LF (0x0A), which OWASP's page lists too. Also the pattern
 * billing's csvFieldSql hands ClickHouse's match() (re2 reads this source the same way).
 */
export const FORMULA_TRIGGER = /^[-=+@\t\r\n]/;

/** A field that must be quoted: a comma, quote, CR or LF in it (RFC 4180), or a leading # or space, or a trailing space. */
export const NEEDS_QUOTES = /[",\r\n]|^[# ]| $/;

/**
 * One CSV text field, safe to open in a spreadsheet: prefixed with a single quote when it starts
 * with a FORMULA_TRIGGER (`-cmp-1` → `'-cmp-1`), then quoted when it needs it (quotes doubled):
 * `=1+2";=1+2` → `"'=1+2"";=1+2"`. Text without either is written as it is, so unsigned numbers stay
 * numbers.
 */
export function csvField(value: string): string {
  const text = FORMULA_TRIGGER.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
