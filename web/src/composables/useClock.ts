import { readonly, ref } from 'vue';

/**
 * One shared clock for the whole app, ticking every second, corrected by the server's clock
 * (the live feed reports serverTime), so "today", "the last hour" and the open window follow
 * the server's idea of now, not a skewed laptop clock.
 */
const now = ref(Date.now());
let offsetMs = 0;
let timer: ReturnType<typeof setInterval> | undefined;
let users = 0;

function tick(): void {
  now.value = Date.now() + offsetMs;
}

/** Records the server's time as observed now (called on every snapshot/update). */
export function observeServerTime(serverTime: number): void {
  offsetMs = serverTime - Date.now();
  tick();
}

export function useClock() {
  return {
    now: readonly(now),
    /** Start ticking (idempotent per caller); returns the stop function. */
    start(): () => void {
      users++;
      timer ??= setInterval(tick, 1000);
      tick();
      let stopped = false;
      return () => {
        if (stopped) return;
        stopped = true;
        if (--users === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },
  };
}
