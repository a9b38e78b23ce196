/**
 * API bearer tokens: `tly_<12 hex id>_<43 char base64url secret>`.
 *
 * The id is public (it names the token in `tally tokens list` and in logs); the secret is 256
 * random bits and only its SHA-256 is stored (ClickHouse `{database}.api_tokens`, migration 004),
 * so the plaintext exists once, when `create` returns it. Verification looks the id up, hashes
 * the presented secret and compares the digests in constant time. Lookups are cached for at most
 * one second, so a revoke takes effect everywhere within a second (plus one query).
 *
 * Under a flood of made-up tokens: an id found unknown is refused without a round trip for a
 * while (negative cache), and lookups are bounded in flight (LookupGate), so the flood cannot
 * starve real users' checks of the ClickHouse pool.
 */
import crypto from 'node:crypto';
import type { ClickHouseClient } from '../clickhouse/index.js';
import { identifier, queryRows, stringLiteral } from '../clickhouse/index.js';
import { InvalidArgumentError } from '../errors/index.js';
import { setNewest } from './bounded-map.js';
import { LookupGate, TokenStoreBusyError } from './lookup-gate.js';
import type { Principal, Scope, TokenVerifier } from './principal.js';

export const TOKEN_PREFIX = 'tly_';
const TOKEN_PATTERN = /^tly_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
export const TOKEN_ID_PATTERN = /^[0-9a-f]{12}$/;
/** The contract's id pattern (advertiser ids in scopes are compared exactly, never normalized). */
const CONTRACT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Printable ASCII, no quotes or backslashes: names end up in logs and terminals. */
export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9 ._:@/+=-]{1,100}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Longest a verified (or refused) lookup is reused: a revoke is seen within this. */
export const MAX_CACHE_MS = 1000;

export interface GeneratedToken {
  token: string;
  id: string;
  secret: string;
}

/** A fresh token: 48-bit id, 256-bit secret (base64url without padding: 43 characters). */
export function generateToken(): GeneratedToken {
  const id = crypto.randomBytes(6).toString('hex');
  const secret = crypto.randomBytes(32).toString('base64url');
  return { token: `${TOKEN_PREFIX}${id}_${secret}`, id, secret };
}

/** Splits a presented token into id and secret; undefined unless it has exactly the token format. */
export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = TOKEN_PATTERN.exec(token);
  return m === null ? undefined : { id: m[1], secret: m[2] };
}

