/**
 * Who is signed in: the bearer token (kept in sessionStorage, so it lives as long as the tab)
 * and what GET /api/v1/me says it may see.
 */
import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import type { MeResponse } from '../contracts';
import { ApiError, fetchJson } from '../api-client';

const TOKEN_KEY = 'tally.token';

export type SessionStatus = 'signed-out' | 'checking' | 'signed-in' | 'unreachable';

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export const useSessionStore = defineStore('session', () => {
  const token = ref<string | null>(storedToken());
  const me = ref<MeResponse | null>(null);
  const status = ref<SessionStatus>(token.value ? 'checking' : 'signed-out');
  /** Why the user was signed out or could not be signed in, shown on the sign-in page. */
  const notice = ref<string | null>(null);
  /** The API could not be reached while restoring the session. */
  const unreachableMessage = ref<string | null>(null);
  let restoring: Promise<void> | null = null;

  const isAdmin = computed(() => me.value?.admin === true);
  /** Advertiser ids the token may read; null = all (admin). */
  const advertisers = computed(() => (me.value ? me.value.advertisers : []));
  const canReadCounts = computed(() => isAdmin.value || (advertisers.value?.length ?? 0) > 0);
  const canSwitchAdvertiser = computed(() => isAdmin.value || (advertisers.value?.length ?? 0) > 1);

  function accept(t: string, who: MeResponse): void {
    token.value = t;
    me.value = who;
    status.value = 'signed-in';
    notice.value = null;
    unreachableMessage.value = null;
    try {
      sessionStorage.setItem(TOKEN_KEY, t);
    } catch {
      /* storage disabled: the session lasts until reload */
    }
  }

  /** Checks the token with GET /api/v1/me; throws an Error with a message for the form. */
  async function signIn(raw: string): Promise<void> {
    const t = raw.trim().replace(/^Bearer\s+/i, '');
    if (!t) throw new Error('Paste a token first.');
    try {
      accept(t, await fetchJson<MeResponse>('/api/v1/me', t));
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        throw new Error('This token is not valid: unknown or revoked.');
      }
      throw err instanceof Error ? err : new Error(String(err));
    }
  }

  function signOut(reason?: string): void {
    token.value = null;
    me.value = null;
    status.value = 'signed-out';
    notice.value = reason ?? null;
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* ignore */
    }
  }

  /** Resolves once the stored token (if any) has been checked. Safe to call often. */
  function ready(): Promise<void> {
    if (status.value !== 'checking') return Promise.resolve();
    restoring ??= (async () => {
      const t = token.value;
      if (!t) return;
      try {
        accept(t, await fetchJson<MeResponse>('/api/v1/me', t));
      } catch (err) {
        if (err instanceof ApiError && err.status !== 0 && err.status < 500) {
          signOut('Your session ended: the token is no longer valid. Sign in again.');
        } else {
          status.value = 'unreachable';
          unreachableMessage.value = err instanceof Error ? err.message : String(err);
        }
      } finally {
        restoring = null;
      }
    })();
    return restoring;
  }

  /** After 'unreachable': try the stored token again. */
  function retry(): Promise<void> {
    if (token.value) status.value = 'checking';
    return ready();
  }

  return { token, me, status, notice, unreachableMessage, isAdmin, advertisers, canReadCounts, canSwitchAdvertiser, signIn, signOut, ready, retry };
});
