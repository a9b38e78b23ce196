/**
 * The budgets that keep one client from stalling the API: failed tokens per address (before any
 * lookup), the live feed's handshakes, sockets, snapshots and joins. Pure, with a fake clock.
 */
import assert from 'node:assert/strict';
import { AuthFailureLimiter, addressKey, generateToken, type Principal, type TokenVerifier } from '../../server/src/auth/index.js';
import { LiveBudgets, TokenBucket } from '../../server/src/live/socket-budgets.js';

let now = 1_000_000;
const clock = () => now;

const verifierKnowing = (known: string[]): TokenVerifier => ({
  verify: async (): Promise<Principal | undefined> => undefined,
  recentlyValid: (token) => known.includes(token),
});

describe('abuse limits', () => {
  beforeEach(() => { now = 1_000_000; });

  describe('AuthFailureLimiter', () => {
    it('refuses an address over its limit before any lookup, for the rest of the minute', () => {
      const l = new AuthFailureLimiter(3, clock);
      const v = verifierKnowing([]);
      const a = addressKey('10.0.0.1');
      for (let i = 0; i < 3; i++) {
        const admission = l.admit(a, undefined, v);
        assert.ok('settle' in admission);
        admission.settle(false);
      }
      assert.equal(l.admit(a, undefined, v).retryAfterS, 60);
      assert.equal(l.admit(addressKey('10.0.0.2'), undefined, v).retryAfterS, 0, 'another address is not limited');
      now += 59_500;
      assert.equal(l.admit(a, undefined, v).retryAfterS, 1);
      now += 500;
      assert.equal(l.admit(a, undefined, v).retryAfterS, 0, 'a new minute');
    });

    it('checks in flight count against the limit until they settle; valid ones leave no trace', () => {
      const l = new AuthFailureLimiter(3, clock);
      const v = verifierKnowing([]);
      const a = addressKey('10.0.0.3');
      const inFlight = [1, 2, 3].map(() => l.admit(a, generateToken().token, v));
      assert.ok(inFlight.every((x) => 'settle' in x));
      assert.ok(l.admit(a, generateToken().token, v).retryAfterS > 0, 'a fourth concurrent check waits');
      for (const x of inFlight) if ('settle' in x) x.settle(true);
      assert.equal(l.retryAfterS(a), 0, 'all three were valid');
    });

    it('a limited address: a recently valid token passes; one unknown well-formed token per second is looked up; garbage never', () => {
      const valid = generateToken().token;
      const l = new AuthFailureLimiter(1, clock);
      const v = verifierKnowing([valid]);
      const a = addressKey('::ffff:127.0.0.1');
      l.recordFailure(a);
      const admitted = (token: string) => {
        const x = l.admit(a, token, v);
        if ('settle' in x) x.settle(token === valid);
        return x.retryAfterS === 0;
      };
      assert.equal(admitted(valid), true);
      assert.equal(admitted(valid), true, 'every time');
      assert.equal(admitted('not-a-token'), false);
      assert.equal(admitted(generateToken().token), true, 'the first probe');
      assert.equal(admitted(generateToken().token), false, 'the second within the second is refused');
      now += 1_000;
      assert.equal(admitted(generateToken().token), true);
      let looked = 0;
      for (let i = 0; i < 10_000; i++) if (admitted(generateToken().token)) looked++;
      assert.equal(looked, 0, 'a flood within one second costs no lookup');
    });

    it('IPv6 addresses of one /56 share a budget; memory is bounded', () => {
      const l = new AuthFailureLimiter(1, clock, 100);
      l.recordFailure(addressKey('2001:db8:0:1::1'));
      assert.ok(l.retryAfterS(addressKey('2001:db8:0:2::9')) > 0);
      for (let i = 0; i < 1000; i++) l.recordFailure(addressKey(`10.1.${i >> 8}.${i & 255}`));
      assert.equal(l.retryAfterS(addressKey('2001:db8:0:1::1')), 0, 'the oldest address was dropped');
    });
  });

  describe('live feed budgets', () => {
    const limits = { socketsPerToken: 2, handshakesPerConnection: 3, joinsPer10s: 5, snapshotsPerMinPerToken: 6 };

    it('TokenBucket: starts full, refills continuously, never beyond its capacity', () => {
      const b = new TokenBucket(2, 1_000, now);
      assert.deepEqual([b.take(now), b.take(now), b.take(now)], [true, true, false]);
      now += 500;
      assert.deepEqual([b.take(now), b.take(now)], [true, false]);
      now += 60_000;
      assert.deepEqual([b.take(now), b.take(now), b.take(now)], [true, true, false]);
    });

    it('CONNECT packets per transport connection', () => {
      const budgets = new LiveBudgets(limits, clock);
      const conn = {};
      assert.deepEqual([1, 2, 3, 4].map(() => budgets.handshake(conn)), [true, true, true, false]);
      assert.equal(budgets.handshake({}), true, 'another connection has its own count');
    });

    it('open sockets per token: reserved and released', () => {
      const budgets = new LiveBudgets(limits, clock);
      assert.deepEqual([budgets.reserveSocket('t1'), budgets.reserveSocket('t1'), budgets.reserveSocket('t1')], [true, true, false]);
      assert.equal(budgets.reserveSocket('t2'), true);
      budgets.releaseSocket('t1');
      assert.equal(budgets.socketsOf('t1'), 1);
      assert.equal(budgets.reserveSocket('t1'), true);
    });

    it('snapshots per token per minute, across its sockets', () => {
      const budgets = new LiveBudgets(limits, clock);
      const taken = Array.from({ length: 8 }, () => budgets.snapshot('t1'));
      assert.deepEqual(taken, [true, true, true, true, true, true, false, false]);
      assert.equal(budgets.snapshot('t2'), true);
      now += 10_000;
      assert.equal(budgets.snapshot('t1'), true, 'one back after 10 s');
      assert.equal(budgets.snapshot('t1'), false);
    });

    it('joins: refused over the budget, disconnect after as many again in a row', () => {
      const budgets = new LiveBudgets(limits, clock);
      const socket = {};
      const verdicts = Array.from({ length: 11 }, () => budgets.join(socket));
      assert.deepEqual(verdicts, ['ok', 'ok', 'ok', 'ok', 'ok', 'refuse', 'refuse', 'refuse', 'refuse', 'disconnect', 'disconnect']);
      const flood = new LiveBudgets({ ...limits, joinsPer10s: 20 }, clock);
      const s2 = {};
      let disconnectAt = -1;
      for (let i = 0; i < 20_000; i++) if (flood.join(s2) === 'disconnect' && disconnectAt < 0) disconnectAt = i;
      assert.equal(disconnectAt, 39, 'disconnected at the 40th join');
    });
  });
});
