/**
 * Access control over socket.io on the real stack (`tally api` as a child process with an
 * aggregator and a sink; two advertisers with real, distinctive counts): advertiser A joining B by
 * any spelling is denied, asking for B in the handshake gives A's own view, and no snapshot,
 * update or refusal ever carries one of B's ids or numbers while B's counts change live.
 */
import assert from 'node:assert/strict';
import { eventually, sleep } from '../kit/harness.js';
import { A_COST, AccessControlWorld, B_COST, B_IMPS, EXTRA_B, Spy } from './access-control-fixtures.js';

describe('access control over socket.io (real Kafka + ClickHouse, tally api as a process)', function () {
  this.timeout(180_000);
  const w = AccessControlWorld.forSuite({ seeded: true });
  const { A, B, A_CMP, B_CMPS, tok } = w;
  const leaks = (text: string) => w.leaks(text);

  it('socket.io: A joining B (any spelling) is denied and never receives B; asking for B in the handshake gives A', async () => {
    const spies: Spy[] = [];
    try {
      const admin = new Spy(w.base, { token: tok.admin });
      const a = new Spy(w.base, { token: tok.a });
      const aWantsB = new Spy(w.base, { token: tok.a, advertiserId: B });
      const aWantsAll = new Spy(w.base, { token: tok.a, advertiserId: null });
      const aWantsBUpper = new Spy(w.base, { token: tok.a, advertiserId: B.toUpperCase(), scopes: ['admin'], admin: true });
      const aWantsBArray = new Spy(w.base, { token: tok.a, advertiserId: [B] });
      const aHeaderB = new Spy(w.base, { token: tok.a, advertiserId: `${B} ` });
      spies.push(admin, a, aWantsB, aWantsAll, aWantsBUpper, aWantsBArray, aHeaderB);
      await Promise.all(spies.map((s) => s.ready()));

      // The live feed does hold B's rows (the admin sees them): there is something to leak.
      const liveB = () => {
        let n = 0;
        const rows = new Map<string, number>();
        for (const s of admin.snapshots) for (const r of s.rows) rows.set(`${r.windowStart}|${r.advertiserId}|${r.campaignId}`, r.impressions);
        for (const u of admin.updates) for (const r of u.rows) rows.set(`${r.windowStart}|${r.advertiserId}|${r.campaignId}`, r.impressions);
        for (const [k, v] of rows) if (k.split('|')[1] === B) n += v;
        return n;
      };
      await eventually('admin sees B live', async () => liveB() === B_IMPS[0] + B_IMPS[1], 30_000, 100);

      for (const s of [a, aWantsB, aWantsAll, aWantsBUpper, aWantsBArray, aHeaderB]) {
        assert.equal(s.snapshots[0].advertiserId, A, 'starts in its own view');
      }
      // A refused initial view is told with `denied` once connected (an unusable one is simply ignored).
      for (const s of [aWantsB, aWantsAll, aWantsBUpper]) {
        await eventually('denied for the refused handshake view', async () => s.denied.length === 1, 5_000, 20);
      }

      // Joins: every spelling of B, all advertisers, and non-string shapes.
      const attempts: unknown[] = [B, B.toUpperCase(), ` ${B}`, `${B} `, `${B}\u0000`, `${B}\n`, 'ADMIN', null, [B], { advertiserId: B }, { toString: B },
        `${A}' OR '1'='1`, 42, true, `advertiser:${B}`];
      for (const v of attempts) {
        const r = await a.join(v);
        assert.equal(r.ok, false, `join ${JSON.stringify(v)} was accepted`);
        // A refusal, not a failure of the server's join handler.
        assert.match((r as { message: string }).message, /not allowed|must be an advertiser id|only an admin/, `join ${JSON.stringify(v)}`);
      }
      await eventually('a denied event per refused join', async () => a.denied.length === attempts.length, 5_000, 20)
        .catch(() => assert.fail(`denied: ${JSON.stringify(a.denied)}`));
      assert.equal(a.snapshots.length, 1, 'a refused join sends no snapshot');
      // A's own view can still be joined (and gives only A).
      assert.deepEqual(await a.join(A), { ok: true });
      await eventually('snapshot after joining A', async () => a.snapshots.length === 2, 5_000, 20);

      // Fresh traffic for B (and a little for A) while everyone is connected.
      await w.ingest(w.events(B, B_CMPS[0], EXTRA_B, B_COST));
      w.addBNumbers([B_IMPS[0] + EXTRA_B, B_IMPS[1]]);
      await w.ingest(w.events(A, A_CMP, 3, A_COST));
      await eventually('admin sees the new B events live', async () => liveB() === B_IMPS[0] + EXTRA_B + B_IMPS[1], 30_000, 100);
      // A negative check needs time: a few more flushes of the feed, in which a leak of B would show.
      await sleep(1_500);

      const aSpies = [a, aWantsB, aWantsAll, aWantsBUpper, aWantsBArray, aHeaderB];
      for (const s of aSpies) {
        for (const snap of s.snapshots) assert.equal(snap.advertiserId, A);
        for (const u of s.updates) assert.equal(u.advertiserId, A);
        const rowsAdv = new Set([...s.snapshots.flatMap((x) => x.rows), ...s.updates.flatMap((x) => x.rows)].map((r) => r.advertiserId));
        assert.ok([...rowsAdv].every((x) => x === A), `rows of ${[...rowsAdv].join(', ')}`);
        const leaked = s.raw.flatMap((t) => leaks(t));
        assert.deepEqual(leaked, [], 'nothing of B in any snapshot or update');
        // A refusal may repeat the id the client itself asked for, but nothing else of B.
        const deniedLeaks = s.denied.flatMap((d) => leaks(d.message).filter((x) => x !== B.toLowerCase()));
        assert.deepEqual(deniedLeaks, [], 'nothing of B in a denied message');
      }
      // A's clients did get live updates of A: the feed was flowing to them.
      await eventually('A sees its own new events', async () => aSpies.every((s) => s.updates.some((u) => u.rows.some((r) => r.advertiserId === A))), 10_000, 50);
      const adminSaw = leaks(admin.raw.join('\n'));
      assert.ok(adminSaw.includes(B.toLowerCase()) && adminSaw.includes(String(B_IMPS[0] + EXTRA_B)), `control: the admin payloads hold B (${adminSaw.join(', ')})`);
    } finally {
      for (const s of spies) s.close();
    }
  });
});
