export { Aggregator } from './aggregator.js';
export { AggregatorMetrics } from './aggregator-metrics.js';
