export { createLogger, logColors, logFormat, prettyDestination, type LogFormat, type Logger } from './logger.js';
export { serveMetrics } from './metrics-server.js';
export { redactUrl, LOG_REDACT_PATHS } from './redact.js';
export { Throttle } from './throttle.js';
