/** The conformance kit itself: a source that keeps the contract passes every check; each broken one fails the check that names its fault. */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceConformance } from './conformance.js';
import { type ConnectorDefinition, defineConnector, type Source } from './connector.js';
import { o } from './options.js';
import { TEST_SCHEMA, testSource } from './testing.js';
import type { Row } from './types.js';

const SECRET = 'canary-kit-0123456789';
const rows = (from: number, to: number): Row[] => Array.from({ length: to - from }, (_, i) => ({ id: from + i, value: `v${from + i}` }));
const ALL = rows(0, 30);

let server: Server;
let port = 0;
const sockets = new Set<Socket>();
beforeAll(async () => {
  server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((ok) => server.close(() => ok()));
});

/** A three-partition source over ALL with one fault injected. */
function faulty(fault: Partial<Source> & { leak?: boolean; checkThrows?: boolean }): ConnectorDefinition {
  return defineConnector({
    name: 'faulty',
    description: 'A source with one fault.',
    options: { token: o.secret().describe('A token.') },
    source: () => ({
      schema: () => TEST_SCHEMA,
      partitions: () => [
        { id: 'a', from: 0, to: 10 },
        { id: 'b', from: 10, to: 20 },
        { id: 'c', from: 20, to: 30 },
      ],
      async *read(p) {
        const { Socket } = await import('node:net');
        const socket = fault.leak ? new Socket().connect(port, '127.0.0.1') : undefined;
        if (socket) await new Promise((ok) => socket.once('connect', ok));
        yield rows(p.from as number, p.to as number);
      },
      ...fault,
    }),
    check: async () => {
      if (fault.checkThrows) throw new Error('connection refused');
      return [{ name: 'connection', ok: true, message: 'ok' }];
    },
  });
}

async function failures(connector: ConnectorDefinition, expected = ALL): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const check of sourceConformance(connector, { options: { token: SECRET }, secret: SECRET, expected, timeoutMs: 500 }))
    await check.run().catch((error: Error) => {
      out[check.name] = error.message;
    });
  return out;
}

describe('sourceConformance', () => {
  it('passes a source that keeps the contract (the scripted test source, 3 partitions)', async () => {
    const checks = sourceConformance(testSource, {
      options: { rows: 30, partitions: 3 },
      expected: rows(0, 30).map((r) => ({ id: r.id, value: `v${r.id}` })),
    });
    for (const check of checks) await check.run();
    expect(checks.map((c) => c.name)).toHaveLength(5);
  });

  it('fails each fault in the check that names it', async () => {
    let n = 0;
    const cases: [ConnectorDefinition, string, RegExp][] = [
      [faulty({ partitions: () => [{ id: 'a', n: n++ }] }), 'the plan is deterministic plain JSON', /same partitions every time/],
      [faulty({ partitions: () => [{ id: 'a', at: new Date(0) as never }] }), 'the plan is deterministic plain JSON', /JSON round trip/],
      [faulty({ partitions: () => [{ id: 'a' }, { id: 'a' }] }), 'the plan is deterministic plain JSON', /unique/],
      [
        faulty({
          read: async function* () {
            yield ALL;
          },
        }),
        'every partition',
        /90 rows, expected 30/,
      ],
      [
        faulty({
          read: async function* (p) {
            yield rows((p.from as number) + 1, p.to as number);
          },
        }),
        'every partition',
        /3 missing/,
      ],
      [
        faulty({
          read: async function* (p) {
            yield rows(p.from as number, p.to as number).map((r) => ({ ...r, id: String(r.id) }));
          },
        }),
        'every partition',
        /declared integer/,
      ],
      [
        faulty({
          read: async function* (p, ctx) {
            ctx.log.info('connecting', { token: SECRET });
            yield rows(p.from as number, p.to as number);
          },
        }),
        'every partition',
        /canary/,
      ],
      [
        faulty({
          read: async function* (p) {
            yield rows(p.from as number, p.to as number).map((r) => ({ ...r, extra: 1 }));
          },
        }),
        'every partition',
        /not in the declared schema/,
      ],
      [faulty({ leak: true }), 'a read stopped midway', /still open/],
      [faulty({ checkThrows: true }), 'check()', /threw instead of answering/],
    ];
    for (const [connector, check, message] of cases) {
      const failed = await failures(connector);
      const entry = Object.entries(failed).find(([name]) => name.startsWith(check));
      expect(entry?.[1], `${check}: ${JSON.stringify(failed)}`).toMatch(message);
    }
  });

  it('a re-read that differs fails', async () => {
    let read = 0;
    const failed = await failures(
      faulty({
        read: async function* (p) {
          yield rows(p.from as number, (p.to as number) - (read++ % 2));
        },
      }),
    );
    expect(Object.keys(failed).some((k) => k.startsWith('re-reading'))).toBe(true);
  });
});
