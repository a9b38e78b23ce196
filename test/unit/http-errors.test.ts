import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError, isClickHouseUnavailable } from '../../server/src/http/index.js';
import { TallyError } from '../../server/src/errors/index.js';

describe('isClickHouseUnavailable (an outage becomes a 503, a bad query a 500)', () => {
  it('network codes, ClickHouse busy codes, the client timeout, and causes of either', () => {
    assert.ok(isClickHouseUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' })));
    assert.ok(isClickHouseUnavailable(Object.assign(new Error('Too many simultaneous queries'), { code: '202' })));
    assert.ok(isClickHouseUnavailable(new Error('Timeout error.')));
    assert.ok(isClickHouseUnavailable(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ETIMEDOUT' }) })));
  });

  it('a query error, an unknown code or a message that merely mentions a network word is not an outage', () => {
    assert.equal(isClickHouseUnavailable(Object.assign(new Error('Syntax error'), { code: '62' })), false);
    assert.equal(isClickHouseUnavailable(new Error('campaign "ECONNREFUSED" not found')), false);
    assert.equal(isClickHouseUnavailable('ECONNREFUSED'), false);
  });

  it('a server that hangs up mid-request is an outage (Node gives socket hang up the code ECONNRESET)', async () => {
    const server = http.createServer((req) => req.socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const err = await new Promise<unknown>((resolve) => {
        http.get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, () => resolve(undefined)).on('error', resolve);
      });
      assert.ok(err instanceof Error);
      assert.ok(isClickHouseUnavailable(err), String(err));
    } finally {
      server.close();
    }
  });

  it('ApiError is a TallyError; a 503 is worth retrying', () => {
    assert.ok(new ApiError(400, 'bad') instanceof TallyError);
    assert.equal(new ApiError(503, 'down').retriable, true);
    assert.equal(new ApiError(404, 'no').retriable, false);
  });
});
