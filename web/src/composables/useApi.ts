/**
 * `useApiResource`: one GET of /api/v1 with the session's bearer token (optionally polled), with
 * the loading / error states every view shows.
 */
import { onScopeDispose, ref, shallowRef, toValue, watch, type MaybeRefOrGetter, type Ref } from 'vue';
import { ApiError, fetchJson } from '../api-client';
import { useSessionStore } from '../stores/session';

export { ApiError, fetchJson };

export interface ApiResource<T> {
  data: Ref<T | undefined>;
  /** True until the first answer (or error); later refreshes keep showing the previous data. */
  loading: Ref<boolean>;
  error: Ref<ApiError | undefined>;
  /** Epoch ms of the last successful answer. */
  updatedAt: Ref<number | undefined>;
  refresh: () => Promise<void>;
}

/**
 * GET `path` (null: nothing to fetch yet) with the session token; refetches when the path
 * changes and every `intervalMs` if given (read after each answer, so a caller can stop polling
 * a range that has ended; no overlapping requests; stops with the component).
 * A 401 signs the session out (the token was revoked).
 */
export function useApiResource<T>(path: MaybeRefOrGetter<string | null>, opts: { intervalMs?: MaybeRefOrGetter<number | undefined> } = {}): ApiResource<T> {
  const session = useSessionStore();
  const data = shallowRef<T>();
  const loading = ref(true);
  const error = shallowRef<ApiError>();
  const updatedAt = ref<number>();
  let controller: AbortController | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let disposed = false;

  async function refresh(): Promise<void> {
    const p = toValue(path);
    const token = session.token;
    if (timer) clearTimeout(timer);
    controller?.abort();
    if (p === null || token === null) return;
    const mine = new AbortController();
    controller = mine;
    try {
      data.value = await fetchJson<T>(p, token, mine.signal);
      error.value = undefined;
      updatedAt.value = Date.now();
    } catch (err) {
      if (mine.signal.aborted) return;
      error.value = err instanceof ApiError ? err : new ApiError(0, String(err));
      if (error.value.status === 401) session.signOut('Your token is no longer valid (revoked?). Sign in again.');
    } finally {
      if (controller === mine) {
        controller = undefined;
        loading.value = false;
        const every = toValue(opts.intervalMs);
        if (every && !disposed) timer = setTimeout(() => void refresh(), every);
      }
    }
  }

  watch(() => toValue(path), () => {
    data.value = undefined;
    loading.value = true;
    void refresh();
  }, { immediate: true });

  onScopeDispose(() => {
    disposed = true;
    if (timer) clearTimeout(timer);
    controller?.abort();
  });

  return { data, loading, error, updatedAt, refresh };
}
