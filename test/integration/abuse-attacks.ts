/**
 * The attacks of the flood tests, run as a separate process so that the attacker's own work never
 * delays the well-behaved client measured in the test process (it still competes for the CPU, as
 * a real attacker would):
 *
 *   node --import tsx test/integration/abuse-attacks.ts '{"kind":"joins","base":"http://…","token":"…","victim":"adv-b","ms":8000}'
 *
 * prints one JSON line with what happened. Includes a hostile socket.io client speaking engine.io
 * v4 long-polling by hand: one POST can carry thousands of packets, as an attacker's would.
 */
import zlib from 'node:zlib';
import { generateToken } from '../../server/src/auth/index.js';

/** engine.io v4 separates the packets of one polling payload with the record separator. */
const SEPARATOR = '\x1e';

export class PollingClient {
  private constructor(private readonly url: string, readonly sid: string) {}

  static async open(base: string): Promise<PollingClient> {
    const url = `${base}/socket.io/?EIO=4&transport=polling`;
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    if (!res.ok || !text.startsWith('0')) throw new Error(`engine.io open: ${res.status} ${text.slice(0, 200)}`);
    return new PollingClient(url, (JSON.parse(text.slice(1)) as { sid: string }).sid);
  }

  /** POSTs packets (engine.io message packets: `4` + socket.io packet) in one body; the HTTP status. */
  async send(packets: string[]): Promise<number> {
    const res = await fetch(`${this.url}&sid=${this.sid}`, {
      method: 'POST', body: packets.join(SEPARATOR), headers: { 'content-type': 'text/plain;charset=UTF-8' }, signal: AbortSignal.timeout(30_000),
    });
    await res.text();
    return res.status;
  }

  /** One long-poll GET: the packets the server had for us, or the status when it refused (a closed session is 400). */
  async receive(): Promise<{ status: number; packets: string[] }> {
    const res = await fetch(`${this.url}&sid=${this.sid}`, { signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    return { status: res.status, packets: res.ok ? text.split(SEPARATOR) : [] };
  }
}

export const connectPacket = (token: string) => `40${JSON.stringify({ token })}`;
export const joinPacket = (advertiserId: string, ackId: number) => `42${ackId}${JSON.stringify(['join', advertiserId])}`;

export interface AttackOrder {
  kind: 'joins' | 'handshakes' | 'rest-tokens' | 'bodies';
  base: string;
  token?: string;
  victim?: string;
  ms?: number;
}

/** Sessions that sent joins beyond their budget are closed; connects are refused once the token's budgets are spent. */
async function joinFlood(o: AttackOrder): Promise<Record<string, number>> {
  const out = { sessions: 0, oversizedRefused: 0, closedSessions: 0, refusedConnects: 0 };
  const until = Date.now() + (o.ms ?? 8_000);
  const fit = Array.from({ length: 1_200 }, (_, i) => joinPacket(o.victim ?? '', i));
  const huge = Array.from({ length: 20_000 }, (_, i) => joinPacket(o.victim ?? '', i));
  while (Date.now() < until) {
    const c = await PollingClient.open(o.base);
    await c.send([connectPacket(o.token ?? '')]);
    const connected = (await c.receive()).packets[0] ?? '';
    // The token's snapshots per minute or its open sockets run out: refused, as they should be.
    if (/^44\{"message":"(rate_limited|too_many_connections)"\}$/.test(connected)) {
      out.refusedConnects++;
      continue;
    }
    if (!connected.startsWith('40')) throw new Error(`connect answered ${connected}`);
    out.sessions++;
    // 20,000 joins do not fit one POST (64 KiB): refused by size. Then as many as fit, twice.
    if ((await c.send(huge)) === 413) out.oversizedRefused++;
    await c.send(fit).catch(() => 0);
    await c.send(fit).catch(() => 0);
    // Closed: socket.io's DISCONNECT (41) or engine.io's close (1) arrives, or the session is gone (400).
    for (let polls = 0; polls < 3; polls++) {
      const r = await c.receive().catch(() => ({ status: 0, packets: [] }));
      if (r.status !== 200 || r.packets.some((p) => p === '41' || p === '1')) {
        out.closedSessions++;
        break;
      }
    }
  }
  return out;
}

async function handshakeFlood(o: AttackOrder): Promise<Record<string, number>> {
  let handshakes = 0;
  const until = Date.now() + (o.ms ?? 8_000);
  while (Date.now() < until) {
    const c = await PollingClient.open(o.base);
    const packets = Array.from({ length: 700 }, () => connectPacket(generateToken().token));
    handshakes += packets.length;
    await c.send(packets).catch(() => 0);
  }
  return { handshakes };
}

async function restTokenFlood(o: AttackOrder): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {};
  const until = Date.now() + (o.ms ?? 8_000);
  const worker = async () => {
    while (Date.now() < until) {
      const res = await fetch(`${o.base}/api/v1/me`, { headers: { authorization: `Bearer ${generateToken().token}` } });
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return statuses;
}

/** Each hostile body three times; the answers by body. */
async function bodyBombs(o: AttackOrder): Promise<Record<string, string[]>> {
  const bodies: Record<string, { body: Buffer; encoding?: string }> = {
    'gzip bomb': { body: zlib.gzipSync(Buffer.alloc(5 * 1024 * 1024 - 1, '['), { level: 9 }), encoding: 'gzip' },
    'deep nesting': { body: Buffer.from(`${'['.repeat(2_500_000)}${']'.repeat(2_500_000)}`) },
    'huge number': { body: Buffer.from(`[${'1'.repeat(5 * 1024 * 1024 - 2)}]`) },
  };
  const keys: string[] = [];
  for (let i = 0; keys.length * 12 < 5 * 1024 * 1024 - 100; i++) keys.push(`"k${i}":1`);
  bodies['many keys'] = { body: Buffer.from(`[{${keys.join(',')}}]`) };
  const answers: Record<string, string[]> = { 'gzip bomb size': [String(bodies['gzip bomb'].body.length)] };
  for (let round = 0; round < 3; round++) {
    for (const [name, b] of Object.entries(bodies)) {
      const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? ''}`, 'content-type': 'application/json' };
      if (b.encoding) headers['content-encoding'] = b.encoding;
      const res = await fetch(`${o.base}/api/v1/impressions`, { method: 'POST', body: new Uint8Array(b.body), headers });
      (answers[name] ??= []).push(`${res.status} ${(await res.text()).slice(0, 160)}`);
    }
  }
  return answers;
}

const ATTACKS = { joins: joinFlood, handshakes: handshakeFlood, 'rest-tokens': restTokenFlood, bodies: bodyBombs };

const order = JSON.parse(process.argv[2] ?? '{}') as AttackOrder;
ATTACKS[order.kind](order).then(
  (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exitCode = 1;
  },
);
