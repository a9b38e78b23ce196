/**
 * Who is calling, as far as tally's access control cares. Every REST route, socket.io handshake,
 * room join and export checks a Principal; tokens (issued by `tally tokens create`, stored hashed)
 * resolve to one.
 *
 * Scopes: `admin` (everything), `ingest` (POST impressions of any advertiser, nothing else),
 * `ingest:<id>` (POST impressions of that advertiser only), `advertiser:<id>` (that advertiser's
 * data only). Ids match the contract's ^[A-Za-z0-9._:-]{1,128}$ and are compared exactly.
 */
export type Scope = 'admin' | 'ingest' | `ingest:${string}` | `advertiser:${string}`;

export interface Principal {
  tokenId: string;
  name: string;
  scopes: Scope[];
}

export function isAdmin(p: Principal): boolean {
  return p.scopes.includes('admin');
}

/** Whether this principal may POST impressions at all (of some advertiser: see ingestableAdvertisers). */
export function canIngest(p: Principal): boolean {
  return p.scopes.some((s) => s === 'ingest' || s === 'admin' || s.startsWith('ingest:'));
}

/** Advertiser ids whose events this principal may ingest; null means any (`ingest` or `admin`). */
export function ingestableAdvertisers(p: Principal): string[] | null {
  if (p.scopes.includes('ingest') || isAdmin(p)) return null;
  return p.scopes.filter((s): s is `ingest:${string}` => s.startsWith('ingest:')).map((s) => s.slice('ingest:'.length));
}

/** Advertiser ids this principal may read; null means all (admin). */
export function readableAdvertisers(p: Principal): string[] | null {
  if (isAdmin(p)) return null;
  return p.scopes.filter((s): s is `advertiser:${string}` => s.startsWith('advertiser:')).map((s) => s.slice('advertiser:'.length));
}

export function canReadAdvertiser(p: Principal, advertiserId: string): boolean {
  const allowed = readableAdvertisers(p);
  return allowed === null || allowed.includes(advertiserId);
}

/** Resolves a bearer token to its principal; undefined for unknown or revoked tokens. */
export interface TokenVerifier {
  verify(token: string): Promise<Principal | undefined>;
  /**
   * Whether this token was verified valid recently, answered without a lookup. An address over its
   * auth-failure limit is refused before any lookup unless its token passes this.
   */
  recentlyValid?(token: string): boolean;
}
