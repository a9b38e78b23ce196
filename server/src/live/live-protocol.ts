/**
 * The socket.io protocol between the live feed (server/src/live) and the dashboard (web/).
 * Numbers are exact integers; spend is in micros. Values are absolute (the current committed
 * total of a key), never increments, so a repeated or replayed update cannot double-add and a
 * reconnect resumes from a fresh snapshot.
 *
 * Connect: `io(url, { auth: { token } })`. The handshake is refused (connect_error with message
 * `unauthorized`) for an unknown or revoked token; an open connection whose token is revoked is
 * disconnected within ~1 s.
 */

/** One (window, advertiser, campaign), summed over source partitions, as committed in Kafka. */
export interface LiveWindowRow {
  windowStart: number;
  windowEnd: number;
  advertiserId: string;
  campaignId: string;
  impressions: number;
  spendMicros: number;
  duplicates: number;
  /** Every source partition's watermark has passed windowEnd + allowed lateness. */
  final: boolean;
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