/** SHA-256 of the secret, lowercase hex: what the store keeps. */
export function hashSecret(secret: string): string {
  return crypto.createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** `admin`, `ingest`, `ingest:<contract id>` or `advertiser:<contract id>`; undefined for anything else (no trimming, no case folding). */
export function parseScope(s: string): Scope | undefined {
  if (s === 'admin' || s === 'ingest') return s;
  if (s.startsWith('advertiser:') && CONTRACT_ID.test(s.slice('advertiser:'.length))) return s as Scope;
  if (s.startsWith('ingest:') && CONTRACT_ID.test(s.slice('ingest:'.length))) return s as Scope;
  return undefined;
}

/** Validates a scope list for a new token: at least one, each valid (the error names the bad one), duplicates dropped. */
export function parseScopes(list: readonly string[]): Scope[] {
  if (list.length === 0) throw new InvalidArgumentError('a token needs at least one scope: admin, ingest, ingest:<id> or advertiser:<id>');
  const out: Scope[] = [];
  for (const s of list) {
    const scope = parseScope(s);
    if (scope === undefined) {
      throw new InvalidArgumentError(`invalid scope ${JSON.stringify(s)}: expected admin, ingest, ingest:<id> or advertiser:<id> with id matching ^[A-Za-z0-9._:-]{1,128}$`);
    }
    if (!out.includes(scope)) out.push(scope);
  }
  return out;
}

export function validateTokenName(name: string): string {
  if (!TOKEN_NAME_PATTERN.test(name)) {
    throw new InvalidArgumentError(`invalid token name ${JSON.stringify(name)}: 1 to 100 characters of letters, digits, space and . _ : @ / + = -`);
  }
  return name;
}

/** One row of api_tokens as stored (the newest version of a token). */
export interface StoredToken {
  id: string;
  name: string;
  secretSha256: string;
  scopes: string[];
  /** Epoch ms (second precision). */
  createdAt: number;
  revoked: boolean;
  version: number;
}

/** What `list` shows: everything but the secret's hash. */
export interface TokenInfo {
  id: string;
  name: string;
  scopes: string[];
  createdAt: number;
  revoked: boolean;
}

/** Where tokens live. ClickHouse in production; an in-memory map in unit tests. */
export interface TokenRepository {
  /** The newest version of a token; undefined if there is none. */
  get(id: string): Promise<StoredToken | undefined>;
  /** Stores a version of a token; the highest version wins. */
  put(token: StoredToken): Promise<void>;
  /** The newest version of every token. */
  all(): Promise<StoredToken[]>;
}

interface TokenRow {
  token_id: string;
  name: string;
  secret_sha256: string;
  scopes: string[];
  created_s: number | string;
  revoked: number | string;
  version: number | string;
}

const COLUMNS = 'token_id, name, secret_sha256, scopes, toUInt32(created_at) AS created_s, revoked, version';

function fromRow(r: TokenRow): StoredToken {
  return {
    id: r.token_id, name: r.name, secretSha256: r.secret_sha256, scopes: r.scopes,
    createdAt: Number(r.created_s) * 1000, revoked: Number(r.revoked) !== 0, version: Number(r.version),
  };
}

/** `{database}.api_tokens` (ReplacingMergeTree(version), read with FINAL). */
export class ClickHouseTokenRepository implements TokenRepository {
  private readonly table: string;

  constructor(private readonly ch: ClickHouseClient, database: string) {
    this.table = `${identifier(database)}.api_tokens`;
  }

  async get(id: string): Promise<StoredToken | undefined> {
    // The id is checked against its 12-hex format before it reaches SQL (and escaped anyway).
    if (!TOKEN_ID_PATTERN.test(id)) return undefined;
    const rows = await queryRows<TokenRow>(this.ch,
      `SELECT ${COLUMNS} FROM ${this.table} FINAL WHERE token_id = ${stringLiteral(id)} ORDER BY version DESC LIMIT 1`);
    return rows.length === 0 ? undefined : fromRow(rows[0]);
  }

  async put(t: StoredToken): Promise<void> {
    await this.ch.insert({
      table: this.table,
      format: 'JSONEachRow',
      values: [{
        token_id: t.id, name: t.name, secret_sha256: t.secretSha256, scopes: t.scopes,
        created_at: Math.floor(t.createdAt / 1000), revoked: t.revoked ? 1 : 0, version: t.version,
      }],
    });
  }

  async all(): Promise<StoredToken[]> {
    const rows = await queryRows<TokenRow>(this.ch, `SELECT ${COLUMNS} FROM ${this.table} FINAL ORDER BY created_at, token_id`);
    // FINAL already keeps one row per id; the map only guards against a second row ever showing up.
    const newest = new Map<string, StoredToken>();
    for (const r of rows.map(fromRow)) {
      const prev = newest.get(r.id);
      if (prev === undefined || r.version > prev.version) newest.set(r.id, r);
    }
    return [...newest.values()];
  }
}

export interface TokenStoreOptions {
  /** Lookup cache lifetime, at most MAX_CACHE_MS (default). 0 disables the cache. */
  cacheMs?: number;
  /** Most cached lookups (oldest dropped first); bounds memory under a flood of made-up ids. */
  maxCacheEntries?: number;
  /** How long an id found unknown is refused without asking again (default 60 s; 0: not remembered). */
  negativeCacheMs?: number;
  /** Most lookups at once (default 8); up to 32 times as many wait, more are refused (TokenStoreBusyError). */
  maxLookupsInFlight?: number;
  now?: () => number;
}

/** What the store did, for metrics: round trips, refusals from the negative cache, refusals when busy. */
export interface TokenStoreStats {
  lookups: number;
  unknownCached: number;
  busy: number;
}

/** A token verified valid this recently may pass an address that is over its auth-failure limit. */
const RECENTLY_VALID_MS = 10 * 60_000;

/** Compared against when the id is unknown, so a miss costs the same digest comparison as a hit. */
const DUMMY_DIGEST = Buffer.alloc(32);

export type RevokeOutcome = 'revoked' | 'already_revoked' | 'not_found';

interface CachedLookup {
  /** When the lookup started: the answer is at most this old. */
  at: number;
  value: Promise<StoredToken | undefined>;
  refreshing: boolean;
}

/** Creates, lists, revokes and verifies API tokens. */
export class TokenStore implements TokenVerifier {
  private readonly cacheMs: number;
  private readonly maxCacheEntries: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, CachedLookup>();
  private readonly negativeCacheMs: number;
  /** Unknown id → until when it is refused without a lookup. */
  private readonly unknown = new Map<string, number>();
  /** Id → when it was last verified valid. */
  private readonly validSeen = new Map<string, number>();
  private readonly gate: LookupGate;
  readonly stats: TokenStoreStats = { lookups: 0, unknownCached: 0, busy: 0 };

  constructor(private readonly repo: TokenRepository, opts: TokenStoreOptions = {}) {
    this.cacheMs = Math.max(0, Math.min(MAX_CACHE_MS, opts.cacheMs ?? MAX_CACHE_MS));
    this.maxCacheEntries = Math.max(1, opts.maxCacheEntries ?? 10_000);
    this.negativeCacheMs = Math.max(0, opts.negativeCacheMs ?? 60_000);
    const inFlight = Math.max(1, opts.maxLookupsInFlight ?? 8);
    this.gate = new LookupGate(inFlight, inFlight * 32);
    this.now = opts.now ?? Date.now;
  }

  static forClickHouse(ch: ClickHouseClient, database: string, opts: TokenStoreOptions = {}): TokenStore {
    return new TokenStore(new ClickHouseTokenRepository(ch, database), opts);
  }

  /** A new token. The returned `token` is the only copy of the plaintext anywhere. */
  async create(name: string, scopes: readonly string[]): Promise<{ token: string; id: string }> {
    validateTokenName(name);
    const valid = parseScopes(scopes);
    const { token, id, secret } = generateToken();
    const now = this.now();
    await this.repo.put({ id, name, secretSha256: hashSecret(secret), scopes: valid, createdAt: now, revoked: false, version: now });
    this.cache.delete(id);
    this.unknown.delete(id);
    return { token, id };
  }

  /** Every token, newest versions, without secrets; oldest first. */
  async list(): Promise<TokenInfo[]> {
    const all = await this.repo.all();
    return all
      .map(({ id, name, scopes, createdAt, revoked }) => ({ id, name, scopes, createdAt, revoked }))
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  }

  async revoke(id: string): Promise<RevokeOutcome> {
    if (!TOKEN_ID_PATTERN.test(id)) throw new InvalidArgumentError(`invalid token id ${JSON.stringify(id)}: 12 hex digits, as \`tally tokens list\` shows`);
    const current = await this.repo.get(id);
    if (current === undefined) return 'not_found';
    if (current.revoked) return 'already_revoked';
    await this.repo.put({ ...current, revoked: true, version: Math.max(current.version + 1, this.now()) });
    this.cache.delete(id);
    return 'revoked';
  }

  /** Revokes every active token with this name (the demo admin token of `tally start`); returns their ids. */
  async revokeByName(name: string): Promise<string[]> {
    const ids = (await this.repo.all()).filter((t) => t.name === name && !t.revoked).map((t) => t.id);
    for (const id of ids) await this.revoke(id);
    return ids;
  }

  /**
   * The principal of a valid, unrevoked token; undefined otherwise. Rejects (does not answer
   * undefined) when the store cannot be reached: callers answer 503, not 401.
   */
  async verify(token: string): Promise<Principal | undefined> {
    const parsed = parseToken(token);
    if (parsed === undefined) return undefined;
    const stored = await this.lookup(parsed.id);
    const presented = Buffer.from(hashSecret(parsed.secret), 'hex');
    const expected = stored !== undefined && SHA256_HEX.test(stored.secretSha256) ? Buffer.from(stored.secretSha256, 'hex') : DUMMY_DIGEST;
    const equal = crypto.timingSafeEqual(presented, expected);
    if (!equal || stored === undefined || stored.revoked) return undefined;
    setNewest(this.validSeen, stored.id, this.now(), this.maxCacheEntries);
    const scopes = stored.scopes.map(parseScope).filter((s): s is Scope => s !== undefined);
    return { tokenId: stored.id, name: stored.name, scopes };
  }

  /** Whether this token's id was verified valid here in the last 10 minutes (no lookup; the secret is checked by verify). */
  recentlyValid(token: string): boolean {
    const parsed = parseToken(token);
    const at = parsed === undefined ? undefined : this.validSeen.get(parsed.id);
    return at !== undefined && this.now() - at < RECENTLY_VALID_MS;
  }

  /**
   * Cached for cacheMs from the start of the lookup. In the second half of that, the first request
   * starts a refresh in the background and is answered from the cache, so a busy token never makes
   * a burst of requests wait for ClickHouse together; an entry past cacheMs is never served.
   */
  private lookup(id: string): Promise<StoredToken | undefined> {
    const now = this.now();
    const unknownUntil = this.unknown.get(id);
    if (unknownUntil !== undefined) {
      if (now < unknownUntil) {
        this.stats.unknownCached++;
        return Promise.resolve(undefined);
      }
      this.unknown.delete(id);
    }
    const hit = this.cache.get(id);
    if (hit !== undefined && now - hit.at < this.cacheMs) {
      if (now - hit.at >= this.cacheMs / 2 && !hit.refreshing) {
        hit.refreshing = true;
        const next = this.remember(id, now);
        // A failed refresh leaves the entry to expire; the request after that asks again.
        next.catch(() => undefined);
      }
      return hit.value;
    }
    return this.remember(id, now);
  }

  /** Looks `id` up and caches the pending answer; it replaces the cached one once it arrives. */
  private remember(id: string, now: number): Promise<StoredToken | undefined> {
    const value = this.gate.run(() => {
      this.stats.lookups++;
      return this.repo.get(id);
    });
    value.then((stored) => {
      if (stored === undefined && this.negativeCacheMs > 0) setNewest(this.unknown, id, this.now() + this.negativeCacheMs, this.maxCacheEntries * 10);
    }, (err: unknown) => {
      if (err instanceof TokenStoreBusyError) this.stats.busy++;
    });
    if (this.cacheMs === 0) return value;
    const entry: CachedLookup = { at: now, value, refreshing: false };
    const install = () => setNewest(this.cache, id, entry, this.maxCacheEntries);
    const current = this.cache.get(id);
    if (current === undefined || now - current.at >= this.cacheMs) {
      install();
      // A failed lookup is not remembered: the next request asks again.
      value.catch(() => {
        if (this.cache.get(id) === entry) this.cache.delete(id);
      });
    } else {
      // A refresh: the fresh answer takes over only when it has arrived.
      value.then(() => {
        if (this.cache.get(id) === current) install();
      }, () => undefined);
    }
    return value;
  }
}
