import crypto from 'node:crypto';
import net from 'node:net';

/** A TCP port free on loopback right now (for a `tally api` under test). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Where base ports of private servers are picked: clear of the stack defaults (19092…, 18123, 19000) and of the ephemeral range. */
const PORT_RANGE = { from: 20_000, to: 27_000 };

/**
 * `count` base ports whose ports (`portsOf(base)`) are all free on loopback now and none another's,
 * below Linux's ephemeral range (32768 and up): a server stopped there could find its port taken
 * by some outgoing connection when it starts again ("Address already in use").
 */
export async function freePorts(count: number, portsOf: (base: number) => number[]): Promise<number[]> {
  const bases: number[] = [];
  const taken = new Set<number>();
  while (bases.length < count) {
    const base = PORT_RANGE.from + crypto.randomInt(PORT_RANGE.to - PORT_RANGE.from);
    const ports = portsOf(base);
    if (ports.some((p) => taken.has(p))) continue;
    if (!(await Promise.all(ports.map(isFree))).every(Boolean)) continue;
    bases.push(base);
    for (const p of ports) taken.add(p);
  }
  return bases;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}
