/**
 * How settled a number is (server/src/contracts/maturity.ts): the words the dashboard shows for
 * each maturity, and the least settled of several (a campaign's total is as settled as its least
 * settled window). Pure: no Vue.
 */
import type { Maturity } from './contracts.js';

/** The contract's own rule (a pure module without imports, bundled as is), not a copy of it. */
export { leastMature } from '../../server/src/contracts/maturity.js';

export const MATURITY_INFO: Record<Maturity, { label: string; mark: string; title: string }> = {
  live: {
    label: 'live', mark: '●',
    title: 'Live: its windows are still open, so late impressions may still add to it.',
  },
  provisional: {
    label: 'provisional', mark: '◐',
    title: 'Provisional: its windows are closed, but its billing hour is not final yet; an impression within the dedup horizon may still revise it.',
  },
  final: {
    label: 'final', mark: '✓',
    title: 'Final: in the immutable billing ledger; it never changes again, whatever arrives later.',
  },
};
