/** Plain REST calls to /api/v1 with a bearer token (no Vue): used by the session store and useApiResource. */
import type { ApiErrorBody } from './contracts';

/** A failed API call: the server's `{ error: { status, message, parameter? } }`, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly parameter?: string) {
    super(message);
    this.name = 'ApiError';
  }
}

/** GET a JSON resource with a bearer token; throws ApiError. */
export async function fetchJson<T>(path: string, token: string, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' }, signal });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiError(0, `cannot reach the tally API (${err instanceof Error ? err.message : String(err)})`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const e = (body as Partial<ApiErrorBody> | undefined)?.error;
    throw new ApiError(res.status, e?.message ?? `${res.status} ${res.statusText || 'error'}`, e?.parameter);
  }
  if (body === undefined) throw new ApiError(res.status, `unexpected response from ${path} (not JSON)`);
  return body as T;
}
