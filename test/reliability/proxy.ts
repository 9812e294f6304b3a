/** A TCP proxy for network faults: forwards to a real service and cuts every open connection on demand. */
import { createServer, type Server, Socket } from 'node:net';

export class TcpProxy {
  private readonly open = new Set<[client: Socket, upstream: Socket]>();
  private readonly server: Server;
  /** The port it listens on (127.0.0.1). */
  port = 0;
  /** Connections accepted so far. */
  accepted = 0;
  /** Connections cut so far. */
  cut = 0;

  private constructor(targetPort: number, targetHost: string) {
    this.server = createServer((client) => this.forward(client, targetPort, targetHost));
  }

  /** Listens on a free port of 127.0.0.1 and forwards each connection to `targetPort`. */
  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort, targetHost);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = proxy.server.address();
    if (!address || typeof address === 'string') throw new Error('the proxy has no port');
    proxy.port = address.port;
    return proxy;
  }

  private forward(client: Socket, port: number, host: string): void {
    const upstream = new Socket();
    const pair: [Socket, Socket] = [client, upstream];
    this.open.add(pair);
    this.accepted++;
    const drop = () => {
      this.open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.connect(port, host, () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  /** Connections open now. */
  get connections(): number {
    return this.open.size;
  }

  /** Cuts every open connection as a network fault would (a TCP reset to the client); returns how many. */
  cutAll(): number {
    const pairs = [...this.open];
    for (const [client, upstream] of pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.open.clear();
    this.cut += pairs.length;
    return pairs.length;
  }

  /**
   * A `weir run` stdout handler that cuts every connection once the run's progress
   * lines (JSON logs, a short `progress_interval`) reach each of `rows`, in order; what
   * it cut is listed in `cuts`. Progress, not `batch_written`: those lines are rate-limited.
   */
  cutAtProgress(rows: readonly number[]): { cuts: string[]; onStdout: (chunk: string) => void } {
    const cuts: string[] = [];
    const t0 = performance.now();
    const onStdout = onProgress((n) => {
      if (cuts.length < rows.length && n >= (rows[cuts.length] as number))
        cuts.push(`${this.cutAll()} connections cut at ${n} rows (${Math.round(performance.now() - t0)} ms)`);
    });
    return { cuts, onStdout };
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A `weir run` stdout handler that calls `seen` with the row count of each progress line (JSON logs), lines split across chunks included. */
export function onProgress(seen: (rows: number) => void): (chunk: string) => void {
  let pending = '';
  return (chunk) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const m = /"event":"progress","rows":(\d+)/.exec(line);
      if (m) seen(Number(m[1]));
    }
  };
}
