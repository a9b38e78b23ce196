/**
 * Sockets fail closed like REST: with the token store (ClickHouse) stopped, REST answers 503
 * after its one-second cache and every open live socket is told and disconnected within a few
 * seconds, so a token revoked during the outage cannot keep watching. A private ClickHouse on its
 * own ports, so stopping it disturbs no other test.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse, migrate } from '../../server/src/clickhouse/index.js';
import { loadConfig } from '../../server/src/config/index.js';
import type { ClientToServerEvents, ServerToClientEvents } from '../../server/src/contracts/live-protocol.js';
import { LocalClickHouse } from '../../server/src/stack/clickhouse-server.js';
import { createSandbox, eventually, freePort, RoleProcess } from '../kit/harness.js';

describe('token store outage (tally api as a process, a private ClickHouse)', function () {
  this.timeout(180_000);

  it('REST answers 503 and open sockets are disconnected while the token store is down; both recover', async function () {
    if (loadConfig().clickhouse.external) this.skip();
    const sb = await createSandbox('revokeout');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-revoke-ch-'));
    const env: NodeJS.ProcessEnv = { ...sb.env, CLICKHOUSE_URL: undefined, TALLY_STACK_DIR: dir, TALLY_CLICKHOUSE_HTTP_PORT: '28423', TALLY_CLICKHOUSE_TCP_PORT: '29400' };
    const config = loadConfig(env);
    const say = (m: string) => process.stderr.write(`      [private clickhouse] ${m}\n`);
    const lc = new LocalClickHouse(config);
    await lc.start(say);
    const ch = createClickHouse(config);
    let api: RoleProcess | undefined;
    const sockets: Array<{ close(): void }> = [];
    try {
      await migrate([ch], config.clickhouse.database);
      const { token } = await TokenStore.forClickHouse(ch, config.clickhouse.database).create('outage reader', ['advertiser:adv-out']);
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      api = new RoleProcess('api', { ...env, TALLY_HTTP_PORT: String(port) }, ['--no-web-build']);
      await eventually('api ready with its live feed', async () => {
        if (!api?.alive) throw new Error(`api exited:\n${api?.log()}`);
        const r = await fetch(`${base}/readyz`);
        return r.ok && ((await r.json()) as { liveFeed: boolean }).liveFeed;
      }, 90_000, 200);
      const me = () => fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
      const connect = () => {
        const s: Socket<ServerToClientEvents, ClientToServerEvents> = io(base, { path: '/socket.io', auth: { token }, reconnection: false, transports: ['websocket'] });
        const seen = { snapshots: 0, denied: [] as string[], disconnectedAt: 0, connectError: '' };
        s.on('snapshot', () => seen.snapshots++);
        s.on('denied', (d) => seen.denied.push(d.message));
        s.on('disconnect', () => { seen.disconnectedAt = Date.now(); });
        s.on('connect_error', (e) => { seen.connectError = e.message; });
        sockets.push(s);
        return seen;
      };
      assert.equal(await me(), 200);
      const live = connect();
      await eventually('a snapshot', async () => live.snapshots > 0, 15_000, 20);

      assert.equal(await lc.stop(), true, 'ClickHouse stopped');
      const downAt = Date.now();
      await eventually('REST to answer 503', async () => (await me()) === 503, 10_000, 100);
      const restAfter = Date.now() - downAt;
      await eventually('the socket to be disconnected', async () => live.disconnectedAt > 0, 15_000, 50);
      const socketAfter = live.disconnectedAt - downAt;
      process.stderr.write(`      [outage] REST 503 after ${restAfter} ms, socket disconnected after ${socketAfter} ms (${live.denied.join('; ')})\n`);
      assert.ok(live.denied.some((m) => /token store unavailable/.test(m)), JSON.stringify(live.denied));
      assert.ok(socketAfter <= 6_000, `socket closed ${socketAfter} ms after the store went down`);
      const refused = connect();
      await eventually('a new socket refused', async () => refused.connectError !== '', 10_000, 50);
      assert.equal(refused.connectError, 'unavailable');
      assert.equal(refused.snapshots, 0);

      await lc.start(say);
      await eventually('REST to answer again', async () => (await me()) === 200, 30_000, 200);
      const back = connect();
      await eventually('a socket connects again', async () => back.snapshots > 0, 15_000, 50);
    } finally {
      for (const s of sockets) s.close();
      await api?.stop();
      await ch.close();
      if (!(await lc.ping().catch(() => false))) await lc.start(say).catch(() => undefined);
      await lc.stop();
      fs.rmSync(dir, { recursive: true, force: true });
      await sb.cleanup();
    }
  });
});
