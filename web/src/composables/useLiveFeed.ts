/**
 * The live feed: ONE socket.io client for the whole app (auth: { token }), and the rows it
 * delivers, keyed by windowStart|advertiserId|campaignId. Values are absolute: a snapshot
 * replaces every row, an update replaces the rows it names; nothing is ever added to what is
 * there, so a replayed update or a reconnect cannot double-count. Totals, the per-campaign table
 * and the chart are derived from the rows (see live-aggregates.ts).
 *
 * Every view calls useLiveFeed() and gets the same state; App.vue connects it on sign-in and
 * disconnects it on sign-out.
 */
import { io, type Socket } from 'socket.io-client';
import { computed, readonly, ref, shallowRef, triggerRef } from 'vue';
import type { ClientToServerEvents, LiveSnapshot, LiveUpdate, LiveWindowRow, ServerToClientEvents } from '../contracts';
import {
  DAY_MS, chartBucketMs, lastHourStart, totalsBetween, utcDayStart, windowBuckets, windowStartOf,
} from '../live-aggregates';
import { observeServerTime, useClock } from './useClock';

export type ConnectionState =
  /** No client (signed out). */
  | 'idle'
  /** First connection attempt in progress. */
  | 'connecting'
  | 'connected'
  /** Was connected (or tried), lost it; socket.io retries with backoff. */
  | 'reconnecting'
  /** The server refused the token: sign in again. */
  | 'unauthorized';

type LiveSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

const rowKey = (r: Pick<LiveWindowRow, 'windowStart' | 'advertiserId' | 'campaignId'>) =>
  `${r.windowStart}|${r.advertiserId}|${r.campaignId}`;

// ---- the shared state (module scope: one per app) ----
let socket: LiveSocket | null = null;
let socketToken: string | null = null;
let serverKickTimer: ReturnType<typeof setTimeout> | undefined;
let pruneTimer: ReturnType<typeof setInterval> | undefined;

const rows = shallowRef(new Map<string, LiveWindowRow>());
const state = ref<ConnectionState>('idle');
/** The last connection or feed error (kept while reconnecting). */
const lastError = ref<string | null>(null);
const reconnectAttempt = ref(0);
/** Whose rows are shown: an advertiser id, null = all (admin), undefined = no snapshot yet. */
const view = ref<string | null | undefined>(undefined);
/** What the user asked to see (join); undefined = the server's default for the token. */
const wanted = ref<string | null | undefined>(undefined);
const switching = ref(false);
const windowMs = ref(60_000);
const allowedLatenessMs = ref(0);
const watermark = ref(0);
/** Epoch ms (local clock) of the last snapshot or update; undefined before the first snapshot. */
const receivedAt = ref<number>();
const snapshots = ref(0);
const updates = ref(0);

function applySnapshot(s: LiveSnapshot): void {
  const next = new Map<string, LiveWindowRow>();
  for (const r of s.rows) {
    if (s.advertiserId !== null && r.advertiserId !== s.advertiserId) continue;
    next.set(rowKey(r), r);
  }
  rows.value = next;
  view.value = s.advertiserId;
  windowMs.value = s.windowMs;
  allowedLatenessMs.value = s.allowedLatenessMs;
  watermark.value = s.watermark;
  observeServerTime(s.serverTime);
  receivedAt.value = Date.now();
  snapshots.value++;
  if (wanted.value === s.advertiserId) switching.value = false;
  // Not switching: the server decides (a view we asked for at connect was refused: it sent its default).
  if (!switching.value) wanted.value = s.advertiserId;
}

function applyUpdate(u: LiveUpdate): void {
  // An update for a room we are leaving (join in flight) or before any snapshot: not ours to show.
  if (view.value === undefined || u.advertiserId !== view.value) return;
  const map = rows.value;
  for (const r of u.rows) {
    if (u.advertiserId !== null && r.advertiserId !== u.advertiserId) continue;
    map.set(rowKey(r), r);
  }
  watermark.value = u.watermark;
  observeServerTime(u.serverTime);
  receivedAt.value = Date.now();
  updates.value++;
  if (u.rows.length > 0) triggerRef(rows);
}

/** Rows older than the feed's range (24 h, plus the UTC day so far) are dropped once a minute. */
function prune(): void {
  const { now } = useClock();
  const from = Math.min(utcDayStart(now.value), now.value - DAY_MS) - windowMs.value;
  let removed = 0;
  for (const [k, r] of rows.value) {
    if (r.windowStart < from) {
      rows.value.delete(k);
      removed++;
    }
  }
  if (removed > 0) triggerRef(rows);
}

function emitJoin(advertiserId: string | null): Promise<void> {
  const s = socket;
  if (!s?.connected) return Promise.resolve(); // joined on (re)connect
  return new Promise((resolve) => {
    s.timeout(10_000).emit('join', advertiserId, (err: Error | null, r?: { ok: true } | { ok: false; message: string }) => {
      if (wanted.value !== advertiserId) return resolve(); // superseded by a later switch
      if (view.value === advertiserId) { // already there (a reconnect opened this view)
        switching.value = false;
        return resolve();
      }
      const failure = err || !r ? `switching the view failed: ${err?.message ?? 'no answer'}` : r.ok ? null : r.message;
      if (failure !== null) {
        lastError.value = failure;
        switching.value = false;
        wanted.value = view.value; // the server keeps the previous view
      }
      resolve();
    });
  });
}

