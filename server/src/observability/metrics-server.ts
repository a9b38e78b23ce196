import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What /metrics serves: a registry, or metrics gathered from several (stream threads). */
export interface MetricsSource {
  metrics(): Promise<string>;
  contentType: string;
}

/** Serves GET /metrics (Prometheus text format) for a role without an HTTP API of its own. */
export async function serveMetrics(registry: MetricsSource, host: string, port: number): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      registry.metrics().then(
        (text) => { res.writeHead(200, { 'content-type': registry.contentType }); res.end(text); },
        (err: Error) => { res.writeHead(500); res.end(err.message); },
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('only GET /metrics here\n');
    }
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
