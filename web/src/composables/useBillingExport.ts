/**
 * Billing exports from the dashboard: GET /api/v1/billing/export with the session's bearer token.
 * `preview` fetches the JSON export and keeps it for display; `download` fetches the chosen
 * format as a Blob and saves it through an object URL (a plain link cannot carry the
 * Authorization header). Periods are picked as whole UTC days, the end day inclusive in the UI
 * and exclusive (`to` = the day after) on the wire.
 *
 * The statement's types come from server/src/contracts/billing-export.ts (numbers are exact
 * decimal strings; every row and the totals carry their maturity).
 */
import { computed, ref, shallowRef } from 'vue';
import { ApiError, fetchJson } from '../api-client';
import type {
  ApiErrorBody, BillingFormat, BillingGranularity, EXPORT_STATUS_HEADER, ExportRow, ExportStatus, ExportTotals, JsonExport,
  JsonExportHeader,
} from '../contracts';
import { useSessionStore } from '../stores/session';

export type { BillingFormat, BillingGranularity };
export type BillingStatus = ExportStatus;
export type BillingExportRow = ExportRow;
export type BillingExportTotals = ExportTotals;
/** Impressions that arrived in the range too late for their own, already final hour: reported by arrival, never billed. */
export type BillingLateUnbillable = JsonExportHeader['late_unbillable'];
/** Per partition, the Kafka offset ranges [first, close) of both inputs the final numbers came from. */
export type BillingLineage = JsonExportHeader['lineage'];

/**
 * The JSON export (format=json): the header (status; final_at for final statements only;
 * late_unbillable; lineage), generated_at (provisional only), the rows, the totals and the digest.
 */
export type BillingExportJson = JsonExport;

/** What the user picked: whole UTC days, `toDay` inclusive. */
export interface BillingRequest {
  advertiserId: string;
  /** YYYY-MM-DD, the first day. */
  fromDay: string;
  /** YYYY-MM-DD, the last day (inclusive). */
  toDay: string;
  granularity: BillingGranularity;
  format: BillingFormat;
}

export type PeriodPreset = 'yesterday' | 'last7' | 'month' | 'lastMonth' | 'custom';

export const PERIOD_PRESETS: ReadonlyArray<{ id: PeriodPreset; label: string }> = [
  { id: 'yesterday', label: 'Yesterday' },
  { id: 'last7', label: 'Last 7 days' },
  { id: 'month', label: 'This month so far' },
  { id: 'lastMonth', label: 'Last month' },
  { id: 'custom', label: 'Custom' },
];

const DAY_MS = 86_400_000;
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

/** Epoch ms → its UTC day, YYYY-MM-DD. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** YYYY-MM-DD → epoch ms of its midnight UTC; undefined when not a real date. */
export function dayStartMs(day: string): number | undefined {
  if (!DAY_RE.test(day)) return undefined;
  const ms = Date.parse(`${day}T00:00:00Z`);
  return Number.isNaN(ms) || utcDay(ms) !== day ? undefined : ms;
}

/** The day after `day` (YYYY-MM-DD). */
export function nextDay(day: string): string {
  const ms = dayStartMs(day);
  if (ms === undefined) throw new RangeError(`not a date: ${day}`);
  return utcDay(ms + DAY_MS);
}

/** A preset's days (inclusive) as of `now` (epoch ms, the server's clock). */
export function presetRange(preset: Exclude<PeriodPreset, 'custom'>, now: number): { fromDay: string; toDay: string } {
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  const d = new Date(today);
  const monthStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  switch (preset) {
    case 'yesterday':
      return { fromDay: utcDay(today - DAY_MS), toDay: utcDay(today - DAY_MS) };
    case 'last7': // the last 7 complete days
      return { fromDay: utcDay(today - 7 * DAY_MS), toDay: utcDay(today - DAY_MS) };
    case 'month':
      return { fromDay: utcDay(monthStart), toDay: utcDay(today) };
    case 'lastMonth':
      return { fromDay: utcDay(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 1)), toDay: utcDay(monthStart - DAY_MS) };
  }
}

/** The export URL: `to` is exclusive on the wire (the day after the last day). */
export function exportPath(req: Pick<BillingRequest, 'advertiserId' | 'fromDay' | 'toDay' | 'granularity'>, format: BillingFormat): string {
  const q = new URLSearchParams({
    advertiser_id: req.advertiserId,
    from: req.fromDay,
    to: DAY_RE.test(req.toDay) && dayStartMs(req.toDay) !== undefined ? nextDay(req.toDay) : req.toDay,
    granularity: req.granularity,
    format,
  });
  return `/api/v1/billing/export?${q.toString()}`;
}

/** tally-<advertiser>-<from>-<to>.<ext>, the days as picked (to inclusive). */
export function exportFileName(req: BillingRequest): string {
  const safe = req.advertiserId.replace(/[^A-Za-z0-9._-]/g, '_');
  return `tally-${safe}-${req.fromDay}-${req.toDay}.${req.format}`;
}