function connect(token: string): void {
  if (socket && socketToken === token) return;
  disconnect();
  socketToken = token;
  state.value = 'connecting';
  const s: LiveSocket = io({
    path: '/socket.io',
    // Evaluated at every (re)connect: the server opens the view the user chose (auth.advertiserId),
    // so a reconnect's snapshot is already the right one.
    auth: (cb) => cb(wanted.value === undefined ? { token } : { token, advertiserId: wanted.value }),
    reconnection: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5_000,
    timeout: 10_000,
  });
  socket = s;
  s.on('connect', () => {
    state.value = 'connected';
    reconnectAttempt.value = 0;
    lastError.value = null;
  });
  s.on('disconnect', (reason) => {
    if (socket !== s) return;
    if (reason === 'io client disconnect') return;
    state.value = 'reconnecting';
    lastError.value = `connection lost (${reason})`;
    // socket.io does not retry after the server closed the connection on purpose (a revoked
    // token, a restart): try once more; a refused token then surfaces as connect_error.
    if (reason === 'io server disconnect') serverKickTimer = setTimeout(() => s.connect(), 1_000);
  });
  s.on('connect_error', (err) => {
    if (socket !== s) return;
    if (err.message === 'unauthorized' || err.message === 'forbidden') {
      state.value = 'unauthorized';
      lastError.value = err.message === 'forbidden' ? 'this token may not read any advertiser' : 'the server refused the token (unknown or revoked)';
      s.disconnect();
      return;
    }
    lastError.value = err.message;
    state.value = snapshots.value > 0 ? 'reconnecting' : 'connecting';
    // Refused by the server's handshake check (`unavailable`: the token could not be checked), not
    // a transport failure: socket.io will not retry by itself.
    if (!s.active) serverKickTimer = setTimeout(() => s.connect(), 2_000);
  });
  s.io.on('reconnect_attempt', (n) => {
    reconnectAttempt.value = n;
  });
  s.on('snapshot', applySnapshot);
  s.on('update', applyUpdate);
  s.on('denied', (e) => {
    lastError.value = e.message;
    // A refused view (at connect or by join): the server stays on the current one.
    if (switching.value) {
      switching.value = false;
      wanted.value = view.value;
    }
  });
  pruneTimer ??= setInterval(prune, 60_000);
}

function disconnect(): void {
  if (serverKickTimer) clearTimeout(serverKickTimer);
  if (pruneTimer) clearInterval(pruneTimer);
  pruneTimer = undefined;
  const s = socket;
  socket = null;
  socketToken = null;
  s?.removeAllListeners();
  s?.io.removeAllListeners();
  s?.disconnect();
  rows.value = new Map();
  state.value = 'idle';
  lastError.value = null;
  reconnectAttempt.value = 0;
  view.value = undefined;
  wanted.value = undefined;
  switching.value = false;
  receivedAt.value = undefined;
  snapshots.value = 0;
  updates.value = 0;
}

/** Switch the view (admin: an advertiser or null for all). The server answers with a snapshot that replaces the rows. */
function join(advertiserId: string | null): Promise<void> {
  if (wanted.value === advertiserId && view.value === advertiserId) return Promise.resolve();
  wanted.value = advertiserId;
  switching.value = true;
  lastError.value = null;
  return emitJoin(advertiserId);
}

// ---- derived ----
const { now } = useClock();
const rowList = computed(() => [...rows.value.values()]);
const dayStart = computed(() => utcDayStart(now.value));
const hourStart = computed(() => lastHourStart(now.value, windowMs.value));
const openWindowStart = computed(() => windowStartOf(now.value, windowMs.value));

const totalsToday = computed(() => totalsBetween(rowList.value, dayStart.value));
const totalsLastHour = computed(() => totalsBetween(rowList.value, hourStart.value));
/** The window the clock is in: its bounds, how much of it has passed, and the rows' totals in it. */
function openWindowOf(list: LiveWindowRow[]) {
  const start = openWindowStart.value;
  const totals = totalsBetween(list, start, start + windowMs.value);
  return { start, end: start + windowMs.value, elapsedMs: now.value - start, ...totals };
}
const openWindow = computed(() => openWindowOf(rowList.value));
const allAdvertisers = computed(() => view.value === null);
const campaignRows = (advertiserId: string, campaignId: string) =>
  rowList.value.filter((r) => r.advertiserId === advertiserId && r.campaignId === campaignId);
const lastHourBuckets = computed(() => windowBuckets(rowList.value, {
  from: hourStart.value, now: now.value, windowMs: windowMs.value, bucketMs: chartBucketMs(windowMs.value), allAdvertisers: allAdvertisers.value,
}));

export function useLiveFeed() {
  return {
    // connection
    state: readonly(state),
    lastError: readonly(lastError),
    reconnectAttempt: readonly(reconnectAttempt),
    connect,
    disconnect,
    // view
    view: readonly(view),
    wanted: readonly(wanted),
    switching: readonly(switching),
    join,
    allAdvertisers,
    // data
    rows: rowList,
    windowMs: readonly(windowMs),
    allowedLatenessMs: readonly(allowedLatenessMs),
    watermark: readonly(watermark),
    receivedAt: readonly(receivedAt),
    snapshots: readonly(snapshots),
    updates: readonly(updates),
    now,
    // derived
    totalsToday,
    totalsLastHour,
    openWindow,
    lastHourBuckets,
    /** The rows of one campaign, and its open window (a campaign's page). */
    campaignRows,
    openWindowOf,
  };
}
