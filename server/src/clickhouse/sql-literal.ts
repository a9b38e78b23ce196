/**
 * SQL literals for ClickHouse, which has no query parameters on 18.16. Every value that reaches
 * SQL goes through one of these after validation; identifiers are never built from input.
 */
import { ID_PATTERN } from '../contracts/ids.js';
import { InvalidArgumentError } from '../errors/index.js';

/** A quoted string literal: backslash and quote escaped, control bytes as \xHH. */
export function stringLiteral(value: string): string {
  let out = "'";
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const ch = value[i];
    if (ch === '\\' || ch === "'") out += `\\${ch}`;
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}'`;
}

/** An id as a literal, checked against the contract pattern first (defence in depth: routes validated it already). */
export function idLiteral(id: string): string {
  if (!ID_PATTERN.test(id)) throw new InvalidArgumentError(`not a valid id: ${JSON.stringify(id)}`);
  return stringLiteral(id);
}

/** An unsigned integer literal; anything else is refused. */
export function uintLiteral(value: number): string {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`not an unsigned integer: ${value}`);
  return String(value);
}

/** A DateTime literal from epoch ms (second precision, UTC). */
export function dateTimeLiteral(epochMs: number): string {
  if (!Number.isFinite(epochMs) || epochMs < 0 || epochMs >= 4_294_967_296_000) throw new InvalidArgumentError(`date out of range: ${epochMs}`);
  return `toDateTime(${Math.floor(epochMs / 1000)})`;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** A database or table name from configuration (never from a request). */
export function identifier(name: string): string {
  if (!IDENTIFIER.test(name)) throw new InvalidArgumentError(`not a valid identifier: ${JSON.stringify(name)}`);
  return name;
}
