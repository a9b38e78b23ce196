/**
 * One ECharts instance on an element for a component's lifetime: drawn on mount and whenever
 * `source` changes, resized with its element, redrawn when the colour scheme flips, disposed on
 * unmount. The option is rebuilt from scratch each time (`chartColors` follows the scheme).
 */
import { init, type ECharts, type EChartsCoreOption } from 'echarts/core';
import { onBeforeUnmount, onMounted, watch, type Ref, type WatchSource } from 'vue';

const dark = typeof window !== 'undefined' ? window.matchMedia?.('(prefers-color-scheme: dark)') : undefined;

/** Axis text and grid line colours of the current colour scheme. */
export function chartColors(): { text: string; line: string } {
  return dark?.matches ? { text: '#93a1b2', line: '#2a3542' } : { text: '#5b6878', line: '#e3e8ee' };
}

/** Text for a tooltip's HTML: values are whatever an ingest token sent. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function useEChart(el: Ref<HTMLElement | undefined>, option: () => EChartsCoreOption, source: WatchSource): void {
  let chart: ECharts | undefined;
  let resizer: ResizeObserver | undefined;

  function render(): void {
    // Series keep their ids across updates (replaceMerge would otherwise recreate them and replay their entry animation).
    chart?.setOption(option(), { replaceMerge: ['series'], lazyUpdate: true });
  }

  onMounted(() => {
    if (!el.value) return;
    chart = init(el.value, undefined, { renderer: 'canvas' });
    render();
    resizer = new ResizeObserver(() => chart?.resize());
    resizer.observe(el.value);
    dark?.addEventListener('change', render);
  });

  watch(source, render);

  onBeforeUnmount(() => {
    dark?.removeEventListener('change', render);
    resizer?.disconnect();
    chart?.dispose();
    chart = undefined;
  });
}
