/**
 * A message queue for stream tests, held by the test process so it outlives the weir
 * processes it serves: messages with increasing sequence numbers, pulled in order by one
 * session at a time; a new session gets every unacknowledged message again. On each
 * acknowledgement it asks `committed` whether the messages are in the target already:
 * an acknowledgement of a message that was not committed first is recorded as a violation.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export class QueueServer {
  private readonly messages: { seq: number; body: string }[] = [];
  private readonly acked = new Set<number>();
  private delivered = new Set<number>();
  private session = 0;
  readonly violations: number[] = [];
  /** How long an acknowledgement takes. */
  ackDelayMs = 0;
  /** Pulls answered before every further pull gets HTTP 500 (a broken queue); undefined: never. */
  failPullsAfter: number | undefined;
  private pulls = 0;
  private server!: Server;

  constructor(private readonly committed: (seqs: number[]) => Promise<Set<number>>) {}

  static async start(committed: (seqs: number[]) => Promise<Set<number>>): Promise<QueueServer> {
    const q = new QueueServer(committed);
    q.server = createServer((req, res) => {
      if ((req.url ?? '').startsWith('/pull') && q.failPullsAfter !== undefined && q.pulls++ >= q.failPullsAfter) {
        res.writeHead(500).end('queue broken on purpose');
        return;
      }
      q.handle(req.url ?? '/', req)
        .then((body) => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        })
        .catch((error) => res.writeHead(500).end(String(error)));
    });
    await new Promise<void>((resolve) => q.server.listen(0, '127.0.0.1', resolve));
    return q;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  publish(count: number): void {
    for (let i = 0; i < count; i++) {
      const seq = this.messages.length + 1;
      this.messages.push({ seq, body: `message ${seq} ${'é'.repeat(seq % 7)}` });
    }
  }

  get messagesCount(): number {
    return this.messages.length;
  }

  /** Messages handed out in this session and not yet acknowledged: a reader is at work. */
  get deliveredCount(): number {
    return this.delivered.size;
  }

  get ackedCount(): number {
    return this.acked.size;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(url: string, req: NodeJS.ReadableStream): Promise<unknown> {
    const u = new URL(url, 'http://queue');
    if (u.pathname === '/session') {
      this.session++;
      this.delivered = new Set(); // whatever was delivered and not acknowledged comes again
      return { session: this.session };
    }
    if (Number(u.searchParams.get('session')) !== this.session && u.pathname === '/pull') return { messages: [] };
    if (u.pathname === '/pull') {
      const max = Number(u.searchParams.get('max') ?? 100);
      for (let waited = 0; waited < 200; waited += 20) {
        const out = this.messages.filter((m) => !this.acked.has(m.seq) && !this.delivered.has(m.seq)).slice(0, max);
        if (out.length) {
          for (const m of out) this.delivered.add(m.seq);
          return { messages: out };
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      return { messages: [] };
    }
    if (u.pathname === '/ack') {
      let text = '';
      for await (const chunk of req) text += chunk.toString();
      const { seqs } = JSON.parse(text) as { seqs: number[] };
      // a slow acknowledgement widens the window between a commit and its ack, where a kill must not lose or repeat anything
      await new Promise((r) => setTimeout(r, this.ackDelayMs));
      const there = await this.committed(seqs);
      for (const seq of seqs) {
        if (!there.has(seq)) this.violations.push(seq);
        this.acked.add(seq);
      }
      return { ok: true };
    }
    throw new Error(`no route ${u.pathname}`);
  }
}
