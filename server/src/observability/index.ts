export { createLogger, type Logger } from './logger.js';
export { serveMetrics } from './metrics-server.js';
