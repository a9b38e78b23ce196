/**
 * The socket.io protocol between the live feed (server/src/live: the producer, live-server.ts)
 * and the dashboard (web/: the consumer, useLiveFeed; type-only imports through web/src/contracts.ts).
 * Numbers are exact integers; spend is in micros. Values are absolute (the current committed
 * total of a key), never increments, so a repeated or replayed update cannot double-add and a
 * reconnect resumes from a fresh snapshot.
 *
 * Connect: `io(url, { auth: { token } })` (path `/socket.io`; an `Authorization: Bearer` header
 * works too). The handshake is refused with a connect_error whose message is
 *   `unauthorized` for a missing, unknown or revoked token,
 *   `forbidden` for a valid token that may read no advertiser (e.g. ingest only),
 *   `unavailable` when the token could not be checked (try again).
 * An open connection whose token is revoked (or loses access to its view) receives `denied` and is
 * disconnected by the server ("io server disconnect": socket.io does not reconnect by itself)
 * within ~1 s.
 *
 * Views and rooms: an advertiser token starts in its (first) advertiser's view, an admin in the
 * all-advertisers view (null). Optional `auth.advertiserId` (an id, or null for all) picks the
 * initial view; if it is not allowed the connection starts in the default view and receives
 * `denied`. `join` switches the view: the ack comes first, then the new view's `snapshot`; a
 * refused join is acked `{ ok: false, message }`, followed by `denied`, and the view is unchanged.
 * Every join re-verifies the token; more than 20 joins in 10 s are refused.
 *
 * Updates: every ~260 ms (never two within 255 ms, so at most 4 per second per client), one
 * `update` per view with the rows changed since the previous one (sums changed, or the row became
 * final), or with no rows when only the watermark moved (those at most once a second). Replace rows by
 * (windowStart, advertiserId, campaignId); never add.
 */

import type { Maturity } from './maturity.js';

/** One (window, advertiser, campaign), summed over source partitions, as committed in Kafka. */
export interface LiveWindowRow {
  windowStart: number;
  windowEnd: number;
  advertiserId: string;
  campaignId: string;
  impressions: number;
  /** A number while below 2^53, else a string of digits (exact at any size; BigInt() takes both). */
  spendMicros: number | string;
  duplicates: number;
  /** Every source partition's watermark has passed windowEnd + allowed lateness (the window is closed). */
  final: boolean;
  /** live (window open), provisional (closed, period not final yet) or final (in the billing ledger, never changes). */
  maturity: Maturity;
}

export interface LiveSnapshot {
  /** The advertiser this snapshot is for; null for an admin's all-advertisers view. */
  advertiserId: string | null;
  windowMs: number;
  allowedLatenessMs: number;
  /** Rows of the dashboard's range (windows of the last 24 h, UTC day so far included). */
  rows: LiveWindowRow[];
  /** Minimum over partitions of the published watermarks (ms); periods ending before it minus lateness are closed. */
  watermark: number;
  serverTime: number;
  /** Extension: first window start the feed holds (older windows are not in `rows`; ask the REST API). */
  rangeStart?: number;
}

export interface LiveUpdate {
  advertiserId: string | null;
  /** Changed rows with their new absolute values. */
  rows: LiveWindowRow[];
  watermark: number;
  serverTime: number;
}

export interface ServerToClientEvents {
  /** Sent on connect and after every successful `join`. */
  snapshot: (s: LiveSnapshot) => void;
  /** At most 4 per second per client; batches every change since the previous one. */
  update: (u: LiveUpdate) => void;
  /** Why a join or the connection was refused. */
  denied: (e: { message: string }) => void;
}

export interface ClientToServerEvents {
  /** Switch the view: an advertiser id, or null for all (admin only). Acknowledged with ok or a message. */
  join: (advertiserId: string | null, ack: (r: { ok: true } | { ok: false; message: string }) => void) => void;
}
