// Who may call the API: principals and scopes (the contract) and the token store behind them.
export {
  type Scope, type Principal, type TokenVerifier,
  isAdmin, canIngest, ingestableAdvertisers, readableAdvertisers, canReadAdvertiser,
} from './principal.js';
export {
  TokenStore, ClickHouseTokenRepository,
  type TokenRepository, type StoredToken, type TokenInfo, type TokenStoreOptions, type RevokeOutcome, type GeneratedToken,
  generateToken, parseToken, hashSecret, parseScope, parseScopes, validateTokenName,
  TOKEN_PREFIX, TOKEN_ID_PATTERN, TOKEN_NAME_PATTERN, MAX_CACHE_MS,
  type TokenStoreStats,
} from './token-store.js';
export { AuthFailureLimiter, addressKey } from './auth-failure-limiter.js';
export { TokenStoreBusyError } from './lookup-gate.js';
