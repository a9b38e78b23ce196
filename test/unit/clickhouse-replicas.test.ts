import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { ClickHouseClient as RawClient } from '@clickhouse/client';
import { isReplicaUnavailable, ReplicaFailover } from '../../server/src/clickhouse/index.js';
import { loadMigrations, renderMigration } from '../../server/src/clickhouse/migrate.js';
import { loadConfig } from '../../server/src/config/index.js';

/** A stand-in for one server: answers with its name, or throws what `fail` gives. */
function server(name: string, fail?: () => Error | undefined): RawClient & { calls: number } {
  const s = {
    calls: 0,
    async command() {
      s.calls++;
      const err = fail?.();
      if (err) throw err;
      return { query_id: name };
    },
    async insert() {
      s.calls++;
      const err = fail?.();
      if (err) throw err;
      return { query_id: name, executed: true };
    },
    async ping() { return fail?.() ? { success: false, error: new Error('down') } : { success: true }; },
    async close() { /* nothing held */ },
  };
  return s as unknown as RawClient & { calls: number };
}

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
const serverError = (code: number) => () => new Error(`Code: ${code}, e.displayText() = DB::Exception: …`);

describe('ClickHouse replicas: failover', () => {
  it('tells a replica that cannot serve from a request that fails', () => {
    assert.equal(isReplicaUnavailable(refused()), true);
    assert.equal(isReplicaUnavailable(new Error('Timeout error.')), true);
    assert.equal(isReplicaUnavailable(serverError(242)()), true, 'read-only: lost ZooKeeper');
    assert.equal(isReplicaUnavailable(serverError(60)()), false, 'unknown table fails on every replica');
    assert.equal(isReplicaUnavailable(serverError(285)()), false, 'too few live replicas for the quorum: another replica says the same');
  });

  it('moves to the next replica when one is down, and stays there', async () => {
    let aDown = true;
    const a = server('a', () => (aDown ? refused() : undefined));
    const b = server('b');
    const moves: Array<[number, number]> = [];
    const ch = new ReplicaFailover([a, b], (from, to) => moves.push([from, to]));
    assert.equal((await ch.command({ query: 'SELECT 1' })).query_id, 'b');
    assert.deepEqual(moves, [[0, 1]]);
    aDown = false;
    assert.equal((await ch.command({ query: 'SELECT 1' })).query_id, 'b', 'sticks to the replica that answered');
    assert.equal(a.calls, 1);
    assert.equal(ch.preferred, 1);
  });

  it('a server error is the answer: no second replica is asked', async () => {
    const a = server('a', serverError(62));
    const b = server('b');
    const ch = new ReplicaFailover([a, b]);
    await assert.rejects(ch.command({ query: 'SELEKT' }), /Code: 62/);
    assert.equal(b.calls, 0);
  });

  it('every replica down: the last error, after asking each once', async () => {
    const a = server('a', refused);
    const b = server('b', () => new Error('socket hang up'));
    const ch = new ReplicaFailover([a, b]);
    await assert.rejects(ch.command({ query: 'SELECT 1' }), /socket hang up/);
    assert.deepEqual([a.calls, b.calls], [1, 1]);
    assert.equal((await ch.ping()).success, false);
  });

  it('retries an insert of rows elsewhere, never one streaming its values', async () => {
    const a = server('a', refused);
    const b = server('b');
    const ch = new ReplicaFailover([a, b]);
    assert.equal((await ch.insert({ table: 't', values: [{ x: 1 }], format: 'JSONEachRow' })).query_id, 'b');
    const c = new ReplicaFailover([server('c', refused), server('d')]);
    await assert.rejects(c.insert({ table: 't', values: Readable.from([]), format: 'JSONEachRow' }), /ECONNREFUSED/);
  });
});

describe('ClickHouse replicas: migrations and config', () => {
  const byName = (name: string) => loadMigrations().find((m) => m.name === name)!;

  it('a cluster gets Replicated engines at one ZooKeeper path per database and table', () => {
    const counts = renderMigration(byName('002_impression_counts'), 'tally', 'prod');
    assert.match(counts, /ENGINE = ReplicatedReplacingMergeTree\('\/clickhouse\/tables\/prod\/tally\/impression_counts', '\{replica\}', version\)/);
    const letters = renderMigration(byName('005_dead_letters'), 't_x', 'prod');
    assert.match(letters, /ENGINE = ReplicatedReplacingMergeTree\('\/clickhouse\/tables\/prod\/t_x\/dead_letters', '\{replica\}'\)\n/);
    const plain = renderMigration(byName('009_reconciliations'), 'tally', 'prod');
    assert.match(plain, /ENGINE = ReplicatedMergeTree\('\/clickhouse\/tables\/prod\/tally\/reconciliations', '\{replica\}'\)/);
    assert.doesNotMatch(renderMigration(byName('002_impression_counts'), 'tally'), /Replicated/, 'no cluster: as written');
    assert.doesNotMatch(renderMigration(byName('013_dead_letters_arrival_period'), 'tally', 'prod'), /Replicated/, 'an ALTER is left alone');
  });

  it('several URLs are replicas; the quorum defaults to all of them with a cluster', () => {
    const c = loadConfig({ CLICKHOUSE_URL: 'http://u:p%40ss@ch1:8123, http://ch2:8123', TALLY_CLICKHOUSE_CLUSTER: 'prod' }).clickhouse;
    assert.deepEqual(c.urls, ['http://ch1:8123', 'http://ch2:8123']);
    assert.deepEqual([c.url, c.user, c.password, c.cluster, c.insertQuorum], ['http://ch1:8123', 'u', 'p@ss', 'prod', 2]);
    const quorum1 = loadConfig({ CLICKHOUSE_URL: 'http://ch1:8123,http://ch2:8123', TALLY_CLICKHOUSE_CLUSTER: 'prod', TALLY_CLICKHOUSE_INSERT_QUORUM: '1' }).clickhouse;
    assert.equal(quorum1.insertQuorum, 1);
    const local = loadConfig({ TALLY_CLICKHOUSE_REPLICAS: '2', TALLY_CLICKHOUSE_HTTP_PORT: '18123', CLICKHOUSE_PASSWORD: 'x' }).clickhouse;
    assert.deepEqual([local.urls, local.cluster, local.insertQuorum], [['http://127.0.0.1:18123', 'http://127.0.0.1:18223'], 'tally', 2]);
    const single = loadConfig({ CLICKHOUSE_PASSWORD: 'x' }).clickhouse;
    assert.deepEqual([single.urls.length, single.cluster, single.insertQuorum], [1, undefined, 0]);
    assert.throws(() => loadConfig({ CLICKHOUSE_URL: 'http://ch1:8123,not a url' }), /CLICKHOUSE_URL/);
  });
});
