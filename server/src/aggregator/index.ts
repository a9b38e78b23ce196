export { Aggregator } from './aggregator.js';
export { AggregatorMetrics } from './aggregator-metrics.js';
export { windowSettingsOf } from './window-settings.js';
