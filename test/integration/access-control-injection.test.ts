/**
 * Injection resistance on the real stack (`tally api` as a child process): injection-shaped and
 * malformed values in every parameter of every read route get a 400 naming the parameter, and
 * none of them reaches ClickHouse (checked in system.query_log, with a positive control showing
 * that the check does see a legitimate request's value).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { queryRows, stringLiteral } from '../../server/src/clickhouse/index.js';
import { eventually } from '../kit/harness.js';
import { AccessControlWorld, type ErrorShape, get, json } from './access-control-fixtures.js';

/** Percent-encodes every byte that is not unreserved (spaces as %20, NUL as %00, quotes, UTF-8…). */
const enc = (v: string) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const qs = (params: Array<[string, string]>) => params.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');

/** A LIKE pattern matching `s` literally anywhere (\, % and _ escaped), as a SQL string literal. */
function likeContains(s: string): string {
  return stringLiteral(`%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
}

/**
 * How many statements in system.query_log contain each marker (after SYSTEM FLUSH LOGS). One query
 * for all markers; the markers appear in it only escaped, so it never matches itself.
 */
async function queryLogHits(ch: ClickHouseClient, markers: readonly string[]): Promise<number[]> {
  await ch.command({ query: 'SYSTEM FLUSH LOGS' });
  const out: number[] = [];
  const CHUNK = 200;
  for (let i = 0; i < markers.length; i += CHUNK) {
    const part = markers.slice(i, i + CHUNK);
    const cols = part.map((m, j) => `countIf(query LIKE ${likeContains(m)}) AS m${j}`).join(', ');
    const rows = await queryRows<Record<string, string | number>>(ch,
      // Without this check's own statements (time markers have nothing to escape, so they appear in it verbatim).
      `SELECT ${cols} FROM system.query_log WHERE event_date >= yesterday() AND query NOT LIKE ${likeContains('system.query_log')}`);
    part.forEach((_m, j) => out.push(Number(rows[0][`m${j}`])));
  }
  return out;
}

interface Probe { path: string; token: string; query: string; parameter: string; markers: string[] }

/** A unique marker, remembered in `into`: if it ever shows in system.query_log, its value reached ClickHouse. */
function newMarker(into: string[]): string {
  const m = `zz_inj_${crypto.randomBytes(5).toString('hex')}`;
  into.push(m);
  return m;
}

/** A time as the SQL literal a lenient parser would have sent. */
const secLiteral = (ms: number) => `toDateTime(${Math.floor(ms / 1000)})`;
/** A second far in the future (a unique time marker). */
const rndSecond = () => 3_000_000_000 + crypto.randomInt(1_000_000_000);

/**
 * Every malformed value of every parameter of the read routes, as admin (and as advertiser A for
 * its own advertiser_id), each with the markers that would show in system.query_log had it reached
 * ClickHouse (added to allMarkers): hostile strings, dates that are not dates, ranges out of order
 * or over the limit, unknown granularities and formats, repeated parameters.
 */
function malformedProbes(w: AccessControlWorld, allMarkers: string[]): Probe[] {
  const { A, A_CMP, tok, dayStart, billingFrom, billingTo } = w;
  const probes: Probe[] = [];
  const marker = () => newMarker(allMarkers);
  const validCounts: Record<string, string> = {
    advertiser_id: A, campaign_id: A_CMP, from: String(dayStart), to: String(dayStart + 86_400_000), granularity: 'hour',
  };
  const validBilling: Record<string, string> = { advertiser_id: A, from: billingFrom, to: billingTo, granularity: 'day', format: 'json' };
  const hostile = (m: string): string[] => [
    `${m}'`, `'${m}`, `${m}"`, `${m}' OR 1=1 --`, `' OR '1'='1' -- ${m}`, `${m}' OR advertiser_id != '`, `${m}\\`, `${m}\\'`, `${m}\\\\''`,
    `${m}/* */`, `/*${m}*/`, `${m}'/**/OR/**/1=1#`, `${m}'; DROP TABLE impression_counts; --`, `${m}; DROP TABLE api_tokens`,
    `${m}') UNION ALL SELECT * FROM system.tables --`, `${m}\u0000`, `\u0000${m}`, `${m}\u0000' OR 1=1`, `${m}${'A'.repeat(10_240)}`,
    `${m}${'-'.repeat(10_240)}`, `${m}-ädv`, `${m}\u202e`, `${m}\uff07 OR 1=1`, `${m}😀`, `${m}\r\nSELECT 1`, `${m}\t`, ` ${m}`, `${m} `,
    `${m}%`, `${m}%27`, `["${m}"]`, `{"$ne":"${m}"}`, `${m}","x`, `${m}) OR (1=1`, `${m}\`x\``, `$${m}$`, `${m}?`, `${m}&x=1`,
  ];
  const add = (path: string, valid: Record<string, string>, param: string, value: string, markers: string[], token = tok.admin) => {
    probes.push({ path, token, query: qs(Object.entries({ ...valid, [param]: value })), parameter: param, markers });
  };
  const routes: Array<[string, Record<string, string>]> = [
    ['/api/v1/counts', validCounts], ['/api/v1/campaigns', { advertiser_id: A }], ['/api/v1/billing/export', validBilling],
  ];
  for (const [path, valid] of routes) {
    for (const param of Object.keys(valid)) {
      const m = marker();
      for (const v of hostile(m)) add(path, valid, param, v, [m]);
      // The same for the advertiser's own token (validation comes before the scope check).
      if (param === 'advertiser_id') {
        const ma = marker();
        for (const v of hostile(ma).slice(0, 12)) add(path, valid, param, v, [ma], tok.a);
      }
    }
  }

  // Dates that are not dates, with markers for what a lenient parser would have sent as a literal.
  const rndYear = () => 2070 + crypto.randomInt(29);
  const pad = (n: number) => String(n).padStart(2, '0');
  const badDates = (): Array<[string, string[]]> => {
    const y = rndYear();
    const mo = 1 + crypto.randomInt(12);
    const [h, mi, s] = [crypto.randomInt(24), crypto.randomInt(60), crypto.randomInt(60)];
    const lenient = (yy: number, mm: number, dd: number, hh: number) => [secLiteral(Date.UTC(yy, mm - 1, dd, hh, mi, s))];
    return [
      [`${y}-02-30T${pad(h)}:${pad(mi)}:${pad(s)}Z`, lenient(y, 2, 30, h)],
      [`${y}-${pad(mo)}-15T24:${pad(mi)}:${pad(s)}Z`, lenient(y, mo, 15, 24)],
      [`${y}-${pad(mo)}-32T${pad(h)}:${pad(mi)}:${pad(s)}Z`, lenient(y, mo, 32, h)],
      [`${y}-13-10T${pad(h)}:${pad(mi)}:${pad(s)}Z`, lenient(y, 13, 10, h)],
      [`${y}-${pad(mo)}-10T${pad(h)}:${pad(mi)}:${pad(s)}`, lenient(y, mo, 10, h)], // no zone
      [`${y}-${pad(mo)}-10T${pad(h)}:${pad(mi)}:${pad(s)}+25:00`, lenient(y, mo, 10, h)],
      [`${y}-${pad(mo)}-10 ${pad(h)}:${pad(mi)}:${pad(s)}Z`, lenient(y, mo, 10, h)],
      [`${Date.UTC(y, mo - 1, 10, h, mi, s)}.5`, lenient(y, mo, 10, h)],
      [`${Date.UTC(y, mo - 1, 10, h, mi, s) / 1000}e3`, lenient(y, mo, 10, h)],
      [`0x${Date.UTC(y, mo - 1, 10, h, mi, s).toString(16)}`, lenient(y, mo, 10, h)],
      [`-${Date.UTC(y, mo - 1, 10, h, mi, s)}`, lenient(y, mo, 10, h)],
      [`${Date.UTC(y, mo - 1, 10, h, mi, s)}0`, [secLiteral(Date.UTC(y, mo - 1, 10, h, mi, s) * 10)]], // beyond 2106
      ['2106-02-07T06:28:16Z', []], ['1969-12-31T23:59:59Z', []], ['yesterday', []], ['now()', []], ['NaN', []], ['', []],
    ];
  };
  for (const [path, valid] of [routes[0], routes[2]]) {
    for (const param of ['from', 'to']) {
      for (const [v, markers] of badDates()) {
        allMarkers.push(...markers);
        add(path, valid, param, v, markers);
      }
    }
  }
  // from > to, from = to, ranges over the limit: valid values each, unique times as markers.
  const rndDay = () => Date.UTC(rndYear(), 0, 1) + crypto.randomInt(300) * 86_400_000;
  const ranges: Array<[string, Record<string, string>, number, number, string]> = [];
  for (let i = 0; i < 2; i++) {
    const s = rndSecond() * 1000;
    ranges.push(['/api/v1/counts', validCounts, s + 3_600_000, s, 'from'], ['/api/v1/counts', validCounts, s + 5_000, s + 5_000, 'from'],
      ['/api/v1/counts', validCounts, s, s + 94 * 86_400_000, 'to'], ['/api/v1/counts', validCounts, s, s + 93 * 86_400_000 + 1_000, 'to']);
    const d = rndDay();
    ranges.push(['/api/v1/billing/export', validBilling, d + 86_400_000, d, 'from'], ['/api/v1/billing/export', validBilling, d, d, 'from'],
      ['/api/v1/billing/export', validBilling, d, d + 94 * 86_400_000, 'to'],
      ['/api/v1/billing/export', validBilling, d + 3_600_000 * 5, d + 86_400_000, 'from'], // not aligned to the day
      ['/api/v1/billing/export', validBilling, d, d + 86_400_000 + 1_000, 'to']);
  }
  for (const [path, valid, from, to, parameter] of ranges) {
    const markers = [secLiteral(from), secLiteral(to)];
    allMarkers.push(...markers);
    probes.push({ path, token: tok.admin, query: qs(Object.entries({ ...valid, from: String(from), to: String(to) })), parameter, markers });
  }
  // Unknown granularity and format values (without and with markers).
  const gm = marker();
  for (const g of ['HOUR', 'hourly', 'minute', 'week', 'window ', ' day', 'day\u0000', `hour${gm}`, `hour' OR 1=1 --${gm}`]) {
    add('/api/v1/counts', validCounts, 'granularity', g, g.includes(gm) ? [gm] : []);
    add('/api/v1/billing/export', validBilling, 'granularity', g, g.includes(gm) ? [gm] : []);
  }
  add('/api/v1/billing/export', validBilling, 'granularity', 'window', []); // valid for counts, not for billing
  for (const f of ['xml', 'CSV', 'Json', 'csv ', 'parquet', 'TabSeparated', `json${gm}`, `csv' FORMAT Native --${gm}`]) {
    add('/api/v1/billing/export', validBilling, 'format', f, f.includes(gm) ? [gm] : []);
  }
  // Repeated parameters, each parameter of each route.
  for (const [path, valid] of routes) {
    for (const param of Object.keys(valid)) {
      const m = marker();
      probes.push({ path, token: tok.admin, query: `${qs(Object.entries(valid))}&${enc(param)}=${enc(`${m}'`)}`, parameter: param, markers: [m] });
    }
  }
  return probes;
}

describe('injection resistance (real Kafka + ClickHouse, tally api as a process)', function () {
  this.timeout(180_000);
  const w = AccessControlWorld.forSuite({ seeded: false });
  const { A, tok } = w;

  it('injection-shaped and malformed values in every parameter: 400 naming it, and none reaches ClickHouse', async () => {
    const allMarkers: string[] = [];
    const probes = malformedProbes(w, allMarkers);
    const marker = () => newMarker(allMarkers);

    const failures: string[] = [];
    await Promise.all(Array.from({ length: 8 }, async (_x, worker) => {
      for (let i = worker; i < probes.length; i += 8) {
        const p = probes[i];
        const what = `${p.path}?${p.query.slice(0, 160)}`;
        const a = await get(w.base, `${p.path}?${p.query}`, p.token);
        let body: ErrorShape;
        try {
          body = json<unknown>(a, what);
        } catch (err) {
          failures.push(String(err));
          continue;
        }
        if (a.status !== 400 || body.error?.status !== 400 || typeof body.error.message !== 'string' || body.error.message.length === 0
          || body.error.parameter !== p.parameter) {
          failures.push(`${what} → ${a.status} ${a.text.slice(0, 200)} (want 400 naming ${p.parameter})`);
        }
      }
    }));

    // Unknown parameters (hostile names and values) are ignored: 200, and they reach no SQL either.
    const ignored: string[] = [];
    for (const path of ['/api/v1/advertisers', '/api/v1/me', `/api/v1/campaigns`, `/api/v1/counts`]) {
      const m = marker();
      ignored.push(m);
      const query = `advertiser_id=${A}&${enc(`${m}' OR 1=1 --`)}=${enc(`${m}'; DROP TABLE impression_counts`)}&x${enc(m)}=${enc(`' OR '1'='1 ${m}`)}`;
      const a = await get(w.base, `${path}?${query}`, tok.a);
      if (a.status !== 200) failures.push(`${path} with unknown hostile parameters → ${a.status} ${a.text.slice(0, 200)}`);
    }
    process.stderr.write(`      [acl] ${probes.length} malformed probes, ${allMarkers.length} markers\n`);
    assert.deepEqual(failures, [], `${failures.length} of ${probes.length} probes failed:\n${failures.slice(0, 30).join('\n')}`);

    // Positive control in the same check: a legitimate request with a unique (valid) id does reach query_log.
    const hex = crypto.randomBytes(5).toString('hex');
    const ctrlId = `adv_ctrl_${hex}`;
    const ctrlSecond = rndSecond();
    // Escaping control: a campaign id equal to `cmp_lk_<hex>` except with X for each _. An unescaped
    // `_` (LIKE's any-character) would make the pattern for `cmp_lk_<hex>` match it.
    const lookalikeCampaign = `cmpXlkX${hex}`;
    assert.equal((await get(w.base, `/api/v1/counts?advertiser_id=${ctrlId}&campaign_id=${lookalikeCampaign}&from=${ctrlSecond * 1000}`, tok.admin)).status, 200);
    const checked = [ctrlId, lookalikeCampaign, secLiteral(ctrlSecond * 1000), `cmp_lk_${hex}`, ...allMarkers, ...ignored];
    let hits: number[] = [];
    await eventually('the control request in system.query_log', async () => {
      hits = await queryLogHits(w.clickhouse, checked);
      return hits[0] > 0;
    }, 15_000, 500);
    assert.ok(hits[0] > 0 && hits[1] > 0 && hits[2] > 0, `control: legitimate values not found in query_log: ${hits.slice(0, 3).join(', ')}`);
    assert.equal(hits[3], 0, 'the LIKE pattern is escaped: _ matches only _, not the X of the look-alike');
    const reached = checked.slice(4).filter((_m, i) => hits[i + 4] > 0);
    assert.deepEqual(reached, [], `hostile values that reached ClickHouse: ${reached.join(', ')}`);
  });
});
