import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The live feed's Prometheus metrics (names prefixed tally_live_). Registered in the registry
 * given to attachLiveFeed (e.g. the API's), or in a registry of its own (LiveFeed.registry), so
 * several feeds in one process (tests) never collide in the default registry.
 */
export class LiveMetrics {
  readonly registry: Registry;
  readonly connectedClients: Gauge;
  readonly connections: Counter;
  readonly refused: Counter;
  readonly denied: Counter;
  readonly revoked: Counter;
  readonly floodDisconnects: Counter;
  readonly snapshotsSent: Counter;
  readonly updatesSent: Counter;
  readonly updateRowsSent: Counter;
  readonly recordsConsumed: Counter;
  readonly consumerLag: Gauge;
  readonly rowsHeld: Gauge;
  readonly caughtUp: Gauge;
  readonly transactionDelay: Histogram;

  constructor(registry?: Registry) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    this.connectedClients = new Gauge({ name: 'tally_live_connected_clients', help: 'socket.io clients connected to the live feed', registers });
    this.connections = new Counter({ name: 'tally_live_connections_total', help: 'Accepted socket.io connections', registers });
    this.refused = new Counter({ name: 'tally_live_handshakes_refused_total', help: 'Refused socket.io handshakes, by reason', labelNames: ['reason'], registers });
    this.denied = new Counter({ name: 'tally_live_joins_denied_total', help: 'Refused room joins', registers });
    this.revoked = new Counter({ name: 'tally_live_revoked_disconnects_total', help: 'Connections closed because their token was revoked or lost access', registers });
    this.floodDisconnects = new Counter({
      name: 'tally_live_flood_disconnects_total', help: 'Connections closed for flooding, by what they flooded (handshakes, joins)',
      labelNames: ['reason'], registers,
    });
    this.snapshotsSent = new Counter({ name: 'tally_live_snapshots_sent_total', help: 'Snapshots sent (one per connect or join)', registers });
    this.updatesSent = new Counter({ name: 'tally_live_updates_sent_total', help: 'Update messages delivered to clients (one per client per update)', registers });
    this.updateRowsSent = new Counter({ name: 'tally_live_update_rows_sent_total', help: 'Rows in update messages, per client', registers });
    this.recordsConsumed = new Counter({
      name: 'tally_live_records_consumed_total', help: 'Records read by the live feed, by topic kind and record kind',
      labelNames: ['topic', 'kind'], registers,
    });
    this.consumerLag = new Gauge({
      name: 'tally_live_consumer_lag', help: 'Records of impression-counts the live feed has not read yet, per partition',
      labelNames: ['partition'], registers,
    });
    this.rowsHeld = new Gauge({ name: 'tally_live_rows_held', help: 'Window rows (per source partition) held by the live feed', registers });
    this.transactionDelay = new Histogram({
      name: 'tally_live_transaction_delay_seconds',
      help: 'From an aggregator transaction (watermark record emitted_at) to the live feed reading it, once caught up',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers,
    });
    this.caughtUp = new Gauge({ name: 'tally_live_caught_up', help: '1 once the live feed has read impression-counts to its end as of its start', registers });
  }
}
