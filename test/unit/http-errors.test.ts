import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError, isClickHouseUnavailable } from '../../server/src/http/index.js';
import { TallyError } from '../../server/src/errors/index.js';
import { clickHouseErrorCode } from '../../server/src/clickhouse/index.js';

describe('isClickHouseUnavailable (an outage becomes a 503, a bad query a 500)', () => {
  it('network codes, ClickHouse busy codes, the client timeout, and causes of either', () => {
    assert.ok(isClickHouseUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' })));
    assert.ok(isClickHouseUnavailable(Object.assign(new Error('Too many simultaneous queries'), { code: '202' })));
    assert.ok(isClickHouseUnavailable(new Error('Timeout error.')));
    // 18.16's answer, whose code the client does not parse, and a current release's.
    assert.ok(isClickHouseUnavailable(new Error('Code: 202, e.displayText() = DB::Exception: Too many simultaneous queries. Maximum: 100, e.what() = DB::Exception')));
    assert.ok(isClickHouseUnavailable(new Error('Code: 159. DB::Exception: Timeout exceeded: elapsed 30.1 seconds. (TIMEOUT_EXCEEDED)')));
    assert.ok(isClickHouseUnavailable(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ETIMEDOUT' }) })));
  });

  it('a query error, an unknown code or a message that merely mentions a network word is not an outage', () => {
    assert.equal(isClickHouseUnavailable(Object.assign(new Error('Syntax error'), { code: '62' })), false);
    assert.equal(isClickHouseUnavailable(new Error('campaign "ECONNREFUSED" not found')), false);
    assert.equal(isClickHouseUnavailable(new Error('Code: 60, e.displayText() = DB::Exception: Table t.x doesn\'t exist., e.what() = DB::Exception')), false);
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

describe('clickHouseErrorCode', () => {
  it('reads the code the client parsed, or the server answer of 18.16 and of current releases', () => {
    assert.equal(clickHouseErrorCode(Object.assign(new Error('x'), { code: '60' })), '60');
    assert.equal(clickHouseErrorCode(new Error('Code: 81, e.displayText() = DB::Exception: Database nosuchdb doesn\'t exist, e.what() = DB::Exception')), '81');
    assert.equal(clickHouseErrorCode(new Error('Code: 60. DB::Exception: Unknown table expression identifier \'default.api_tokens\'. (UNKNOWN_TABLE)')), '60');
    assert.equal(clickHouseErrorCode(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), undefined);
    assert.equal(clickHouseErrorCode(new Error('the Code: 60 of something')), undefined);
  });
});
