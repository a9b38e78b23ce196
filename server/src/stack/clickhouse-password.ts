/**
 * The local stack ClickHouse's password: generated on the first `tally stack up`, kept in
 * <stackDir>/clickhouse-password (mode 0600 from its creation on), reused by every later start.
 * The server's users.xml holds only its SHA-256; every tally process reads the file
 * (config/stack-password.ts, through `loadConfig`), so no one has to pass it around.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { passwordFile } from '../config/index.js';
import { StackError } from '../errors/index.js';

/** 32 random bytes, base64url: 43 characters, nothing to escape in XML, URLs or shells. */
export function generatePassword(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** What users.xml's <password_sha256_hex> holds. */
export function sha256Hex(password: string): string {
  return crypto.createHash('sha256').update(password, 'utf8').digest('hex');
}

/**
 * The stack's password, generated if the file does not exist (or is empty). Idempotent.
 * The file is written under a temporary name created with mode 0600 (O_EXCL), then hard-linked
 * to its final name: it is never readable by others, never half-written, and of two concurrent
 * callers the first link wins and both return its password. A file that became readable by
 * others (copied, chmod) is set back to 0600.
 */
export function ensureStackPassword(stackDir: string): { password: string; created: boolean } {
  const file = passwordFile(stackDir);
  fs.mkdirSync(stackDir, { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = readExisting(file);
    if (existing !== undefined) return { password: existing, created: false };
    const password = generatePassword();
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, `${password}\n`, { mode: 0o600, flag: 'wx' });
    try {
      fs.linkSync(tmp, file);
      return { password, created: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Someone else's link won (or an empty file is in the way: readExisting removed it); read again.
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  throw new StackError(`could not create ${file}`);
}

/** The password in an existing file (mode repaired), undefined if none; an empty file is removed. */
function readExisting(file: string): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if ((stat.mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
  const password = fs.readFileSync(file, 'utf8').trim();
  if (password !== '') return password;
  fs.rmSync(file, { force: true });
  return undefined;
}
