/**
 * Billing exports from the dashboard: GET /api/v1/billing/export with the session's bearer token.
 * `preview` fetches the JSON export (without a breakdown section) and keeps it for display;
 * `download` fetches the chosen format, with the breakdown asked for, as a Blob and saves it
 * (save-file.ts). Periods are picked as whole UTC days, the end day
 * inclusive in the UI and exclusive (`to` = the day after) on the wire.
 *
 * The statement's types come from server/src/contracts/billing-export.ts (numbers are exact
 * decimal strings; every row and the totals carry their maturity).
 */
import { computed, ref, shallowRef } from 'vue';
import { ApiError, fetchJson } from '../api-client';
import { checkRequest, exportFileName, exportPath, type BillingRequest } from '../billing-request';
import type {
  ApiErrorBody, BillingFormat, BillingGranularity, EXPORT_STATUS_HEADER, ExportRow, ExportStatus, ExportTotals, JsonExport,
  JsonExportHeader,
} from '../contracts';
import { saveFile } from '../save-file';
import { useSessionStore } from '../stores/session';

export type { BillingFormat, BillingGranularity };
// The request's pure helpers live in billing-request.ts (unit-tested); the billing page takes them from here.
export {
  PERIOD_PRESETS, checkRequest, exportFileName, presetRange, utcDay, type BillingRequest, type PeriodPreset,
} from '../billing-request';
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
      // The preview shows the statement's rows and totals; a breakdown section goes only into the downloaded file.
      const body = await fetchJson<BillingExportJson>(exportPath({ ...req, breakdown: [] }, 'json'), token, mine.signal);
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
      saveFile(fileName, blob);
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
