/**
 * Who is calling, as far as tally's access control cares. Every REST route, socket.io handshake,
 * room join and export checks a Principal; tokens (issued by `tally tokens create`, stored hashed)
 * resolve to one.
 *
 * Scopes: `admin` (everything), `ingest` (POST impressions only), `advertiser:<id>` (that
 * advertiser's data only; ids match the contract's ^[A-Za-z0-9._:-]{1,128}$, compared exactly).
 */
export type Scope = 'admin' | 'ingest' | `advertiser:${string}`;

export interface Principal {
  tokenId: string;
  name: string;
  scopes: Scope[];
}

export function isAdmin(p: Principal): boolean {
  return p.scopes.includes('admin');
}

export function canIngest(p: Principal): boolean {
  return p.scopes.includes('ingest') || isAdmin(p);
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
}
