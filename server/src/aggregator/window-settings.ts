import type { TallyConfig } from '../config/index.js';
import type { WindowSettings } from './core/index.js';

/** The core's rules of windows, event time and breakdowns, as configured. */
export function windowSettingsOf(config: TallyConfig): WindowSettings {
  return {
    windowMs: config.windowMs,
    outOfOrdernessMs: config.outOfOrdernessMs,
    allowedLatenessMs: config.allowedLatenessMs,
    dedupHorizonMs: config.dedupHorizonMs,
    maxClockSkewMs: config.maxClockSkewMs,
    partitions: config.partitions,
    idleTimeoutMs: config.idleTimeoutMs,
    dimensions: config.dimensions,
    dimensionValueLimit: config.dimensionValueLimit,
  };
}