/** Checks the picked request before it goes out; null when fine, else the message and the field. */
export function checkRequest(req: BillingRequest): { message: string; parameter: string } | null {
  if (!req.advertiserId) return { message: 'Pick an advertiser.', parameter: 'advertiser_id' };
  const from = dayStartMs(req.fromDay);
  const to = dayStartMs(req.toDay);
  if (from === undefined) return { message: 'The first day is not a valid date (YYYY-MM-DD).', parameter: 'from' };
  if (to === undefined) return { message: 'The last day is not a valid date (YYYY-MM-DD).', parameter: 'to' };
  if (to < from) return { message: 'The last day is before the first day.', parameter: 'to' };
  return null;
}

/** Reads the API's `{ error: { message, parameter } }` from a failed response. */
async function errorOf(res: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = JSON.parse(await res.text());
  } catch {
    body = undefined;
  }
  const e = (body as Partial<ApiErrorBody> | undefined)?.error;
  return new ApiError(res.status, e?.message ?? `${res.status} ${res.statusText || 'error'}`, e?.parameter);
}

export function useBillingExport() {
  const session = useSessionStore();

  const preview = shallowRef<BillingExportJson>();
  /** The request the preview (or its error) answers. */
  const previewFor = shallowRef<BillingRequest>();
  const previewing = ref(false);
  const previewError = shallowRef<ApiError>();
  const downloading = ref(false);
  const downloadError = shallowRef<ApiError>();
  /** The last saved file: name, size, status header. */
  const lastDownload = shallowRef<{ fileName: string; bytes: number; status: string | null }>();
  let previewController: AbortController | undefined;

  function handle(err: unknown): ApiError {
    const e = err instanceof ApiError ? err : new ApiError(0, String(err));
    if (e.status === 401) session.signOut('Your token is no longer valid (revoked?). Sign in again.');
    return e;
  }

  async function runPreview(req: BillingRequest): Promise<void> {
    previewController?.abort();
    const mine = new AbortController();
    previewController = mine;
    previewing.value = true;
    previewError.value = undefined;
    preview.value = undefined;
    previewFor.value = { ...req };
    try {
      const invalid = checkRequest(req);
      if (invalid) throw new ApiError(400, invalid.message, invalid.parameter);
      const token = session.token;
      if (!token) throw new ApiError(401, 'not signed in');
      const body = await fetchJson<BillingExportJson>(exportPath(req, 'json'), token, mine.signal);
      if (mine.signal.aborted) return;
      preview.value = body;
    } catch (err) {
      if (mine.signal.aborted) return;
      previewError.value = handle(err);
    } finally {
      if (previewController === mine) {
        previewController = undefined;
        previewing.value = false;
      }
    }
  }

  async function runDownload(req: BillingRequest): Promise<void> {
    downloading.value = true;
    downloadError.value = undefined;
    try {
      const invalid = checkRequest(req);
      if (invalid) throw new ApiError(400, invalid.message, invalid.parameter);
      const token = session.token;
      if (!token) throw new ApiError(401, 'not signed in');
      let res: Response;
      try {
        res = await fetch(exportPath(req, req.format), { headers: { Authorization: `Bearer ${token}` } });
      } catch (err) {
        throw new ApiError(0, `cannot reach the tally API (${err instanceof Error ? err.message : String(err)})`);
      }
      if (!res.ok) throw await errorOf(res);
      let blob: Blob;
      try {
        // A cut connection (ClickHouse failed mid-stream) rejects here: never saved as if complete.
        blob = await res.blob();
      } catch (err) {
        throw new ApiError(0, `the export was interrupted (${err instanceof Error ? err.message : String(err)}); try again`);
      }
      const fileName = exportFileName(req);
      const url = URL.createObjectURL(blob);
      try {
        const a = document.createElement('a');
        a.href = url;
        a.download = fileName;
        a.rel = 'noopener';
        a.style.display = 'none';
        document.body.appendChild(a);
        a.click();
        a.remove();
      } finally {
        // Give the browser a moment to start the download before the URL goes away.
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      }
      const status = res.headers.get('X-Tally-Export-Status' satisfies typeof EXPORT_STATUS_HEADER);
      lastDownload.value = { fileName, bytes: blob.size, status };
    } catch (err) {
      downloadError.value = handle(err);
    } finally {
      downloading.value = false;
    }
  }

  function clearPreview(): void {
    previewController?.abort();
    previewController = undefined;
    previewing.value = false;
    preview.value = undefined;
    previewFor.value = undefined;
    previewError.value = undefined;
  }

  return {
    preview,
    previewFor,
    previewing,
    previewError,
    downloading,
    downloadError,
    lastDownload,
    hasPreview: computed(() => preview.value !== undefined),
    runPreview,
    runDownload,
    clearPreview,
  };
}
